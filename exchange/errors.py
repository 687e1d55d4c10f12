"""Errors a client may see: a stable code, an HTTP status and a human message."""

from __future__ import annotations

__all__ = ["HubError"]


class HubError(Exception):
    """A refusal with a stable machine-readable ``code``.

    The API turns it into ``{"error": {"code", "message", "field", "line"}}`` with ``status``
    (and ``headers``, when the refusal needs some: ``Retry-After`` on a 429); nothing else
    about the failure (no stack trace, no internals) reaches the client.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 400,
        field: str | None = None,
        line: int | None = None,
        detail: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.field = field
        self.line = line
        self.detail = detail
        self.headers = headers  # sent with the refusal: Retry-After, Allow, Accept-Encoding

    def to_json(self) -> dict:
        """The client-facing JSON body."""
        body: dict = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.line is not None:
            body["line"] = self.line
        if self.detail:
            body["detail"] = self.detail
        return {"error": body}

    def __reduce__(self):
        # Travel intact between processes (the hub parses and verifies in a process pool).
        return (_rebuild, (type(self), self.__dict__.copy()))

    def __repr__(self) -> str:
        return f"HubError({self.code!r}, {self.message!r}, status={self.status})"


def _rebuild(cls: type[HubError], state: dict) -> HubError:
    error = Exception.__new__(cls)
    Exception.__init__(error, state.get("message"))
    error.__dict__.update(state)
    return error
