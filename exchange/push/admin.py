"""Push delivery as operators use it (``lienthong agency push``, ``lienthong deliveries``,
``/v1/admin/...``): switch an agency to push or back, list pushes, retry failed ones."""

from __future__ import annotations

import uuid

from exchange.errors import HubError
from exchange.push.contract import check_url, new_secret, seal_context
from exchange.sealing import SecretBox
from exchange.store.push import ACTIVE_STATES, PostgresPush

__all__ = ["MAX_LIST", "STATES", "PushAdmin", "push_json"]

STATES = (*ACTIVE_STATES, "acknowledged", "failed")
MAX_LIST = 1000


class PushAdmin:
    """The operators' use cases of push delivery."""

    def __init__(self, store: PostgresPush, box: SecretBox, overlap_seconds: float = 0.0) -> None:
        self.store = store
        self.box = box
        self.overlap = overlap_seconds

    async def switch_on(
        self, organ_id: str, url: str, new_secret_wanted: bool = False
    ) -> str | None:
        """Push to ``url`` from now on; returns the new secret (shown once) when one was made:
        the first time, or when asked for (the old one then signs beside it for
        ``push_secret_overlap_seconds``). Copies waiting in the inbox are pushed too."""
        check_url(url)
        secret = None
        if new_secret_wanted or not await self.store.has_secret(organ_id):
            secret = new_secret()
        sealed = self.box.seal(secret.encode(), context=seal_context(organ_id)) if secret else None
        if not await self.store.set_endpoint(organ_id, url, sealed, self.overlap):
            raise HubError("push.unknown_agency", f"{organ_id} is not in the registry")
        return secret

    async def switch_off(self, organ_id: str) -> bool:
        """Back to pull (the secret is dropped); whether the agency was on push."""
        return await self.store.disable(organ_id)

    async def list(
        self, state: str | None = None, organ_id: str | None = None, limit: int = 100
    ) -> list[dict]:
        """Pushes as JSON, newest first."""
        if not 1 <= limit <= MAX_LIST:
            raise HubError(
                "request.invalid_parameter",
                f"limit must be between 1 and {MAX_LIST}",
                field="limit",
            )
        if state is not None and state not in STATES:
            raise HubError(
                "request.invalid_parameter",
                f"state must be one of {', '.join(STATES)}",
                field="state",
            )
        return [push_json(r) for r in await self.store.list(state, organ_id, limit)]

    async def retry(self, push_id: str | None = None, organ_id: str | None = None) -> list[str]:
        """Failed pushes (one, or every one of an agency) attempted again now."""
        if push_id is not None:
            key = _push_id(push_id)
            state = await self.store.state_of(key)
            if state is None:
                raise HubError("push.not_found", f"no delivery {push_id}")
            if state == "acknowledged":
                raise HubError("push.not_retryable", f"delivery {push_id} was acknowledged already")
            return [str(i) for i in await self.store.retry(push_id=key)]
        return [str(i) for i in await self.store.retry(organ_id=organ_id)]

    async def get(self, push_id: str) -> dict:
        """One push as JSON; ``push.not_found`` when there is none."""
        row = await self.store.get(_push_id(push_id))
        if row is None:
            raise HubError("push.not_found", f"no delivery {push_id}")
        return push_json(row)

    async def attempts(self, push_id: str) -> list[dict]:
        """Every attempt of one push, oldest first."""
        rows = await self.store.attempts(_push_id(push_id))
        return [
            {
                "attempt": r["attempt"],
                "at": r["started_at"].isoformat(),
                "duration_ms": round(r["duration_ms"], 1),
                "http_status": r["http_status"],
                "error": r["error"],
                "outcome": r["outcome"],
            }
            for r in rows
        ]


def _push_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except (ValueError, TypeError):
        raise HubError("push.not_found", f"no delivery {text!r}") from None


def push_json(row) -> dict:
    """One push as operators see it."""

    def when(value):
        return value.isoformat() if value else None

    return {
        "id": str(row["id"]),
        "agency": row["organ_id"],
        "package_id": str(row["package_id"]),
        "state": row["state"],
        "attempts": row["attempts"],
        "next_attempt_at": when(row["next_attempt_at"])
        if row["state"] in ("enqueued", "waiting_for_retry")
        else None,
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "created_at": when(row["created_at"]),
        "acknowledged_at": when(row["acknowledged_at"]),
    }
