"""The pusher: takes due pushes from PostgreSQL and POSTs each package to its agency's system.

Each endpoint has its own concurrency slots and circuit breaker, and every attempt is its own
task, so a system that answers slowly (or not at all) only ever holds its own slots: the others
are not delayed. An attempt is leased (``push_timeout_seconds`` + 5 s): if this process dies
mid-attempt, another (or the restarted) hub takes the push again once the lease is over, with
the same ``webhook-id``, which is how a receiver recognises the repeat. Results are recorded in
one transaction each; while PostgreSQL is away the result is held and recorded when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import defaultdict
from datetime import UTC, datetime

import aiohttp

from exchange.blobs import BlobStore
from exchange.config import Settings
from exchange.push.contract import push_headers, seal_context, secret_key, signature
from exchange.push.policy import Breaker, RetryPolicy, parse_schedule, retry_after, verdict
from exchange.sealing import SealError, SecretBox
from exchange.store.database import unavailable
from exchange.store.push import PUSH_CHANNEL, Claimed, Endpoint, Outcome, PostgresPush
from exchange.tasks import BackgroundLoop, log_failure

__all__ = ["Pusher"]

log = logging.getLogger("lienthong.push")
_SNIPPET = 512  # bytes of a refusal's body kept as its reason
_LEASE_MARGIN = 5.0


class Pusher(BackgroundLoop):
    """Pushes of every enabled endpoint, attempted as they fall due."""

    task_name = "pusher"

    def __init__(
        self,
        store: PostgresPush,
        blobs: BlobStore,
        box: SecretBox,
        settings: Settings,
        metrics=None,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._box = box
        self._settings = settings
        self._metrics = metrics
        self._policy = RetryPolicy(
            parse_schedule(settings.push_retry_schedule), settings.push_ttl_seconds
        )
        self._lease = settings.push_timeout_seconds + _LEASE_MARGIN
        self._inflight: dict[str, int] = defaultdict(int)
        self._breakers: dict[str, Breaker] = {}
        self._attempts: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None

    def kick(self) -> None:
        """Look for due pushes now."""
        self._wake.set()

    @property
    def open_circuits(self) -> int:
        """Endpoints this process sends nothing to right now."""
        return sum(1 for b in self._breakers.values() if b.open)

    async def _run(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl_context()),
            timeout=aiohttp.ClientTimeout(
                total=self._settings.push_timeout_seconds,
                connect=self._settings.push_connect_timeout_seconds,
            ),
            auto_decompress=False,
            max_line_size=8190,
            max_field_size=8190,
        )
        listener = asyncio.create_task(self._listen(), name="push-listener")
        try:
            while True:
                try:
                    await self._round()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log_failure(log, "looking for due pushes failed; trying again", exc)
                    await asyncio.sleep(1.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.push_poll_seconds)
                self._wake.clear()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            for task in list(self._attempts):
                task.cancel()
            await asyncio.gather(*self._attempts, return_exceptions=True)
            await self._session.close()

    async def _listen(self) -> None:
        """Wake up when any hub process made new pushes (PostgreSQL NOTIFY); polling every
        push_poll_seconds covers the time the listening connection is being re-opened."""
        pool = self._store.pool
        while True:
            try:
                async with pool.acquire() as conn:
                    await conn.add_listener(PUSH_CHANNEL, self._notified)
                    try:
                        while not conn.is_closed():
                            await asyncio.sleep(2.0)
                    finally:
                        with contextlib.suppress(Exception):
                            await conn.remove_listener(PUSH_CHANNEL, self._notified)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 (the database is away: polling goes on)
                pass
            await asyncio.sleep(2.0)

    def _notified(self, *_: object) -> None:
        self._wake.set()

    def _ssl_context(self) -> ssl.SSLContext:
        # Verification stays on; an extra CA may be added for agencies' own PKIs.
        context = ssl.create_default_context()
        if self._settings.push_ca_file:
            context.load_verify_locations(self._settings.push_ca_file)
        return context

    async def _round(self) -> None:
        for endpoint in await self._store.endpoints_due():
            organ = endpoint.organ_id
            breaker = self._breakers.setdefault(
                organ,
                Breaker(self._settings.push_breaker_failures, self._settings.push_breaker_seconds),
            )
            free = self._settings.push_concurrency - self._inflight[organ]
            slots = breaker.slots(free) if free > 0 else 0
            if slots <= 0:
                continue
            claimed = await self._store.claim(organ, slots, self._lease)
            if not claimed:
                breaker.probing = False
            for push in claimed:
                self._inflight[organ] += 1
                task = asyncio.create_task(self._attempt(endpoint, push), name="push-attempt")
                self._attempts.add(task)
                task.add_done_callback(self._attempts.discard)

    async def _attempt(self, endpoint: Endpoint, push: Claimed) -> None:
        try:
            if push.copy_state == "acknowledged":
                await self._store.close_taken(push)  # taken by pull: not pushed again
                return
            if push.recalled:  # it left the inbox too: the recipient never reads it
                now = datetime.now(UTC)
                reason = "recalled by its sender before it was taken: not pushed"
                await self._record(push, Outcome("failed", now, 0.0, None, reason))
                return
            result = await self._send(endpoint, push)
            breaker = self._breakers[endpoint.organ_id]
            if result.http_status is not None and result.outcome != "retry":
                breaker.succeeded()  # it answered: the system is up, whatever it said
            elif result.outcome != "acknowledged":
                breaker.failed()
            if self._metrics is not None:
                self._metrics.attempted(result.outcome, result.duration_ms / 1000)
            await self._record(push, result)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._store.release(push), 2.0)
            raise
        except Exception as exc:  # the lease runs out and the push is taken again
            log_failure(log, "a push attempt failed inside the hub", exc)
        finally:
            self._inflight[endpoint.organ_id] -= 1
            self._wake.set()

    async def _send(self, endpoint: Endpoint, push: Claimed) -> Outcome:
        started, clock = datetime.now(UTC), time.monotonic()
        webhook_id = str(push.id)
        status: int | None = None
        asked: str | None = None
        error: str | None = None
        try:
            context = seal_context(endpoint.organ_id)
            keys = [secret_key(self._box.open(s, context=context).decode())
                    for s in endpoint.sealed_secrets]  # fmt: skip
            path = self._blobs.path_for(push.digest)
            stamp = int(time.time())
            signed = " ".join(  # one signature per secret in use (Standard Webhooks rotation)
                [await asyncio.to_thread(signature, k, webhook_id, stamp, path) for k in keys]
            )
            headers = push_headers(
                webhook_id,
                stamp,
                signed,
                push.digest,
                str(push.package_id),
                push.kind,
                push.attempt,
            )
            assert self._session is not None
            with path.open("rb") as body:
                async with self._session.post(
                    endpoint.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    status, asked = response.status, response.headers.get("Retry-After")
                    if 200 <= status <= 299:
                        response.close()  # taken: whatever body follows is not read
                    else:
                        error = await _reason(response)
        except TimeoutError:
            error = f"no answer within {self._settings.push_timeout_seconds:g} s"
        except FileNotFoundError:
            error = "the package's bytes are missing at the hub (operators are alerted)"
            log.error("stored bytes missing for a push", extra={"push_id": webhook_id})
        except SealError:
            error = "the webhook secret does not open with this hub's secret key"
        except aiohttp.ClientSSLError as exc:
            error = f"TLS: {_short(exc)}"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"{'connection' if status is None else 'answer'}: {_short(exc)}"
        now = datetime.now(UTC)
        duration = (time.monotonic() - clock) * 1000
        if status is not None and verdict(status) == "acknowledged":
            return Outcome("acknowledged", started, duration, status)  # even if it then broke
        outcome = "retry" if status is None else verdict(status)
        if outcome == "failed" and status is not None and 300 <= status <= 399:
            error = f"HTTP {status}: redirects are not followed; set the final URL"
        if outcome == "retry":
            wait = retry_after(status, asked, now) if status is not None else None
            due = self._policy.next_attempt(push.attempt, push.window_start, now, wait)
            if due is not None:
                return Outcome("retry", started, duration, status, error, due)
            error = f"{error}; gave up: no attempt left within push_ttl_seconds"
            outcome = "failed"
        log.warning(
            "push failed",
            extra={"push_id": webhook_id, "organ_id": endpoint.organ_id, "error": error},
        )
        return Outcome("failed", started, duration, status, error)

    async def _record(self, push: Claimed, result: Outcome) -> None:
        """Record the attempt; while PostgreSQL is away, hold it and try again."""
        delay, said = 0.5, False
        while True:
            try:
                await self._store.record(push, result)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not unavailable(exc):
                    raise
                if not said:
                    log.warning(
                        "cannot record a push attempt; holding it until the database is back",
                        extra={"push_id": str(push.id), "error": type(exc).__name__},
                    )
                    said = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


async def _reason(response: aiohttp.ClientResponse) -> str:
    """``HTTP <status>: <start of the body>``, printable and short."""
    try:
        body = await asyncio.wait_for(response.content.read(_SNIPPET), 5.0)
    except (TimeoutError, aiohttp.ClientError):
        body = b""
    text = body.decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    reason = f"HTTP {response.status}"
    return f"{reason}: {text[:200]}" if text else reason


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return "".join(c if c.isprintable() else " " for c in text)[:200]
