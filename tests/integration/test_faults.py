"""Faults on the real services, injected on the network path of the hub under test only: the
database or the broker goes away (a TCP proxy that is cut), a queue drops its messages, the
broker enforces a low delivery limit. Nothing may be lost, and the hub must say what it can do."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from urllib.parse import urlsplit

import aio_pika
import aiohttp
import pytest

from adapters.client import HubClient, HubClientError
from exchange.auth import issue_credentials
from exchange.http.serve import running_hub
from exchange.registry import Agency
from exchange.store import database as db
from schemas import build_document
from tests.conftest import cleanup_broker, make_settings
from tests.support.faults import TcpProxy

SENDER, RECIPIENT = "000.00.00.G09", "000.00.00.H50"
AGENCIES = [
    Agency(SENDER, "Bộ Giáo dục và Đào tạo", None, "central"),
    Agency(RECIPIENT, "UBND tỉnh thử nghiệm", None, "province"),
]


def proxied(settings, pg: TcpProxy | None = None, amqp: TcpProxy | None = None, **changes):
    """The same settings, with the hub reaching PostgreSQL and/or RabbitMQ through proxies."""
    if pg is not None:
        parts = urlsplit(settings.database_url)
        changes["database_url"] = pg.url(f"{parts.scheme}://{parts.username}@", parts.path)
    if amqp is not None:
        changes["amqp_url"] = amqp.url("amqp://guest:guest@")
    return settings.replace(**changes)


def document(number: str) -> bytes:
    return build_document(
        sender=SENDER,
        recipients=[RECIPIENT],
        code_number=number,
        code_notation="BGDĐT",
        subject=f"Thử lỗi {number}",
    )


async def until(predicate, timeout: float = 20.0, every: float = 0.05):
    """Wait for an awaitable predicate to be true; returns the time it took."""
    started = time.monotonic()
    while not await predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true after {timeout} s")
        await asyncio.sleep(every)
    return time.monotonic() - started


async def delivered_ids(pool) -> set[str]:
    rows = await pool.fetch("SELECT package_id FROM deliveries WHERE state <> 'pending'")
    return {str(r["package_id"]) for r in rows}


@contextlib.asynccontextmanager
async def clean(settings):
    try:
        yield
    finally:
        await cleanup_broker(settings, [a.code for a in AGENCIES])
        await db.drop_schema(settings)


async def get_json(session, url: str, **kwargs) -> tuple[int, dict, dict]:
    async with session.get(url, **kwargs) as r:
        return r.status, await r.json(), dict(r.headers)


async def test_hub_starts_with_both_services_down_and_catches_up(tmp_path):
    """Started while PostgreSQL and RabbitMQ are both away: it lives, says it is not ready,
    answers 503; with the database back it accepts packages into the outbox; with the broker
    back it delivers them at once."""
    base = make_settings(tmp_path, broker_reconnect_seconds=0.2)
    async with TcpProxy("127.0.0.1", 5432) as pg, TcpProxy("127.0.0.1", 5672) as mq, clean(base):
        pg.cut()
        mq.cut()
        settings = proxied(base, pg, mq)
        async with (
            running_hub(settings, ready_within=None) as (hub, url),
            aiohttp.ClientSession() as session,
        ):
            status, body, _ = await get_json(session, f"{url}/healthz")
            assert status == 200 and body["status"] == "alive"
            status, body, _ = await get_json(session, f"{url}/readyz")
            assert status == 503 and body["database"] != "ok" and body["broker"] != "ok"
            async with session.post(f"{url}/v1/token", data={"client_id": "x"}) as r:
                assert r.status == 503 and r.headers["Retry-After"].isdigit()
                assert (await r.json())["error"]["code"] == "service.unavailable"

            pg.restore()
            await asyncio.wait_for(hub.database_ready.wait(), 30)
            status, body, _ = await get_json(session, f"{url}/readyz")
            assert status == 503 and body["database"] == "ok" and body["broker"] != "ok"
            await hub.registry.upsert(AGENCIES)
            creds = {a.code: await issue_credentials(hub.credentials, a.code) for a in AGENCIES}
            sender = HubClient(url, creds[SENDER].client_id, creds[SENDER].client_secret,
                               session=session)  # fmt: skip
            sent = [await sender.submit(document(str(n))) for n in range(5)]
            assert all(s["receipt"] is not None for s in sent)
            async with session.get(f"{url}/metrics") as r:
                text = await r.text()
            assert "lienthong_outbox_depth 5" in text
            assert 'lienthong_dependency_up{dependency="broker"} 0' in text

            mq.restore()
            took = await until(lambda: _all_in(hub.pool, sent), timeout=30)
            assert took < 10, f"the backlog took {took:.1f} s after the broker came back"
            status, body, _ = await get_json(session, f"{url}/readyz")
            assert status == 200 and body == {"status": "ready", "database": "ok", "broker": "ok"}


async def _all_in(pool, sent) -> bool:
    return {s["id"] for s in sent} <= await delivered_ids(pool)


async def test_database_outage_is_503_with_retry_after_and_loses_nothing(tmp_path):
    base = make_settings(tmp_path)
    async with TcpProxy("127.0.0.1", 5432) as pg, clean(base):
        settings = proxied(base, pg)
        async with running_hub(settings) as (hub, url), aiohttp.ClientSession() as session:
            await hub.registry.upsert(AGENCIES)
            for agency in AGENCIES:
                await hub.broker.ensure_agency(agency.code)
            creds = await issue_credentials(hub.credentials, SENDER)
            sender = HubClient(url, creds.client_id, creds.client_secret, session=session)
            first = await sender.submit(document("1"))
            token = await sender.token()
            pg.cut()
            for attempt in (sender.submit(document("2")), sender.inbox()):
                with pytest.raises(HubClientError) as info:
                    await attempt
                assert (info.value.status, info.value.code) == (503, "service.unavailable")
            status, body, headers = await get_json(
                session, f"{url}/v1/inbox", headers={"Authorization": f"Bearer {token}"}
            )
            assert status == 503 and int(headers["Retry-After"]) > 0
            status, body, _ = await get_json(session, f"{url}/readyz")
            assert status == 503 and body["database"].startswith("unreachable")
            pg.restore()
            second = await sender.submit(document("2"))
            await until(lambda: _all_in(hub.pool, [first, second]))


async def test_a_database_that_stops_answering_is_503_in_bounded_time(tmp_path):
    """A partition (no reset, nothing answers) must not hang requests: statements are bounded
    by database_timeout_seconds and the answer is 503."""
    base = make_settings(tmp_path, database_timeout_seconds=2.0)
    async with TcpProxy("127.0.0.1", 5432) as pg, clean(base):
        settings = proxied(base, pg)
        async with running_hub(settings) as (hub, url), aiohttp.ClientSession() as session:
            await hub.registry.upsert(AGENCIES)
            creds = await issue_credentials(hub.credentials, SENDER)
            sender = HubClient(url, creds.client_id, creds.client_secret, session=session)
            token = await sender.token()
            pg.freeze()
            started = time.monotonic()
            status, body, _ = await get_json(
                session, f"{url}/v1/inbox", headers={"Authorization": f"Bearer {token}"}
            )
            took = time.monotonic() - started
            assert status == 503 and body["error"]["code"] == "service.unavailable"
            assert took < 10, took
            pg.restore()
            await until(lambda: _answers(session, url, token))


async def _answers(session, url: str, token: str) -> bool:
    status, _, _ = await get_json(
        session, f"{url}/v1/inbox", headers={"Authorization": f"Bearer {token}"}
    )
    return status == 200


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def low_delivery_limit_policy(request):
    """A broker policy with a delivery limit of 2 on this test's queues, as an operator (or
    RabbitMQ 4's default of 20, only lower) would set it."""
    policies = []

    def apply(prefix: str) -> None:
        name = f"{prefix}-delivery-limit"
        pattern = "^" + prefix.replace(".", r"\.") + r"\.inbox\."
        rabbitmqctl("set_policy", "--apply-to", "queues", name, pattern, '{"delivery-limit": 2}')
        policies.append(name)

    yield apply
    for name in policies:
        rabbitmqctl("clear_policy", name)


