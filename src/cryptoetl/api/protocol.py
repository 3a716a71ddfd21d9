"""uvicorn's HTTP protocol, with its one plain-text answer made JSON.

A request uvicorn cannot parse (a raw non-ASCII byte in the request line, a malformed header)
never reaches the app: uvicorn answers 400 itself, in plain text. This subclass answers the
same 400 in the API's error shape, with a request id, so every answer of the service is JSON.
`cryptoetl serve` passes it as uvicorn's `http` protocol.
"""

from __future__ import annotations

import orjson

from cryptoetl.api.middleware import new_request_id

try:  # uvicorn[standard] brings httptools; the pure-Python h11 protocol otherwise
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]


def bad_request(message: str) -> bytes:
    """The whole 400 response, ready for the socket."""
    body = orjson.dumps(
        {"error": "bad_request", "detail": message, "request_id": (rid := new_request_id())}
    )
    head = (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"content-type: application/json\r\n"
        b"x-request-id: " + rid.encode("ascii") + b"\r\n"
        b"content-length: " + str(len(body)).encode("ascii") + b"\r\n"
        b"connection: close\r\n\r\n"
    )
    return head + body


class JsonErrorProtocol(_Base):
    """uvicorn's protocol whose parse-error answer is the API's JSON error."""

    def send_400_response(self, msg: str) -> None:
        self.transport.write(bad_request(msg))
        self.transport.close()
