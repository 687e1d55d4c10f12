"""Text that clients send: query parameters and token fields are checked before anything uses
them. PostgreSQL refuses NUL, UTF-8 cannot carry lone surrogates, and nothing here needs long
strings, so each of these is a 400 naming the field instead of a 500 from deep inside."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote_to_bytes

from aiohttp import web

from exchange.errors import HubError

__all__ = ["MAX_QUERY_VALUE", "check_text", "query_middleware", "strict_query"]

MAX_QUERY_VALUE = 256  # no query parameter of the API needs more
_MAX_QUERY_FIELDS = 32


def _invalid(field: str, why: str) -> HubError:
    return HubError("request.invalid_parameter", f"{field} {why}", field=field)


def check_text(value: str, field: str, max_length: int, *, vschar: bool = False) -> str:
    """``value`` if it is text PostgreSQL and UTF-8 can hold, at most ``max_length`` characters;
    with ``vschar`` only visible ASCII and space (RFC 6749's client_id and client_secret)."""
    if len(value) > max_length:
        raise _invalid(field, f"is longer than {max_length} characters")
    if "\x00" in value:
        raise _invalid(field, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(field, "is not valid UTF-8 (lone surrogate)") from None
    if vschar and not all(" " <= c <= "~" for c in value):
        raise _invalid(field, "may contain only visible ASCII characters")
    return value


def _decode(raw: str) -> str:
    return unquote_to_bytes(raw.replace("+", " ")).decode("utf-8")


def strict_query(raw_query: str) -> list[tuple[str, str]]:
    """Decode a raw query string strictly: invalid UTF-8 (which yarl would quietly turn into
    U+FFFD), NUL and over-long values are refused with the parameter's name."""
    pairs: list[tuple[str, str]] = []
    parts = [p for p in raw_query.split("&") if p]
    if len(parts) > _MAX_QUERY_FIELDS:
        raise HubError(
            "request.invalid_parameter", f"more than {_MAX_QUERY_FIELDS} query parameters"
        )
    for part in parts:
        raw_name, _, raw_value = part.partition("=")
        try:
            name = _decode(raw_name)
        except UnicodeError:
            raise _invalid("a query parameter name", "is not valid UTF-8") from None
        check_text(name, "a query parameter name", 64)
        try:
            value = _decode(raw_value)
        except UnicodeError:
            raise _invalid(name, "is not valid UTF-8") from None
        pairs.append((name, check_text(value, name, MAX_QUERY_VALUE)))
    return pairs


@web.middleware
async def query_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Refuse a request whose query string is not clean text before any handler reads it."""
    strict_query(request.rel_url.raw_query_string)
    return await handler(request)
