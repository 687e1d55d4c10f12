"""The one error of the wire format: a stable code, a message, and where (field, line).

No HTTP status here: the transport that reports the error chooses it (the hub in one table).
"""

from __future__ import annotations

__all__ = ["FormatError", "rebuild_error"]


class FormatError(Exception):
    """Bytes that are not an acceptable edXML package, or a value the format cannot hold.

    ``code`` is stable and machine-readable (``xml.*``, ``edxml.*``, ``organ_id.invalid``,
    ``body.too_large``); ``field`` and ``line`` say where, when known.
    """

    def __init__(
        self, code: str, message: str, *, field: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.line = line

    def __reduce__(self):
        # Travel intact between processes (parsing runs in a process pool).
        return (rebuild_error, (type(self), self.__dict__.copy()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


def rebuild_error(cls: type[Exception], state: dict) -> Exception:
    """An error of ``cls`` with attributes ``state``, as pickled by ``__reduce__``: errors
    with keyword-only attributes travel intact between processes."""
    error = Exception.__new__(cls)
    Exception.__init__(error, state.get("message"))
    error.__dict__.update(state)
    return error
