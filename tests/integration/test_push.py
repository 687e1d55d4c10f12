"""Push delivery against real receivers on 127.0.0.1, through the real API, PostgreSQL and
RabbitMQ: the request and its signature, every answer a receiver may give, retries, dead
letters and redelivery, the circuit breaker, and a slow system that must not delay the others."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import time

import aiohttp
import pytest

from exchange.errors import HubError
from exchange.http.serve import running_hub
from schemas import build_document, build_status
from tests.conftest import Exchange, cleanup_broker, make_settings
from tests.integration.test_faults import until
from tests.support.receivers import Receiver, free_port, standard_signature

SENDER = "000.00.00.G05"
FAST = dict(
    push_retry_schedule="0.4,0.4,0.4",
    push_ttl_seconds=60.0,
    push_timeout_seconds=1.5,
    push_connect_timeout_seconds=1.0,
    push_poll_seconds=0.05,
    push_breaker_failures=100,
)
ADMIN = "operator-token-for-tests"
_numbers = itertools.count(1)
_codes = itertools.count(10)


@contextlib.asynccontextmanager
async def hub_with(tmp_path, **changes):
    """A hub of its own (push settings of the test), the sender registered."""
    settings = make_settings(tmp_path, **{**FAST, **changes})
    codes: list[str] = []
    from exchange.store import database as db

    try:
        async with aiohttp.ClientSession() as session, running_hub(settings) as (hub, url):
            ex = Exchange(hub, url, session)
            ex.codes = codes
            await ex.register((SENDER, "Bộ Tư pháp"))
            ex.sender = await ex.client(SENDER)
            yield ex
    finally:
        await cleanup_broker(settings, codes)
        await db.drop_schema(settings)


@pytest.fixture(scope="module")
async def ex(tmp_path_factory):
    async with hub_with(tmp_path_factory.mktemp("push"), admin_token=ADMIN) as exchange:
        yield exchange


async def pushed_agency(ex: Exchange, url: str) -> tuple[str, str]:
    """A new agency on push to ``url``: (organ id, webhook secret)."""
    code = f"000.00.{next(_codes):02d}.H31"
    await ex.register((code, f"UBND thử đẩy {code}"))
    secret = await ex.hub.push_admin.switch_on(code, url)
    return code, secret


def document(recipients: list[str]) -> bytes:
    n = next(_numbers)
    return build_document(
        sender=SENDER,
        recipients=recipients,
        code_number=f"{n}",
        code_notation="BTP-DAY",
        subject=f"Thử đẩy {n} {time.time_ns()}",
    )


async def send(ex: Exchange, recipients: list[str]) -> tuple[str, bytes]:
    body = document(recipients)
    return (await ex.sender.submit(body))["id"], body


async def push_row(ex: Exchange, package_id: str, organ_id: str):
    return await ex.hub.pool.fetchrow(
        "SELECT p.* FROM push_deliveries p JOIN deliveries d ON d.id = p.delivery_id "
        "WHERE d.package_id = $1::uuid AND d.recipient = $2",
        package_id,
        organ_id,
    )


async def state_is(ex: Exchange, package_id: str, organ_id: str, state: str) -> bool:
    row = await push_row(ex, package_id, organ_id)
    return row is not None and row["state"] == state


async def events(ex: Exchange, package_id: str, kind: str) -> list:
    return await ex.hub.pool.fetch(
        "SELECT organ_id, detail FROM events WHERE package_id = $1::uuid AND event = $2 "
        "ORDER BY id",
        package_id,
        kind,
    )


async def test_the_request_carries_the_exact_bytes_signed(ex):
    async with Receiver() as receiver:
        code, secret = await pushed_agency(ex, receiver.url)
        assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
        started = time.monotonic()
        package_id, body = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "acknowledged"))
        took = receiver.requests[0].at - started
        assert took < 1.0, took
        (got,) = receiver.requests
        headers = got.headers
        assert got.body == body
        assert headers["Content-Length"] == str(len(body))
        assert headers["Content-Type"] == "application/xml"
        assert headers["Lienthong-Package-Id"] == package_id
        assert headers["Lienthong-Kind"] == "edoc"
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert headers["Repr-Digest"] == f"sha-256=:{digest}:"
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 10
        expected = standard_signature(
            secret, headers["webhook-id"], headers["webhook-timestamp"], body
        )
        assert headers["webhook-signature"] == expected
        row = await push_row(ex, package_id, code)
        assert headers["webhook-id"] == str(row["id"])
        # delivered and acknowledged: out of the inbox, in the trail, once
        copy = await ex.hub.pool.fetchval(
            "SELECT state FROM deliveries WHERE package_id = $1::uuid AND recipient = $2",
            package_id,
            code,
        )
        assert copy == "acknowledged"
        acks = await events(ex, package_id, "acknowledged")
        assert [a["detail"]["via"] for a in acks] == ["push"]
        trail = await ex.sender.trail(package_id)
        attempts = [e for e in trail["events"] if e["event"] == "push_attempt"]
        assert len(attempts) == 1 and attempts[0]["detail"]["http_status"] == 204


async def test_statuses_are_pushed_the_same_way(ex):
    async with Receiver() as receiver:
        code, _ = await pushed_agency(ex, receiver.url)
        await ex.hub.push_admin.switch_on(SENDER, receiver.url)
        recipient = await ex.client(code)
        sent = await ex.sender.submit(document([code]))
        package_id = sent["id"]
        await until(lambda: state_is(ex, package_id, code, "acknowledged"))
        status = build_status(
            sender=code,
            response_for_organ_id=SENDER,
            response_for_document_id=sent["document_id"],
            status_code="03",
        )
        status_id = (await recipient.submit(status))["id"]
        await until(lambda: state_is(ex, status_id, SENDER, "acknowledged"))
        kinds = {
            r.headers["Lienthong-Package-Id"]: r.headers["Lienthong-Kind"]
            for r in receiver.requests
        }
        assert kinds[status_id] == "status" and kinds[package_id] == "edoc"
        await ex.hub.push_admin.switch_off(SENDER)


async def test_500_twice_then_200_is_delivered_on_the_third_attempt(ex):
    async with Receiver() as receiver:
        receiver.answers = [500, 500]
        code, _ = await pushed_agency(ex, receiver.url)
        package_id, _ = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "acknowledged"))
        assert len(receiver.requests) == 3
        assert len(set(receiver.ids())) == 1  # the same webhook-id on every attempt
        stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.requests]
        assert stamps == sorted(stamps)
        row = await push_row(ex, package_id, code)
        attempts = await ex.hub.push_admin.attempts(str(row["id"]))
        assert [(a["http_status"], a["outcome"]) for a in attempts] == [
            (500, "retry"),
            (500, "retry"),
            (204, "acknowledged"),
        ]
        assert len(await events(ex, package_id, "acknowledged")) == 1


async def test_410_fails_at_once_with_its_reason_and_pull_still_works(ex):
    async with Receiver(default=410) as receiver:
        code, _ = await pushed_agency(ex, receiver.url)
        package_id, _ = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "failed"))
        await asyncio.sleep(1.0)  # longer than the schedule's interval: no second attempt
        assert len(receiver.requests) == 1
        (failed,) = await events(ex, package_id, "push_failed")
        assert "HTTP 410" in failed["detail"]["reason"]
        trail = await ex.sender.trail(package_id)  # the sender sees it in the trail
        assert any(e["event"] == "push_failed" for e in trail["events"])
        listed = await ex.hub.push_admin.list(state="failed", organ_id=code)
        assert [p["package_id"] for p in listed] == [package_id]
        assert "HTTP 410" in listed[0]["last_error"]
        recipient = await ex.client(code)
        assert package_id in [i["id"] for i in (await recipient.inbox())["items"]]


async def test_redelivery_of_a_failed_push_after_the_receiver_is_fixed(ex):
    async with Receiver(default=404) as receiver:
        code, _ = await pushed_agency(ex, receiver.url)
        package_id, _ = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "failed"))
        receiver.default = 200
        row = await push_row(ex, package_id, code)
        assert await ex.hub.push_admin.retry(str(row["id"])) == [str(row["id"])]
        await until(lambda: state_is(ex, package_id, code, "acknowledged"))
        assert receiver.ids() == [str(row["id"])] * 2
        with pytest.raises(HubError) as refused:
            await ex.hub.push_admin.retry(str(row["id"]))
        assert refused.value.code == "push.not_retryable"
        with pytest.raises(HubError) as unknown:
            await ex.hub.push_admin.retry("not-a-uuid")
        assert unknown.value.code == "push.not_found"


async def test_a_receiver_down_for_a_while_gets_it_once_when_back(ex):
    port = free_port()
    receiver = Receiver(port=port)
    code, _ = await pushed_agency(ex, receiver.url)
    package_id, _ = await send(ex, [code])
    await until(lambda: state_is(ex, package_id, code, "waiting_for_retry"))
    row = await push_row(ex, package_id, code)
    assert "connection" in row["last_error"]
    async with receiver:
        await until(lambda: state_is(ex, package_id, code, "acknowledged"))
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == 1


async def test_a_receiver_that_never_answers_times_out_and_is_retried(ex):
    async with Receiver() as receiver:
        receiver.hang = True
        code, _ = await pushed_agency(ex, receiver.url)
        package_id, _ = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "in_progress"))
        assert len(receiver.requests) == 1  # on the wire, unanswered
        await until(lambda: state_is(ex, package_id, code, "waiting_for_retry"), timeout=10)
        row = await push_row(ex, package_id, code)
        assert "no answer within 1.5 s" in row["last_error"]
        (attempt,) = await ex.hub.push_admin.attempts(str(row["id"]))
        assert attempt["http_status"] is None and attempt["duration_ms"] >= 1400
        receiver.hang = False
        await until(lambda: state_is(ex, package_id, code, "acknowledged"), timeout=10)
        assert len(set(receiver.ids())) == 1


async def test_a_slow_system_does_not_delay_a_healthy_one(ex):
    async with Receiver() as slow, Receiver() as healthy:
        slow.delay = 1.2  # answers, but late, to everyone (within the timeout)
        slow_code, _ = await pushed_agency(ex, slow.url)
        healthy_code, _ = await pushed_agency(ex, healthy.url)
        sent = []
        for _ in range(8):
            sent.append((time.monotonic(), (await send(ex, [slow_code, healthy_code]))[0]))
        for _, package_id in sent:
            await until(lambda p=package_id: state_is(ex, p, healthy_code, "acknowledged"))
        arrived = {r.headers["Lienthong-Package-Id"]: r.at for r in healthy.requests}
        delays = [arrived[p] - t for t, p in sent]
        assert max(delays) < 1.0, delays
        # the slow one gets everything too, in its own time and at most 4 at once
        for _, package_id in sent:
            await until(lambda p=package_id: state_is(ex, p, slow_code, "acknowledged"), 30)
        assert slow.most_in_flight == ex.hub.settings.push_concurrency == 4


async def test_retry_after_is_honoured(ex):
    async with Receiver() as receiver:
        receiver.answers = [(503, {"Retry-After": "2"})]
        code, _ = await pushed_agency(ex, receiver.url)
        package_id, _ = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "acknowledged"), timeout=10)
        first, second = receiver.requests
        assert second.at - first.at >= 1.9


async def test_a_copy_acknowledged_by_pull_is_not_pushed_again(ex):
    port = free_port()
    receiver = Receiver(port=port)
    code, _ = await pushed_agency(ex, receiver.url)
    package_id, _ = await send(ex, [code])
    await until(lambda: state_is(ex, package_id, code, "waiting_for_retry"))
    recipient = await ex.client(code)
    await recipient.fetch(package_id)
    await recipient.ack(package_id)
    async with receiver:
        await until(lambda: state_is(ex, package_id, code, "acknowledged"))
        await asyncio.sleep(0.5)
        assert receiver.requests == []
    assert len(await events(ex, package_id, "acknowledged")) == 1


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/hook",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://",
        "",
        "http://user:pw@127.0.0.1/hook",
        "http://127.0.0.1:99999/",
        "http://a b/",
    ],
)
async def test_a_url_that_is_not_http_is_refused(ex, url):
    code = f"000.00.{next(_codes):02d}.H31"
    await ex.register((code, "UBND thử URL"))
    with pytest.raises(HubError) as refused:
        await ex.hub.push_admin.switch_on(code, url)
    assert refused.value.code == "push.invalid_url"
    assert (
        await ex.hub.pool.fetchval("SELECT count(*) FROM push_endpoints WHERE organ_id = $1", code)
        == 0
    )


async def test_push_for_an_unknown_agency_is_refused(ex):
    with pytest.raises(HubError) as refused:
        await ex.hub.push_admin.switch_on("000.00.99.H31", "http://127.0.0.1:1/hook")
    assert refused.value.code == "push.unknown_agency"


async def test_past_its_ttl_a_push_is_failed(tmp_path):
    async with hub_with(tmp_path, push_ttl_seconds=1.0) as ex, Receiver(default=500) as receiver:
        code, _ = await pushed_agency(ex, receiver.url)
        package_id, _ = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "failed"))
        (failed,) = await events(ex, package_id, "push_failed")
        assert "gave up" in failed["detail"]["reason"]
        assert 2 <= len(receiver.requests) <= 3
        # without admin_token the admin API is off
        async with ex.session.get(f"{ex.url}/v1/admin/deliveries") as r:
            assert (r.status, (await r.json())["error"]["code"]) == (403, "admin.disabled")


async def test_the_circuit_opens_after_failures_in_a_row(tmp_path):
    changes = dict(push_breaker_failures=2, push_breaker_seconds=2.0, push_retry_schedule="0.1")
    async with hub_with(tmp_path, **changes) as ex, Receiver(default=503) as receiver:
        code, _ = await pushed_agency(ex, receiver.url)
        package_id, _ = await send(ex, [code])
        await until(lambda: _count(receiver, 2))
        opened = time.monotonic()
        assert ex.hub.pusher.open_circuits == 1
        later, _ = await send(ex, [code])  # enqueued, and stays so while the circuit is open
        await until(lambda: state_is(ex, later, code, "enqueued"))
        await asyncio.sleep(1.0)
        assert len(receiver.requests) == 2  # nothing while open
        assert await state_is(ex, later, code, "enqueued")
        receiver.default = 200
        await until(lambda: state_is(ex, package_id, code, "acknowledged"))
        await until(lambda: state_is(ex, later, code, "acknowledged"))
        assert receiver.requests[2].at - opened >= 1.8  # the probe came after the cool-down
        assert ex.hub.pusher.open_circuits == 0
        metrics = await (await ex.session.get(f"{ex.url}/metrics")).text()
        assert 'lienthong_push_deliveries{state="waiting_for_retry"} 0' in metrics
        assert 'lienthong_push_attempts_total{outcome="acknowledged"} 2.0' in metrics
        assert 'lienthong_push_attempts_total{outcome="retry"} 2.0' in metrics
        assert "lienthong_push_latency_seconds_count 4.0" in metrics
        assert "lienthong_push_circuits_open 0" in metrics


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.requests) >= n


async def test_the_admin_api_lists_shows_and_redelivers(ex):
    async with Receiver(default=410) as receiver:
        code, _ = await pushed_agency(ex, receiver.url)
        first, _ = await send(ex, [code])
        second, _ = await send(ex, [code])
        await until(lambda: state_is(ex, first, code, "failed"))
        await until(lambda: state_is(ex, second, code, "failed"))
        base = f"{ex.url}/v1/admin"
        for headers, status, error in (
            ({}, 401, "auth.missing"),
            ({"Authorization": "Bearer wrong"}, 401, "auth.invalid_token"),
            ({"Authorization": f"Bearer {await ex.sender.token()}"}, 401, "auth.invalid_token"),
        ):
            async with ex.session.get(f"{base}/deliveries", headers=headers) as r:
                assert (r.status, (await r.json())["error"]["code"]) == (status, error)
        admin = {"Authorization": f"Bearer {ADMIN}"}
        query = {"state": "failed", "agency": code}
        async with ex.session.get(f"{base}/deliveries", params=query, headers=admin) as r:
            items = (await r.json())["items"]
        assert {i["package_id"] for i in items} == {first, second}
        one = items[0]["id"]
        async with ex.session.get(f"{base}/deliveries/{one}", headers=admin) as r:
            shown = await r.json()
        assert shown["state"] == "failed"
        assert [a["http_status"] for a in shown["attempt_log"]] == [410]
        for bad, status, error in (
            (f"{base}/deliveries?state=lost", 400, "request.invalid_parameter"),
            (f"{base}/deliveries?agency=x", 422, "organ_id.invalid"),
            (f"{base}/deliveries/00000000-0000-0000-0000-000000000000", 404, "push.not_found"),
        ):
            async with ex.session.get(bad, headers=admin) as r:
                assert (r.status, (await r.json())["error"]["code"]) == (status, error)
        receiver.default = 200
        async with ex.session.post(f"{base}/deliveries/{one}/retry", headers=admin) as r:
            assert (await r.json())["retried"] == [one]
        async with ex.session.post(f"{base}/agencies/{code}/deliveries/retry", headers=admin) as r:
            retried = (await r.json())["retried"]
        assert items[1]["id"] in retried  # the failed one (the first one, if still waiting, too)
        await until(lambda: state_is(ex, first, code, "acknowledged"))
        await until(lambda: state_is(ex, second, code, "acknowledged"))
        async with ex.session.post(f"{base}/deliveries/{one}/retry", headers=admin) as r:
            assert (r.status, (await r.json())["error"]["code"]) == (409, "push.not_retryable")


async def test_a_new_secret_overlaps_the_old_one(ex):
    from adapters.webhook import WebhookError, WebhookVerifier

    async with Receiver() as receiver:
        code, old = await pushed_agency(ex, receiver.url)
        new = await ex.hub.push_admin.switch_on(code, receiver.url, new_secret_wanted=True)
        assert new and new != old
        package_id, body = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "acknowledged"))
        (got,) = receiver.requests
        assert len(got.headers["webhook-signature"].split()) == 2
        for secrets in ([old], [new]):  # a receiver still on the old one, one already moved
            assert WebhookVerifier(secrets).verify(got.headers, got.body).package_id == package_id
        await ex.hub.pool.execute(
            "UPDATE push_endpoints SET previous_until = now() WHERE organ_id = $1", code
        )
        later, _ = await send(ex, [code])
        await until(lambda: state_is(ex, later, code, "acknowledged"))
        last = receiver.requests[-1]
        assert len(last.headers["webhook-signature"].split()) == 1
        with pytest.raises(WebhookError):
            WebhookVerifier(old).verify(last.headers, last.body)


async def test_a_copy_recalled_before_it_was_taken_is_not_pushed(ex):
    receiver = Receiver(port=free_port())
    code, _ = await pushed_agency(ex, receiver.url)
    sent = await ex.sender.submit(document([code]))
    await until(lambda: state_is(ex, sent["id"], code, "waiting_for_retry"))
    recall = await ex.sender.recall(SENDER, sent["document_id"], [code])
    async with receiver:
        await until(lambda: state_is(ex, sent["id"], code, "failed"))
        await until(lambda: state_is(ex, recall["id"], code, "acknowledged"))
        await asyncio.sleep(0.5)
        got = [r.headers["Lienthong-Package-Id"] for r in receiver.requests]
        assert got == [recall["id"]]  # the revocation is pushed, the recalled document not
    row = await push_row(ex, sent["id"], code)
    assert "recalled by its sender" in row["last_error"]
