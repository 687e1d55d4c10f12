"""The running hub: database pool, blob store, broker, dispatcher and inbox worker, wired once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from exchange import db
from exchange.auth import TokenCache
from exchange.blobs import BlobStore, IncomingBlob
from exchange.broker import Broker, Dispatcher, InboxWorker
from exchange.config import Settings
from exchange.errors import HubError
from exchange.ledger import Ledger
from exchange.packages import (
    Submission,
    check_sender,
    find_submission,
    record_rejection,
    record_submission,
)
from exchange.receipts import Claims, issue_receipt, load_receipt, sign_receipt
from exchange.verification import Verifier, inspect_package
from exchange.workers import CpuPool
from schemas import FormatError, Limits
from signing import KeyHandle, KeySource, ensure_dev_key, install_fast_paths, open_key

__all__ = ["Hub", "Metrics"]

log = logging.getLogger("lienthong.hub")


@dataclass
class Metrics:
    """Counters exported at ``/metrics`` in Prometheus text format."""

    accepted: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)

    def render(self) -> str:
        lines = [
            "# HELP lienthong_packages_accepted_total Packages accepted, by kind.",
            "# TYPE lienthong_packages_accepted_total counter",
        ]
        lines += [
            f'lienthong_packages_accepted_total{{kind="{k}"}} {v}' for k, v in self.accepted.items()
        ]
        lines += [
            "# HELP lienthong_requests_refused_total Requests refused, by error code.",
            "# TYPE lienthong_requests_refused_total counter",
        ]
        lines += [
            f'lienthong_requests_refused_total{{code="{k}"}} {v}' for k, v in self.refused.items()
        ]
        return "\n".join(lines) + "\n"


class Hub:
    """Everything one hub process runs. ``await hub.start()`` then serve the API.

    Start-up never waits for PostgreSQL or RabbitMQ: the hub comes up, retries each with
    backoff, and reports what it can reach in :meth:`readiness`. While the broker is away it
    still accepts packages (into the outbox); while the database is away it answers 503.
    """

    def __init__(self, settings: Settings, *, consume: bool = True) -> None:
        self.settings = settings
        self.consume = consume
        self.limits = Limits(
            max_bytes=settings.max_body_bytes,
            max_depth=settings.max_depth,
            max_attachments=settings.max_attachments,
        )
        self.tokens = TokenCache()
        self.metrics = Metrics()
        self.pool: asyncpg.Pool | None = None
        self.blobs = BlobStore(settings.blob_dir)
        self.broker = Broker(settings)
        self.dispatcher: Dispatcher | None = None
        self.worker: InboxWorker | None = None
        self.ledger: Ledger | None = None
        self.key: KeyHandle | None = None
        self.verifier: Verifier | None = None
        self.cpu = CpuPool(settings.cpu_workers or os.cpu_count() or 1, warm_worker)
        self.database_ready = asyncio.Event()  # migrated and reachable at least once
        self.broker_ready = asyncio.Event()  # connected, queues declared and consumed
        self._exit = contextlib.ExitStack()
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """Start the workers and the background loops; dependencies come up on their own."""
        await self.cpu.start()
        if self.settings.trust_anchors:
            self.verifier = Verifier(self.settings)
        else:
            log.warning("no trust anchors configured: package signatures are not verified")
        self.key = self._exit.enter_context(open_hub_key(self.settings))
        # No connection is opened here: the pool connects on demand.
        self.pool = await db.connect(
            self.settings, min_size=0, max_size=self.settings.database_pool_size
        )
        self.ledger = Ledger(
            self.pool,
            self.key,
            tsa_url=self.settings.tsa_url or None,
            head_interval=self.settings.ledger_head_interval_seconds,
        )
        self.dispatcher = Dispatcher(self.pool, self.broker, self.settings)
        if self.consume:
            self.worker = InboxWorker(self.pool, self.broker)
        self._tasks = [
            asyncio.create_task(self._bring_up_database(), name="database-bring-up"),
            asyncio.create_task(self._bring_up_broker(), name="broker-bring-up"),
        ]
        log.info("hub starting", extra={"schema": self.settings.database_schema})

    async def wait_ready(self, timeout: float) -> None:
        """Wait until PostgreSQL and RabbitMQ are both in use; ``TimeoutError`` otherwise."""
        try:
            await asyncio.wait_for(
                asyncio.gather(self.database_ready.wait(), self.broker_ready.wait()), timeout
            )
        except TimeoutError:
            missing = [
                name
                for name, ready in (
                    ("PostgreSQL", self.database_ready),
                    ("RabbitMQ", self.broker_ready),
                )
                if not ready.is_set()
            ]
            raise TimeoutError(
                f"{' and '.join(missing)} not reachable after {timeout:.0f} s"
            ) from None

    async def readiness(self) -> dict[str, str]:
        """What the hub can use right now: ``{"database": "ok" | reason, "broker": ...}``."""
        database = "starting: schema not migrated yet"
        if self.database_ready.is_set():
            try:
                await asyncio.wait_for(self.pool.fetchval("SELECT 1"), 2.0)
                database = "ok"
            except Exception as exc:  # noqa: BLE001 (any failure means not ready)
                database = f"unreachable: {type(exc).__name__}"
        if self.broker.ready and self.broker_ready.is_set():
            broker = "ok"
        elif self.broker_ready.is_set():
            broker = "unreachable: reconnecting"
        else:
            broker = "starting: not connected yet"
        return {"database": database, "broker": broker}

    async def gauges(self) -> str:
        """Prometheus gauges read now: outbox depth and age, held deliveries, dependencies."""
        lines = [
            "# HELP lienthong_dependency_up Whether the hub can use a dependency (1) or not (0).",
            "# TYPE lienthong_dependency_up gauge",
            f'lienthong_dependency_up{{dependency="broker"}} {int(self.broker.ready)}',
        ]
        database_up = 0
        if self.database_ready.is_set():
            try:
                row = await asyncio.wait_for(
                    self.pool.fetchrow(
                        "SELECT count(*) AS depth, "
                        "coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age "
                        "FROM outbox"
                    ),
                    2.0,
                )
                database_up = 1
                lines += [
                    "# HELP lienthong_outbox_depth Deliveries the broker has not confirmed yet.",
                    "# TYPE lienthong_outbox_depth gauge",
                    f"lienthong_outbox_depth {row['depth']}",
                    "# HELP lienthong_outbox_oldest_age_seconds Age of the oldest outbox row.",
                    "# TYPE lienthong_outbox_oldest_age_seconds gauge",
                    f"lienthong_outbox_oldest_age_seconds {float(row['age']):.3f}",
                ]
            except Exception:  # noqa: BLE001 (the gauge then says the database is down)
                pass
        lines.append(f'lienthong_dependency_up{{dependency="database"}} {database_up}')
        held = self.worker.waiting if self.worker else 0
        lines += [
            "# HELP lienthong_deliveries_held Messages received and not yet recorded (held while "
            "the database is down).",
            "# TYPE lienthong_deliveries_held gauge",
            f"lienthong_deliveries_held {held}",
        ]
        return "\n".join(lines) + "\n"

    async def _bring_up_database(self) -> None:
        delay = 0.5
        while True:
            try:
                await db.create_database(self.settings)
                await db.migrate(self.settings)
                break
            except Exception as exc:
                if not db.unavailable(exc):
                    log.exception("the database schema could not be migrated")
                log.warning(
                    "PostgreSQL unreachable; retrying",
                    extra={"error": f"{type(exc).__name__}: {exc}", "retry_in": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.ledger.start()
        self.dispatcher.start()
        self.database_ready.set()
        log.info("database ready")
        if self.consume:
            self._tasks.append(
                asyncio.create_task(self._listen_for_registry(), name="registry-listener")
            )

    async def _bring_up_broker(self) -> None:
        await self.broker.connect()  # waits as long as the broker is away
        await self.database_ready.wait()
        delay = 0.5
        while self.worker is not None:
            try:
                await self.worker.consume(await self._agency_codes())
                break
            except Exception as exc:
                log.warning(
                    "declaring and consuming the agencies' queues failed; retrying",
                    extra={"error": f"{type(exc).__name__}: {exc}", "retry_in": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.broker_ready.set()
        self.dispatcher.flush()  # whatever waited in the outbox goes now
        log.info("broker ready")

    async def _listen_for_registry(self) -> None:
        """Declare queues for agencies registered while we run (PostgreSQL NOTIFY); the
        listening connection is re-opened after a database restart."""
        while True:
            try:
                conn = await self.pool.acquire()
            except Exception:
                await asyncio.sleep(2.0)
                continue
            try:
                await conn.add_listener("lienthong_registry", self._on_registry_change)
                if self.broker_ready.is_set():
                    await self._declare_new_agencies()  # what was missed while away
                while not conn.is_closed():
                    await asyncio.sleep(2.0)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await conn.remove_listener("lienthong_registry", self._on_registry_change)
                raise
            except Exception as exc:
                log.warning("registry listener lost", extra={"error": repr(exc)})
            finally:
                with contextlib.suppress(Exception):
                    await self.pool.release(conn)
            await asyncio.sleep(2.0)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for loop in (self.ledger, self.dispatcher, self.worker):
            if loop is not None:
                await loop.stop()
        await self.broker.close()
        if self.pool:
            try:
                await asyncio.wait_for(self.pool.close(), 5.0)
            except TimeoutError:
                self.pool.terminate()
        await self.cpu.close()
        self._exit.close()

    async def in_worker(self, fn, *args):
        """Run ``fn(*args)`` in the process pool (parsing and verification)."""
        return await self.cpu.run(fn, *args)

    async def _agency_codes(self) -> list[str]:
        assert self.pool is not None
        rows = await self.pool.fetch("SELECT code FROM agencies ORDER BY code")
        return [r["code"] for r in rows]

    def _on_registry_change(self, *_: object) -> None:
        asyncio.get_running_loop().create_task(self._declare_new_agencies())

    async def _declare_new_agencies(self) -> None:
        if not self.broker_ready.is_set():
            return  # declared with all the others once the broker is in use
        try:
            for code in await self._agency_codes():
                await self.broker.ensure_agency(code)
        except Exception:
            log.exception("declaring queues for new agencies failed")

    async def submit(self, caller, incoming: IncomingBlob) -> Submission:
        """Check, verify, store and route a received body. The temporary file is always removed.

        Refusals of a readable package (wrong sender, unknown recipient, failed signature, ...)
        are also written to the ledger as 'rejected' events.
        """
        assert self.pool is not None and self.dispatcher is not None
        package = None
        try:
            await incoming.finish()
            # Identical bytes again: the first answer stands, without verifying them twice.
            verify = self.verifier is not None and not await find_submission(
                self.pool, incoming.digest
            )
            package, report = await self.in_worker(
                inspect_package,
                str(incoming.path),
                self.limits,
                caller.organ_id,
                self.verifier.trust if verify else None,
                incoming.digest.hex(),
            )
            check_sender(caller, package)
            verdict = None
            if report is not None:
                verdict = await self.verifier.judge(self.pool, caller.organ_id, report)
            result = await self._store(caller, package, incoming, verdict)
        except (HubError, FormatError) as exc:
            log.info(
                "package refused",
                extra={
                    "code": exc.code,
                    "digest": incoming.digest.hex(),
                    "organ_id": caller.organ_id,
                },
            )
            if package is not None:
                await record_rejection(self.pool, caller, incoming.digest, exc)
            raise
        finally:
            incoming.discard()
        if result.outgoing:
            self.dispatcher.submit(result.outgoing)
        result = dataclasses.replace(result, receipt=await self.receipt(result))
        self.metrics.accepted[result.kind] += 1
        log.info(
            "package accepted",
            extra={
                "package_id": str(result.id),
                "digest": result.digest.hex(),
                "duplicate": result.duplicate,
                "organ_id": caller.organ_id,
            },
        )
        return result

    async def _store(self, caller, package, incoming: IncomingBlob, verdict) -> Submission:
        # Keep the bytes at their content address before the row that points at them.
        kept = await incoming.keep()
        try:
            return await record_submission(
                self.pool,
                caller,
                package,
                incoming.digest,
                incoming.size,
                retry_after=self.settings.outbox_retry_seconds,
                verdict=verdict,
            )
        except HubError:
            if not await self._digest_known(incoming.digest):
                kept.unlink(missing_ok=True)
            raise

    async def _digest_known(self, digest: bytes) -> bool:
        assert self.pool is not None
        return bool(await self.pool.fetchval("SELECT 1 FROM packages WHERE digest = $1", digest))

    async def receipt(self, result: Submission) -> dict | None:
        """The signed receipt of an accepted package, citing its ledger leaf."""
        assert self.pool is not None and self.ledger is not None and self.key is not None
        if result.duplicate or result.event_id is None:
            stored = await load_receipt(self.pool, result.id)
            if stored is not None:
                return stored
            # The first attempt may still be waiting for its leaf: wait for it the same way.
            event_id = await self.pool.fetchval(
                "SELECT id FROM events WHERE package_id = $1 AND event = 'submitted'", result.id
            )
            if event_id not in await self.ledger.wait_indexed([event_id]):
                return None
            return await issue_receipt(self.pool, self.key, result.id)
        positions = await self.ledger.wait_indexed([result.event_id])
        if result.event_id not in positions:
            # Never sign a receipt without its leaf: GET /v1/packages/{id}/receipt makes it later.
            log.warning(
                "receipt pending: no ledger position yet", extra={"package_id": str(result.id)}
            )
            return None
        claims = Claims(
            result.id,
            result.kind,
            result.document_id,
            result.digest,
            result.sender,
            result.recipients,
            result.received_at,
            positions.get(result.event_id),
        )
        return await sign_receipt(self.pool, self.key, claims)


@contextlib.contextmanager
def open_hub_key(settings: Settings, *, create: bool = True) -> Iterator[KeyHandle]:
    """The hub's own signing key (ledger heads, receipts), as configured. Tools that only read
    (``audit check``, ``hub certificate``) pass ``create=False``: a missing development key is
    then a SigningError, never silently replaced by a new one."""
    secret = os.environ.get("LIENTHONG_LEDGER_SECRET")
    if settings.ledger_pkcs11_lib:
        source = KeySource(
            pkcs11_lib=settings.ledger_pkcs11_lib,
            token=settings.ledger_token,
            key_label=settings.ledger_key_label,
        )
    elif settings.ledger_p12:
        source = KeySource(p12=Path(settings.ledger_p12))
    else:
        path = Path(settings.blob_dir).resolve().parent / "hub-dev-key.p12"
        if create:
            ensure_dev_key(path)
            log.warning("no ledger key configured: signing with the development key %s", path)
        source, secret = KeySource(p12=path), None
    with open_key(source, secret) as key:
        yield key


def warm_worker() -> None:
    """Load what parsing and verification need in a worker process; install the fast paths."""
    from schemas import load_schema

    install_fast_paths()
    load_schema("edxml")
    load_schema("status")
