"""The hub's refusals: a stable code, a human message, and where (field, line) or why (detail).

No HTTP status here: :mod:`exchange.http.errors` chooses it, in one table, for every code.
"""

from __future__ import annotations

from schemas.errors import rebuild_error

__all__ = ["HubError"]


class HubError(Exception):
    """A refusal with a stable machine-readable ``code``.

    ``detail`` carries structured facts (a signature's indication, a report digest);
    ``headers`` what the answer needs besides (``Retry-After`` on a throttled request).
    Nothing else about the failure (no stack trace, no internals) reaches the client.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        line: int | None = None,
        detail: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.line = line
        self.detail = detail
        self.headers = headers

    def __reduce__(self):
        # Travel intact between processes (the hub parses and verifies in a process pool).
        return (rebuild_error, (type(self), self.__dict__.copy()))

    def __repr__(self) -> str:
        return f"HubError({self.code!r}, {self.message!r})"