async def test_nothing_lost_under_a_low_delivery_limit_while_the_database_is_down(
    tmp_path, low_delivery_limit_policy
):
    """One hub publishes (the outbox rows are gone after the confirms), another consumes while
    its database is unreachable. Bouncing the messages against the queue would exhaust a
    delivery limit of 2 within seconds and the broker would drop them; held instead, every one
    arrives once the database is back."""
    base = make_settings(tmp_path)
    low_delivery_limit_policy(base.broker_prefix)
    async with TcpProxy("127.0.0.1", 5432) as pg, clean(base):
        consumer_settings = proxied(base, pg)
        async with (
            running_hub(consumer_settings) as (consumer, _),
            running_hub(base, consume=False) as (publisher, url),
            aiohttp.ClientSession() as session,
        ):
            await publisher.registry.upsert(AGENCIES)
            for agency in AGENCIES:
                await consumer.broker.ensure_agency(agency.code)
            creds = await issue_credentials(publisher.credentials, SENDER)
            sender = HubClient(url, creds.client_id, creds.client_secret, session=session)
            pg.cut()
            sent = [await sender.submit(document(f"7{n:02d}")) for n in range(30)]
            # Every delivery is confirmed by the broker and out of the outbox ...
            await until(lambda: _outbox_empty(publisher.pool))
            # ... and reaching the consumer, which cannot record it.
            await until(lambda: _holding(consumer, 1))
            await asyncio.sleep(3.0)  # long enough for 6 requeues at the old 0.5 s pace
            # None bounced into the dead letters: all still queued, or held by the consumer.
            ready = await _ready_count(base, consumer.broker.queue_name(RECIPIENT))
            assert ready + consumer.worker.waiting == 30, (ready, consumer.worker.waiting)
            pg.restore()
            await until(lambda: _all_in(publisher.pool, sent), timeout=30)
            once = await publisher.pool.fetchval(
                "SELECT count(*) FROM events WHERE event = 'delivered' "
                "AND package_id = ANY($1::uuid[])",
                [s["id"] for s in sent],
            )
            assert once == 30


