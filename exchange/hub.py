"""The running hub: database pool, blob store, broker, dispatcher and inbox worker, wired once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from exchange import db
from exchange.auth import TokenCache
from exchange.blobs import BlobStore, IncomingBlob
from exchange.broker import Broker, Dispatcher, InboxWorker
from exchange.config import Settings
from exchange.edxml import Limits, parse_package
from exchange.errors import HubError
from exchange.ledger import Ledger
from exchange.packages import (
    Submission,
    check_sender,
    find_submission,
    record_rejection,
    record_submission,
)
from exchange.receipts import Claims, issue_receipt, sign_receipt
from exchange.verification import Verifier
from signing.devkey import ensure_dev_key
from signing.keys import KeyHandle, KeySource, open_key

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
    """Everything one hub process runs. ``await hub.start()`` then serve the API."""

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
        self.cpu: ProcessPoolExecutor | None = None  # parsing and verification, off the loop
        self._exit = contextlib.ExitStack()
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        """Migrate, connect, declare the topology and start the background loops."""
        await db.create_database(self.settings)
        await db.migrate(self.settings)
        await self._start_workers()
        if self.settings.trust_anchors:
            self.verifier = Verifier(self.settings, self.in_worker, self.limits)
        else:
            log.warning("no trust anchors configured: package signatures are not verified")
        self.pool = await db.connect(self.settings, max_size=self.settings.database_pool_size)
        self.key = self._exit.enter_context(open_hub_key(self.settings))
        self.ledger = Ledger(
            self.pool,
            self.key,
            tsa_url=self.settings.tsa_url or None,
            head_interval=self.settings.ledger_head_interval_seconds,
        )
        self.ledger.start()
        await self.broker.connect()
        self.dispatcher = Dispatcher(self.pool, self.broker, self.settings)
        self.dispatcher.start()
        if self.consume:
            self.worker = InboxWorker(self.pool, self.broker)
            await self.worker.consume(await self._agency_codes())
            self._listener = await self.pool.acquire()
            await self._listener.add_listener("lienthong_registry", self._on_registry_change)
        log.info("hub started", extra={"schema": self.settings.database_schema})

    async def stop(self) -> None:
        if self.ledger:
            await self.ledger.stop()
        if self.dispatcher:
            await self.dispatcher.stop()
        if self.worker:
            await self.worker.stop()
        if self._listener is not None and self.pool is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener("lienthong_registry", self._on_registry_change)
            await self.pool.release(self._listener)
            self._listener = None
        await self.broker.close()
        if self.pool:
            await self.pool.close()
        if self.cpu is not None:
            self.cpu.shutdown(wait=False, cancel_futures=True)
        self._exit.close()

    async def _start_workers(self) -> None:
        """The process pool for parsing and verification, warmed (imports, compiled schemas)."""
        workers = self.settings.cpu_workers or os.cpu_count() or 1
        self.cpu = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("forkserver")
        )
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.cpu, warm_worker) for _ in range(workers)))

    async def in_worker(self, fn, *args):
        """Run ``fn(*args)`` in the process pool; a pool broken by a dying worker is replaced
        once (the package that killed it then gets the error it deserves)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.cpu, fn, *args)
        except BrokenProcessPool:
            log.error("a worker process died; starting a new pool")
            self.cpu.shutdown(wait=False, cancel_futures=True)
            await self._start_workers()
            return await asyncio.get_running_loop().run_in_executor(self.cpu, fn, *args)

    async def _agency_codes(self) -> list[str]:
        assert self.pool is not None
        rows = await self.pool.fetch("SELECT code FROM agencies ORDER BY code")
        return [r["code"] for r in rows]

    def _on_registry_change(self, *_: object) -> None:
        asyncio.get_running_loop().create_task(self._declare_new_agencies())

    async def _declare_new_agencies(self) -> None:
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
            package = await self.in_worker(parse_package, str(incoming.path), self.limits)
            check_sender(caller, package)
            verdict = None
            # Identical bytes again: the first answer stands, without verifying them twice.
            if self.verifier is not None and not await find_submission(self.pool, incoming.digest):
                report = await self.verifier.validate(incoming.path)
                verdict = await self.verifier.judge(self.pool, caller.organ_id, report)
            result = await self._store(caller, package, incoming, verdict)
        except HubError as exc:
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
    """Load what parsing and verification need in a worker process."""
    from schemas import load_schema
    from signing import validate_package  # noqa: F401

    load_schema("edxml")
    load_schema("status")
