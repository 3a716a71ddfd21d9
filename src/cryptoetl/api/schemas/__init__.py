"""The API's response and request bodies, one module per resource (pydantic models that
document the JSON; the hot paths write the same JSON with orjson)."""
