"""Assertions on the hub's HTTP answers."""

from __future__ import annotations

from exchange.http.errors import ERROR_CODES


def assert_error(status: int, body: dict, want_status: int, want_code: str) -> dict:
    """The answer is the refusal ``want_code`` with the status the error table gives it."""
    assert (status, body["error"]["code"]) == (want_status, want_code), body
    assert want_code in ERROR_CODES and ERROR_CODES[want_code][0] == want_status
    assert "Traceback" not in body["error"]["message"]
    return body["error"]