async def _ready_count(settings, queue_name: str) -> int:
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        return queue.declaration_result.message_count


async def _outbox_empty(pool) -> bool:
    return await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def _holding(hub, count: int) -> bool:
    return hub.worker.waiting >= count


async def test_queues_declare_an_explicit_delivery_limit_and_dead_letters(tmp_path):
    """The agency queues carry x-delivery-limit and at-least-once dead-lettering: redeclaring
    with other arguments is refused by the broker."""
    settings = make_settings(tmp_path, delivery_limit=7)
    async with clean(settings), running_hub(settings) as (hub, _):
        await hub.registry.upsert(AGENCIES)
        for agency in AGENCIES:
            await hub.broker.ensure_agency(agency.code)
        connection = await aio_pika.connect(settings.amqp_url)
        async with connection:
            name = hub.broker.queue_name(RECIPIENT)
            channel = await connection.channel()
            same = hub.broker._arguments()
            assert same["x-delivery-limit"] == 7
            await channel.declare_queue(name, durable=True, arguments=same)  # accepted
            other = {**same, "x-delivery-limit": 8}
            with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
                await channel.declare_queue(name, durable=True, arguments=other)


async def test_a_message_over_the_delivery_limit_is_dead_lettered_and_delivered(tmp_path):
    """The broker's own path: a message returned more often than the limit allows moves to the
    dead-letter queue, and the hub delivers it from there."""
    settings = make_settings(tmp_path, delivery_limit=1)
    async with (
        clean(settings),
        running_hub(settings) as (hub, url),
        aiohttp.ClientSession() as session,
    ):
        await hub.registry.upsert(AGENCIES)
        for agency in AGENCIES:
            await hub.broker.ensure_agency(agency.code)
        creds = await issue_credentials(hub.credentials, SENDER)
        sender = HubClient(url, creds.client_id, creds.client_secret, session=session)
        await hub.broker.pause_consuming()  # nobody of the hub consumes now
        sent = await sender.submit(document("dl"))
        connection = await aio_pika.connect(settings.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(hub.broker.queue_name(RECIPIENT), passive=True)
            for _ in range(2):  # returned twice: over a limit of one
                message = await _get(queue)
                await message.nack(requeue=True)
            await until(lambda: _queued_in(settings, hub.broker.dead_letter_queue))
            assert await _ready_count(settings, hub.broker.queue_name(RECIPIENT)) == 0
        await hub.broker.resume_consuming()
        await until(lambda: _all_in(hub.pool, [sent]))


async def _queued_in(settings, name: str) -> bool:
    return await _ready_count(settings, name) > 0


async def _get(queue, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await queue.get(fail=False)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError("no message arrived")


async def test_a_message_the_broker_lost_is_published_again(tmp_path):
    """A delivery confirmed by the broker whose message then vanished (a purged queue, a lost
    node) is found by the reconciler and published again."""
    settings = make_settings(tmp_path, redeliver_after_seconds=1.0, reconcile_interval_seconds=0.3)
    async with (
        clean(settings),
        running_hub(settings) as (hub, url),
        aiohttp.ClientSession() as session,
    ):
        await hub.registry.upsert(AGENCIES)
        for agency in AGENCIES:
            await hub.broker.ensure_agency(agency.code)
        creds = await issue_credentials(hub.credentials, SENDER)
        sender = HubClient(url, creds.client_id, creds.client_secret, session=session)
        await hub.broker.pause_consuming()
        sent = await sender.submit(document("lost"))
        await until(lambda: _outbox_empty(hub.pool))
        connection = await aio_pika.connect(settings.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(hub.broker.queue_name(RECIPIENT), passive=True)
            await until(lambda: _queued(queue))
            await queue.purge()  # the broker lost it
        await hub.broker.resume_consuming()
        await until(lambda: _all_in(hub.pool, [sent]), timeout=20)
        routed = await hub.pool.fetchval(
            "SELECT count(*) FROM events WHERE event = 'routed' AND package_id = $1::uuid",
            sent["id"],
        )
        assert routed == 1  # published twice, recorded once


async def _queued(queue) -> bool:
    declared = await queue.channel.declare_queue(queue.name, passive=True)
    return declared.declaration_result.message_count > 0


async def test_backlog_goes_out_within_seconds_after_a_broker_outage(tmp_path):
    """The relay's backoff does not grow while the broker is away, and the backlog is sent
    as soon as it is back."""
    base = make_settings(tmp_path, outbox_retry_seconds=0.2, broker_reconnect_seconds=0.2)
    async with TcpProxy("127.0.0.1", 5672) as mq, clean(base):
        settings = proxied(base, amqp=mq)
        async with running_hub(settings) as (hub, url), aiohttp.ClientSession() as session:
            await hub.registry.upsert(AGENCIES)
            for agency in AGENCIES:
                await hub.broker.ensure_agency(agency.code)
            creds = await issue_credentials(hub.credentials, SENDER)
            sender = HubClient(url, creds.client_id, creds.client_secret, session=session)
            mq.cut()
            await until(lambda: _broker_down(hub))
            sent = [await sender.submit(document(f"8{n:02d}")) for n in range(20)]
            await asyncio.sleep(6.0)  # an outage long enough for the old backoff to reach 6 s
            async with session.get(f"{url}/metrics") as r:
                text = await r.text()
            assert "lienthong_outbox_depth 20" in text
            age = float(
                next(
                    line.split()[1]
                    for line in text.splitlines()
                    if line.startswith("lienthong_outbox_oldest_age_seconds ")
                )
            )
            assert age >= 5.0
            mq.restore()
            took = await until(lambda: _all_in(hub.pool, sent), timeout=60)
            assert took < 4.0, f"the backlog took {took:.1f} s after the broker came back"


async def _broker_down(hub) -> bool:
    return not hub.broker.ready
