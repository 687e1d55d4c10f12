"""Push endpoints, pushes and their attempts in PostgreSQL: every statement of push delivery.

A push is created in the transaction that puts a copy of a pushed agency into its inbox
(the SQL function ``queue_pushes`` of migration 0012: from ``deliver_copies``, called by
``mark_delivered``, or from :func:`enqueue_pushes` for copies delivered before an agency went
on push), so the broker's message, the inbox entry
and the push are one step; from then on the push lives here, not in the broker: its retry
schedule survives restarts of the hub, the broker and the database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from exchange.events import Event
from exchange.store.events import record_events

__all__ = [
    "ACTIVE_STATES",
    "PUSH_CHANNEL",
    "Claimed",
    "Endpoint",
    "Outcome",
    "PostgresPush",
    "enqueue_pushes",
]

ACTIVE_STATES = ("enqueued", "in_progress", "waiting_for_retry")
PUSH_CHANNEL = "lienthong_push"  # NOTIFY: new pushes to make
_DUE = (
    "((p.state IN ('enqueued', 'waiting_for_retry') AND p.next_attempt_at <= now()) "
    "OR (p.state = 'in_progress' AND p.lease_until < now()))"
)


async def enqueue_pushes(conn: asyncpg.Connection, delivery_ids: list[int]) -> None:
    """A push for each of these copies whose recipient is on push (inside the transaction that
    delivers them; a copy already pushed keeps its push)."""
    if not delivery_ids:
        return
    await conn.execute("SELECT queue_pushes($1::bigint[], $2)", delivery_ids, PUSH_CHANNEL)


@dataclass(frozen=True)
class Endpoint:
    """Where an agency takes pushes, with its sealed signing secret."""

    organ_id: str
    url: str
    sealed_secrets: tuple[bytes, ...]  # the current one first; a replaced one while it overlaps


@dataclass(frozen=True)
class Claimed:
    """A push taken for one attempt."""

    id: uuid.UUID
    delivery_id: int
    attempt: int
    window_start: datetime
    copy_state: str
    package_id: uuid.UUID
    recipient: str
    digest: bytes
    kind: str
    recalled: bool  # its sender recalled it before it was taken (exchange/flows.py)


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: ``acknowledged``, ``retry`` (at ``next_attempt_at``) or
    ``failed``."""

    outcome: str
    started_at: datetime
    duration_ms: float
    http_status: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None

    def detail(self, push: Claimed) -> dict:
        """The attempt as its trail event says it."""
        detail = {
            "webhook_id": str(push.id),
            "attempt": push.attempt,
            "outcome": self.outcome,
            "duration_ms": round(self.duration_ms, 1),
            "http_status": self.http_status,
        }
        if self.error:
            detail["error"] = self.error
        if self.next_attempt_at is not None:
            detail["next_attempt_at"] = self.next_attempt_at.isoformat(timespec="seconds")
        return detail


