"""Builders the OpenAPI document's parts share: error answers from the error table, JSON
answers, query parameters with the bounds their handlers enforce."""

from __future__ import annotations

from exchange.http.errors import ERROR_CODES
from exchange.http.inputs import MAX_QUERY_VALUE

__all__ = ["BIG", "errors", "integer", "json_body", "text"]

_ERROR = {"$ref": "#/components/schemas/Error"}
BIG = 2**62  # the largest cursor, tree size or leaf index the handlers take

# Any request can meet these: a malformed query or request (400), a head that is too slow or
# too long (408, 414, 431), an internal failure (500), the database unreachable (503).
_ANY = (400, 408, 414, 431, 500, 503)


def errors(*statuses: int) -> dict:
    """The error answers of ``statuses`` (and of any request), each naming its codes."""
    out = {}
    for status in sorted(set(statuses) | set(_ANY)):
        codes = sorted(c for c, (s, _) in ERROR_CODES.items() if s == status)
        out[str(status)] = {
            "description": "Refused: " + ", ".join(codes),
            "content": {"application/json": {"schema": _ERROR}},
        }
        if status == 429:
            out[str(status)]["headers"] = {
                "Retry-After": {
                    "description": "seconds to wait",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
    return out


def json_body(schema: dict, description: str) -> dict:
    """A JSON answer with ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def integer(name: str, low: int, high: int, *, required: bool = False, doc: str = "") -> dict:
    """A query integer with exactly the bounds its handler enforces (``_int`` in api.py)."""
    schema = {"type": "integer", "minimum": low, "maximum": high}
    param = {"name": name, "in": "query", "required": required, "schema": schema}
    if doc:
        param["description"] = doc
    return param


def text(name: str, **schema: object) -> dict:
    """A query text parameter, as long as the query guard lets through."""
    return {
        "name": name,
        "in": "query",
        "schema": {"type": "string", "maxLength": MAX_QUERY_VALUE, **schema},
    }
