"""One rule for every endpoint's query string: only the parameters it documents, each once.

FastAPI ignores a query parameter an endpoint does not declare and keeps the last of a
repeated one, so `limit=1` or `min_price=5` silently do nothing and `source=a&source=b` quietly
means `b`. `check_query` (an app-wide dependency, `create_app` installs it) answers 422 naming
the parameter instead. What an endpoint accepts is read from the route itself: the query
parameters FastAPI resolves for it, plus those it publishes in `openapi_extra` (the data
route validates its own, `api/params.py`); a parameter is repeatable when its type is a list.
The rules of a route are worked out on its first request and kept on `app.state.query_rules`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.fields import FieldInfo

REPEATED = "given more than once; this parameter takes one value"


@dataclass(frozen=True, slots=True)
class QueryRules:
    """The query parameters of one route, and which of them may be given more than once."""

    known: frozenset[str]
    repeatable: frozenset[str]

    def problems(self, names: Iterable[str]) -> list[tuple[str, str]]:
        """`(name, message)` for each unknown or wrongly repeated parameter, in query order."""
        counts = Counter(names)
        problems = []
        for name, count in counts.items():
            if name not in self.known:
                known = ", ".join(sorted(self.known)) or "none"
                problems.append((name, f"is not a parameter of this endpoint (known: {known})"))
            elif count > 1 and name not in self.repeatable:
                problems.append((name, f"{REPEATED} (given {count} times)"))
        return problems


def _is_list(info: FieldInfo) -> bool:
    origin = getattr(info.annotation, "__origin__", None)
    args = getattr(info.annotation, "__args__", ())
    return origin in (list, tuple, set, frozenset) or any(
        getattr(arg, "__origin__", None) in (list, tuple, set, frozenset) for arg in args
    )


def _query_fields(dependant: Dependant) -> Iterable[tuple[str, FieldInfo]]:
    """`(name, info)` of every query parameter of `dependant` and its dependencies (the fields
    of a query parameter model included)."""
    for field in dependant.query_params:
        annotation = field.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, info in annotation.model_fields.items():
                yield info.alias or name, info
        else:
            yield field.alias, field.field_info
    for sub in dependant.dependencies:
        yield from _query_fields(sub)


def rules_of(route: APIRoute) -> QueryRules:
    """What `route` accepts in its query string (see the module docstring)."""
    known: set[str] = set()
    repeatable: set[str] = set()
    for name, info in _query_fields(route.dependant):
        known.add(name)
        if _is_list(info):
            repeatable.add(name)
    extra: dict[str, Any] = route.openapi_extra or {}
    for parameter in extra.get("parameters", ()):
        if parameter.get("in") == "query":
            known.add(parameter["name"])
            if parameter.get("schema", {}).get("type") == "array":
                repeatable.add(parameter["name"])
    return QueryRules(frozenset(known), frozenset(repeatable))


async def check_query(request: Request) -> None:
    """The app-wide dependency: 422 naming each unknown or repeated single-valued parameter.
    (`async`, so FastAPI calls it on the event loop instead of a worker thread.)"""
    if not request.scope.get("query_string"):
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    # keyed by id: a route is not hashable, and lives as long as the app that holds this cache
    cache: dict[int, QueryRules] = request.app.state.query_rules
    rules = cache.get(id(route))
    if rules is None:
        rules = cache[id(route)] = rules_of(route)
    problems = rules.problems(name for name, _ in request.query_params.multi_items())
    if problems:
        raise RequestValidationError(
            [
                {"loc": ("query", name), "msg": message, "type": "value_error"}
                for name, message in problems
            ]
        )