class PostgresPush:
    """The push store of one pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ----- endpoints --------------------------------------------------------------------

    async def set_endpoint(
        self, organ_id: str, url: str, sealed: bytes | None, overlap_seconds: float = 0.0
    ) -> bool:
        """Turn push on at ``url`` (a new sealed secret, or None to keep the current one, which
        then signs beside the new one for ``overlap_seconds``); copies waiting in the inbox are
        pushed too. Returns False for an unknown agency."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT 1 FROM agencies WHERE code = $1", organ_id):
                return False
            await conn.execute(
                "INSERT INTO push_endpoints (organ_id, url, secret) VALUES ($1, $2, $3) "
                "ON CONFLICT (organ_id) DO UPDATE SET url = $2, enabled = true, "
                "secret = coalesce($3, push_endpoints.secret), updated_at = now(), "
                "previous_secret = CASE WHEN $3 IS NULL THEN push_endpoints.previous_secret "
                "ELSE push_endpoints.secret END, previous_until = CASE WHEN $3 IS NULL "
                "THEN push_endpoints.previous_until ELSE now() + make_interval(secs => $4) END",
                organ_id,
                url,
                sealed,
                overlap_seconds,
            )
            waiting = await conn.fetch(
                "SELECT id FROM deliveries WHERE recipient = $1 AND state = 'delivered'", organ_id
            )
            await enqueue_pushes(conn, [r["id"] for r in waiting])
        return True

    async def has_secret(self, organ_id: str) -> bool:
        return bool(
            await self.pool.fetchval(
                "SELECT secret IS NOT NULL FROM push_endpoints WHERE organ_id = $1", organ_id
            )
        )

    async def disable(self, organ_id: str) -> bool:
        """Back to pull: the secret is dropped; pushes not taken yet stay for a later switch."""
        done = await self.pool.fetchval(
            "UPDATE push_endpoints SET enabled = false, secret = NULL, previous_secret = NULL, "
            "previous_until = NULL, updated_at = now() "
            "WHERE organ_id = $1 RETURNING 1",
            organ_id,
        )
        return bool(done)

    async def endpoints_due(self) -> list[Endpoint]:
        """Enabled endpoints with at least one push due now."""
        rows = await self.pool.fetch(
            "SELECT e.organ_id, e.url, e.secret, CASE WHEN e.previous_until > now() "
            "THEN e.previous_secret END AS previous FROM push_endpoints e WHERE e.enabled "
            "AND e.secret IS NOT NULL AND EXISTS (SELECT 1 FROM push_deliveries p "
            f"WHERE p.organ_id = e.organ_id AND {_DUE})"
        )
        return [
            Endpoint(
                r["organ_id"],
                r["url"],
                tuple(bytes(s) for s in (r["secret"], r["previous"]) if s is not None),
            )
            for r in rows
        ]

    # ----- attempts ---------------------------------------------------------------------

    async def claim(self, organ_id: str, limit: int, lease_seconds: float) -> list[Claimed]:
        """Up to ``limit`` due pushes of one agency, leased for one attempt (SKIP LOCKED: no
        other hub process takes them meanwhile)."""
        rows = await self.pool.fetch(
            f"""
            UPDATE push_deliveries q SET state = 'in_progress', attempts = q.attempts + 1,
                lease_until = now() + make_interval(secs => $3), updated_at = now()
            FROM deliveries d JOIN packages k ON k.id = d.package_id
            WHERE d.id = q.delivery_id AND q.id IN (
                SELECT p.id FROM push_deliveries p WHERE p.organ_id = $1 AND {_DUE}
                ORDER BY p.next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING q.id, q.delivery_id, q.attempts, q.window_start, d.state,
                      d.package_id, d.recipient, k.digest, k.kind,
                      EXISTS (SELECT 1 FROM dispositions x WHERE x.package_id = d.package_id
                              AND x.recipient = d.recipient AND x.disposition = 'recalled')
            """,
            organ_id,
            limit,
            lease_seconds,
        )
        return [Claimed(*r) for r in rows]

    async def record(self, push: Claimed, result: Outcome) -> bool:
        """The attempt's row and trail event, the push's new state and, on a 2xx, the copy
        acknowledged, in one transaction. False when the push was no longer this attempt's
        (its lease ran out and another attempt took it): then nothing changes."""
        state = {"retry": "waiting_for_retry"}.get(result.outcome, result.outcome)
        async with self.pool.acquire() as conn, conn.transaction():
            mine = await conn.fetchval(
                "UPDATE push_deliveries SET state = $3, lease_until = NULL, updated_at = now(), "
                "next_attempt_at = coalesce($4, next_attempt_at), last_status = $5, "
                "last_error = $6, acknowledged_at = CASE WHEN $3 = 'acknowledged' THEN now() END "
                "WHERE id = $1 AND attempts = $2 AND state = 'in_progress' RETURNING 1",
                push.id,
                push.attempt,
                state,
                result.next_attempt_at,
                result.http_status,
                result.error,
            )
            if not mine:
                return False
            await conn.execute(
                "INSERT INTO push_attempts (push_id, organ_id, attempt, started_at, duration_ms, "
                "http_status, error, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                push.id,
                push.recipient,
                push.attempt,
                result.started_at,
                result.duration_ms,
                result.http_status,
                result.error,
                result.outcome,
            )
            events = [
                Event(
                    "push_attempt",
                    push.digest,
                    push.package_id,
                    push.recipient,
                    result.detail(push),
                    result.started_at,
                )
            ]
            if result.outcome == "failed":
                events.append(
                    Event(
                        "push_failed",
                        push.digest,
                        push.package_id,
                        push.recipient,
                        {"webhook_id": str(push.id), "reason": result.error or ""},
                    )
                )
            if result.outcome == "acknowledged" and await self._acknowledge(conn, push.delivery_id):
                events.append(
                    Event(
                        "acknowledged",
                        push.digest,
                        push.package_id,
                        push.recipient,
                        {"via": "push", "webhook_id": str(push.id)},
                    )
                )
            await record_events(conn, events)
        return True

    async def _acknowledge(self, conn: asyncpg.Connection, delivery_id: int) -> bool:
        # delivered → acknowledged (exchange.delivery.TRANSITIONS): the copy leaves the inbox.
        return bool(
            await conn.fetchval(
                "UPDATE deliveries SET state = 'acknowledged', acked_at = now() "
                "WHERE id = $1 AND state = 'delivered' RETURNING 1",
                delivery_id,
            )
        )

    async def close_taken(self, push: Claimed) -> None:
        """The copy was acknowledged by pull meanwhile: the push ends without a request."""
        await self.pool.execute(
            "UPDATE push_deliveries SET state = 'acknowledged', lease_until = NULL, "
            "acknowledged_at = now(), last_error = 'acknowledged by pull', updated_at = now() "
            "WHERE id = $1 AND attempts = $2 AND state = 'in_progress'",
            push.id,
            push.attempt,
        )

    async def release(self, push: Claimed) -> None:
        """Give a claimed push back untried (the hub is stopping, or the circuit opened)."""
        await self.pool.execute(
            "UPDATE push_deliveries SET state = CASE WHEN attempts = 1 THEN 'enqueued' "
            "ELSE 'waiting_for_retry' END, attempts = attempts - 1, lease_until = NULL "
            "WHERE id = $1 AND attempts = $2 AND state = 'in_progress'",
            push.id,
            push.attempt,
        )

    # ----- operators --------------------------------------------------------------------

    async def list(
        self, state: str | None = None, organ_id: str | None = None, limit: int = 100
    ) -> list[asyncpg.Record]:
        """Pushes, newest first, optionally of one state and one agency."""
        return await self.pool.fetch(
            "SELECT p.id, p.organ_id, p.state, p.attempts, p.next_attempt_at, p.last_status, "
            "p.last_error, p.created_at, p.updated_at, p.acknowledged_at, d.package_id "
            "FROM push_deliveries p JOIN deliveries d ON d.id = p.delivery_id "
            "WHERE ($1::text IS NULL OR p.state = $1) AND ($2::text IS NULL OR p.organ_id = $2) "
            "ORDER BY p.created_at DESC, p.id LIMIT $3",
            state,
            organ_id,
            limit,
        )

    async def get(self, push_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT p.id, p.organ_id, p.state, p.attempts, p.next_attempt_at, p.last_status, "
            "p.last_error, p.created_at, p.updated_at, p.acknowledged_at, d.package_id "
            "FROM push_deliveries p JOIN deliveries d ON d.id = p.delivery_id WHERE p.id = $1",
            push_id,
        )

    async def attempts(self, push_id: uuid.UUID) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT attempt, started_at, duration_ms, http_status, error, outcome "
            "FROM push_attempts WHERE push_id = $1 ORDER BY id",
            push_id,
        )

    async def retry(
        self, push_id: uuid.UUID | None = None, organ_id: str | None = None
    ) -> list[uuid.UUID]:
        """Failed pushes (one, or all of an agency) due again now, with a fresh TTL window;
        a waiting one is only brought forward. Acknowledged ones are left alone."""
        rows = await self.pool.fetch(
            "UPDATE push_deliveries SET next_attempt_at = now(), updated_at = now(), "
            "window_start = CASE WHEN state = 'failed' THEN now() ELSE window_start END, "
            "state = CASE WHEN state = 'failed' THEN 'waiting_for_retry' ELSE state END "
            "WHERE state IN ('failed', 'waiting_for_retry', 'enqueued') "
            "AND ($1::uuid IS NULL OR id = $1) AND ($2::text IS NULL OR organ_id = $2) "
            "RETURNING id",
            push_id,
            organ_id,
        )
        return [r["id"] for r in rows]

    async def state_of(self, push_id: uuid.UUID) -> str | None:
        return await self.pool.fetchval("SELECT state FROM push_deliveries WHERE id = $1", push_id)

    async def counts(self) -> dict[str, int]:
        """Pushes not acknowledged, by state (zero included): both indexes are partial or
        small, so a scrape stays cheap whatever the history (acknowledged pushes are counted
        by ``lienthong_push_attempts_total``)."""
        rows = await self.pool.fetch(
            "SELECT state, count(*) AS n FROM push_deliveries "
            "WHERE state IN ('enqueued', 'in_progress', 'waiting_for_retry', 'failed') "
            "GROUP BY state"
        )
        found = {r["state"]: r["n"] for r in rows}
        return {s: found.get(s, 0) for s in (*ACTIVE_STATES, "failed")}
