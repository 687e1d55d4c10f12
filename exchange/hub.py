"""The composition root: one hub process, its adapters wired to its use cases, started and
stopped as one (``async with Hub(settings) as hub``).

Nothing here decides anything about packages: :mod:`exchange.submission` and
:mod:`exchange.delivery` do, through the ports of :mod:`exchange.ports`, which the PostgreSQL
stores, the blob store, the broker and the worker pool implement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from exchange.auth import TokenCache
from exchange.blobs import BlobStore
from exchange.broker import Broker, Dispatcher, InboxWorker
from exchange.config import Settings
from exchange.delivery import Deliveries
from exchange.ledger import Ledger
from exchange.observability import Metrics, gauge_lines
from exchange.policy import Policy
from exchange.receipts import Receipts
from exchange.sealing import open_secret_box
from exchange.store import Stores
from exchange.store import database as db
from exchange.store.flows import PostgresFlows
from exchange.store.registry import REGISTRY_CHANNEL
from exchange.submission import Submissions
from exchange.verification import Inspector
from exchange.workers import CpuPool
from schemas import Limits
from signing import KeyHandle, KeySource, ensure_dev_key, install_fast_paths, open_key

__all__ = ["Hub", "open_hub_key"]

log = logging.getLogger("lienthong.hub")


class Hub:
    """Everything one hub process runs.

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
        self._exit = contextlib.ExitStack()
        self.key: KeyHandle = self._exit.enter_context(open_hub_key(settings))
        self.tokens = TokenCache()
        self.metrics = Metrics()
        self.blobs = BlobStore(settings.blob_dir)
        self.secrets = open_secret_box(settings)  # webhook and VDXP secrets, sealed at rest
        self.cpu = CpuPool(settings.cpu_workers or os.cpu_count() or 1, warm_worker)
        # No connection is opened until one is needed: the pool exists while PostgreSQL is down.
        self.pool = db.pool(settings, max_size=settings.database_pool_size)
        self.stores = Stores.over(self.pool)
        self.packages = self.stores.packages
        self.registry = self.stores.registry
        self.credentials = self.stores.credentials
        self.ledger_store = self.stores.ledger
        self.broker = Broker(settings)
        self.ledger = Ledger(
            self.ledger_store,
            self.key,
            tsa_url=settings.tsa_url or None,
            head_interval=settings.ledger_head_interval_seconds,
        )
        self.receipts = Receipts(self.ledger_store, self.ledger, self.key)
        self.dispatcher = Dispatcher(self.packages, self.broker, settings)
        self.deliveries = Deliveries(self.packages)
        self.flows = PostgresFlows(self.pool)  # dispositions and links (exchange/flows.py)
        self.worker = InboxWorker(self.deliveries, self.broker)
        self.inspector = Inspector(settings, self.cpu, self.limits)
        self.submissions = Submissions(
            self.packages,
            self.registry,
            self.inspector,
            Policy(settings, self.registry),
            self.dispatcher,
            self.receipts,
            retry_after=settings.outbox_retry_seconds,
            on_accepted=self.metrics.count_accepted,
        )
        self.database_ready = asyncio.Event()  # migrated and reachable at least once
        self.broker_ready = asyncio.Event()  # connected, queues declared and consumed
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the workers and the background loops; dependencies come up on their own."""
        await self.cpu.start()
        await self.pool  # with no minimum size, this connects nothing
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
        """Prometheus gauges read now: outbox depth and age, copies by state, held messages,
        which dependency is up."""
        lines = gauge_lines(
            "lienthong_dependency_up",
            "Whether the hub can use a dependency (1) or not (0).",
            {'dependency="broker"': int(self.broker.ready)},
        )
        database_up = 0
        if self.database_ready.is_set():
            try:
                depth, age = await asyncio.wait_for(self.packages.outbox_gauge(), 2.0)
                states = await asyncio.wait_for(self.packages.copies_waiting(), 2.0)
                database_up = 1
                lines += gauge_lines(
                    "lienthong_outbox_depth", "Deliveries the broker has not confirmed yet.", depth
                )
                lines += gauge_lines(
                    "lienthong_outbox_oldest_age_seconds",
                    "Age of the oldest outbox row.",
                    round(age, 3),
                )
                lines += gauge_lines(
                    "lienthong_deliveries",
                    "Copies not yet acknowledged, by state.",
                    {f'state="{state}"': count for state, count in states.items()},
                )
            except Exception:  # noqa: BLE001 (the gauge then says the database is down)
                pass
        lines.append(f'lienthong_dependency_up{{dependency="database"}} {database_up}')
        lines += gauge_lines(
            "lienthong_deliveries_held",
            "Messages received and not yet recorded (held while the database is down).",
            self.worker.waiting,
        )
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
        while self.consume:
            try:
                await self.worker.consume(await self.registry.codes())
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
                await conn.add_listener(REGISTRY_CHANNEL, self._on_registry_change)
                if self.broker_ready.is_set():
                    await self._declare_new_agencies()  # what was missed while away
                while not conn.is_closed():
                    await asyncio.sleep(2.0)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await conn.remove_listener(REGISTRY_CHANNEL, self._on_registry_change)
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
            await loop.stop()
        await self.broker.close()
        try:
            await asyncio.wait_for(self.pool.close(), 5.0)
        except TimeoutError:
            self.pool.terminate()
        await self.cpu.close()
        self._exit.close()

    def _on_registry_change(self, *_: object) -> None:
        asyncio.get_running_loop().create_task(self._declare_new_agencies())

    async def _declare_new_agencies(self) -> None:
        if not self.broker_ready.is_set():
            return  # declared with all the others once the broker is in use
        try:
            for code in await self.registry.codes():
                await self.broker.ensure_agency(code)
        except Exception:
            log.exception("declaring queues for new agencies failed")


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
