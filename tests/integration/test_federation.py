"""Federation between hubs on one machine: each with its own schema and RabbitMQ virtual
host, linked by the federation plugin, packages fetched over mutual TLS by claim check."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import secrets
import time

import aio_pika
import aiohttp
import pytest
from yarl import URL

from adapters.client import HubClient
from exchange.auth import issue_credentials
from exchange.federation.management import IN_EXCHANGE
from exchange.federation.messages import Handover, now_iso
from exchange.federation.sandbox import HubSpec, federated_hubs, wait_for_links
from exchange.registry import Agency
from schemas import build_document, build_status
from tests.conftest import make_settings
from tests.support.http import assert_error

COMMUNE = Agency("000.05.10.H49", "UBND phường Hồng Gai", "000.00.10.H49", "commune")
DISTRICT = Agency("000.00.10.H41", "UBND huyện X", None, "district")


async def _wait(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def hubs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fed")
    base = make_settings(folder, federation_witness_interval_seconds=3600)
    tag = f"ltfed-{secrets.token_hex(3)}"
    specs = [
        HubSpec("H49", ("H49.#",), (COMMUNE,)),
        HubSpec("H41", ("H41.#",), (DISTRICT,)),
    ]
    async with federated_hubs(base, tag, specs, [("H49", "H41")], folder) as running:
        yield running


async def _client(running, organ_id: str) -> HubClient:
    creds = await issue_credentials(running.hub.credentials, organ_id)
    connector = aiohttp.TCPConnector(ssl=False)
    session = aiohttp.ClientSession(connector=connector)
    return HubClient(running.url, creds.client_id, creds.client_secret, session=session)


def _document(number: str) -> bytes:
    return build_document(
        sender=COMMUNE.code,
        recipients=[DISTRICT.code],
        code_number=number,
        code_notation="UBND",
        subject="Liên thông giữa hai tỉnh",
        attachments=[("a.txt", "text/plain", f"văn bản {number}".encode())],
    )


async def _events(running, digest: bytes, kind: str) -> list:
    return await running.hub.pool.fetch(
        "SELECT * FROM events WHERE digest = $1 AND event = $2 ORDER BY id", digest, kind
    )


async def test_a_package_crosses_hubs_once_and_statuses_come_back(hubs):
    p, q = hubs["H49"], hubs["H41"]
    commune, district = await _client(p, COMMUNE.code), await _client(q, DISTRICT.code)
    try:
        package = _document(str(time.time_ns()))
        sent = await commune.submit(package)
        items = await _wait(lambda: _inbox(district), what="the remote inbox")
        assert [i["id"] for i in items] and len(items) == 1
        remote_id = items[0]["id"]
        data = await district.fetch(remote_id)
        assert data == package and hashlib.sha256(data).hexdigest() == sent["digest"]
        await district.ack(remote_id)
        remote_trail = await district.trail(remote_id)
        arrived = [e for e in remote_trail["events"] if e["event"] == "arrived"]
        assert [h["hub"] for h in arrived[0]["detail"]["hops"]] == ["H49"]

        await district.submit(
            build_status(
                sender=DISTRICT.code,
                response_for_organ_id=COMMUNE.code,
                response_for_document_id=sent["document_id"],
                status_code="03",
                description="Tiếp nhận",
            )
        )
        statuses = await _wait(lambda: _inbox(commune), what="the status back at H49")
        assert statuses[0]["status_code"] == "03" and statuses[0]["sender"] == DISTRICT.code

        async def remote_kinds():
            trail = await commune.trail(sent["id"])
            kinds = {e["detail"].get("kind") for e in trail["events"] if e["event"] == "remote"}
            return kinds >= {"accepted", "delivered", "fetched", "acknowledged"} and trail

        trail = await _wait(remote_kinds, what="the remote trail at H49")
        accepted = next(e for e in trail["events"] if e["detail"].get("kind") == "accepted")
        assert accepted["detail"]["hub"] == "H41"
        assert accepted["detail"]["receipt"]["claims"]["digest"] == sent["digest"]
        assert any(e["event"] == "status" for e in trail["events"])
        copy = next(r for r in trail["recipients"] if r["organ_id"] == DISTRICT.code)
        assert copy["state"] == "delivered"  # handed over, the next hub's receipt came back
        digest = bytes.fromhex(sent["digest"])
        assert len(await _events(q, digest, "delivered")) == 1
        assert len(await _events(p, digest, "remote")) == 4  # each note recorded once
    finally:
        for c in (commune, district):
            await c.session.close()


async def _inbox(client: HubClient) -> list:
    return (await client.inbox())["items"]


async def _publish_into(running, body: bytes, key: str) -> None:
    connection = await aio_pika.connect(running.settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(IN_EXCHANGE)
        await exchange.publish(aio_pika.Message(body, delivery_mode=2), routing_key=key)


async def _rejection(running, digest: bytes, code: str):
    async def found():
        rows = await _events(running, digest, "rejected")
        return [r for r in rows if r["detail"]["code"] == code]

    return await _wait(found, what=f"a {code} rejection")


async def test_a_loop_and_a_forged_hand_over_are_refused(hubs):
    q = hubs["H41"]
    digest = hashlib.sha256(secrets.token_bytes(8)).digest()
    loop = Handover(
        digest,
        COMMUNE.code,
        DISTRICT.code,
        "H49",
        ({"hub": "H41", "at": now_iso()}, {"hub": "H49", "at": now_iso()}),
    )
    await _publish_into(q, loop.to_bytes(), "H41.10.00.000")
    await _rejection(q, digest, "federation.loop")
    forged = Handover(
        digest, COMMUNE.code, DISTRICT.code, "H99", ({"hub": "H99", "at": now_iso()},)
    )
    await _publish_into(q, forged.to_bytes(), "H41.10.00.000")
    rows = await _rejection(q, digest, "federation.not_peer")
    assert "not a peer" in rows[0]["detail"]["reason"]
    # Naming a real peer does not help: the message did not come over that peer's link.
    posing = Handover(
        digest, COMMUNE.code, DISTRICT.code, "H49", ({"hub": "H49", "at": now_iso()},)
    )
    await _publish_into(q, posing.to_bytes(), "H41.10.00.000")

    async def over_the_link():
        found = await _rejection(q, digest, "federation.not_peer")
        return [r for r in found if "did not come over the link" in r["detail"]["reason"]]

    await _wait(over_the_link, what="the refusal of a hand-over posing as H49")
    assert not await q.hub.packages.digest_known(digest)


async def test_peer_routes_need_a_peer_certificate(hubs):
    p = hubs["H49"]
    token = await (await _client(p, COMMUNE.code)).token()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
        async with session.get(
            f"{p.url}/v1/federation/packages/{'0' * 64}",
            headers={"Authorization": f"Bearer {token}"},
        ) as r:
            assert_error(r.status, await r.json(), 403, "federation.not_peer")
        async with session.get(f"{p.url}/v1/ledger/witnesses") as r:
            assert r.status == 401


async def test_a_refusal_at_the_remote_hub_comes_back_as_status_02(hubs):
    p, q = hubs["H49"], hubs["H41"]
    gone = Agency("000.00.20.H41", "UBND huyện đã giải thể", None, "district")
    await p.hub.registry.upsert([gone])
    await p.hub.federation.store.set_homes([(gone.code, "H41")])
    await q.hub.registry.upsert(
        [
            Agency(
                gone.code,
                gone.name,
                None,
                "district",
                valid_to=dt.date(2020, 1, 1),
            )
        ]
    )
    commune = await _client(p, COMMUNE.code)
    try:
        package = build_document(
            sender=COMMUNE.code,
            recipients=[gone.code],
            code_number=str(time.time_ns()),
            code_notation="UBND",
            subject="Gửi nơi đã giải thể",
        )
        sent = await commune.submit(package)

        async def refused():
            trail = await commune.trail(sent["id"])
            return [e for e in trail["events"] if e["detail"].get("kind") == "refused"]

        events = await _wait(refused, what="the refusal at H49")
        assert events[0]["detail"]["status"] == "02"
        assert events[0]["detail"]["code"] == "recipient.inactive"
        assert not await q.hub.packages.digest_known(bytes.fromhex(sent["digest"]))
    finally:
        await commune.session.close()


async def test_the_same_hand_over_twice_is_delivered_once(hubs):
    p, q = hubs["H49"], hubs["H41"]
    commune, district = await _client(p, COMMUNE.code), await _client(q, DISTRICT.code)
    try:
        sent = await commune.submit(_document(str(time.time_ns())))
        digest = bytes.fromhex(sent["digest"])
        await _wait(lambda: _events(q, digest, "delivered"), what="the first copy")
        again = Handover(
            digest, COMMUNE.code, DISTRICT.code, "H49", ({"hub": "H49", "at": now_iso()},)
        )
        before = q.hub.federation.intake.duplicates
        # The same hand-over again, over the real link (as the reconciler would send it).
        await p.hub.federation.link.publish(
            again.to_bytes(), "H41.10.00.000", "again", mandatory=True
        )
        await _wait(
            lambda: _true(q.hub.federation.intake.duplicates > before), what="the duplicate"
        )
        assert len(await _events(q, digest, "delivered")) == 1
        assert len(await _events(q, digest, "submitted")) == 1
    finally:
        for c in (commune, district):
            await c.session.close()


async def _true(value: bool) -> bool:
    return value


def test_messages_are_json():
    h = Handover(b"\x01" * 32, "a", "b", "H49", ({"hub": "H49", "at": "t"},))
    assert json.loads(h.to_bytes())["type"] == "handover"


async def test_a_link_down_while_packages_queue_loses_and_doubles_nothing(hubs):
    """H41's link to H49 goes through a proxy that is cut: hand-overs wait in H49's upstream
    queue; once the link is back each arrives, once."""
    from tests.support.faults import TcpProxy

    p, q = hubs["H49"], hubs["H41"]
    amqp = URL(p.settings.amqp_url)
    commune, district = await _client(p, COMMUNE.code), await _client(q, DISTRICT.code)
    async with TcpProxy(amqp.host, amqp.port) as proxy:
        via_proxy = proxy.url("amqp://guest:guest@", amqp.raw_path)
        try:
            await q.hub.federation.peers.add("H49", via_proxy, p.url, p.cert_pem)
            await wait_for_links({"H41": q})
            proxy.cut()
            sent = [await commune.submit(_document(f"down-{i}-{time.time_ns()}")) for i in range(5)]
            await asyncio.sleep(1.0)
            digests = [bytes.fromhex(s["digest"]) for s in sent]
            arrived_while_down = [d for d in digests if await q.hub.packages.digest_known(d)]
            assert arrived_while_down == []
            proxy.restore()

            async def all_delivered():
                counts = [len(await _events(q, d, "delivered")) for d in digests]
                return all(c >= 1 for c in counts) and counts

            counts = await _wait(all_delivered, timeout=60, what="the backlog after the link")
            await asyncio.sleep(1.0)
            assert [len(await _events(q, d, "delivered")) for d in digests] == [1] * 5 == counts
        finally:
            await q.hub.federation.peers.add("H49", p.settings.amqp_url, p.url, p.cert_pem)
            for c in (commune, district):
                await c.session.close()


async def test_peers_heads_are_witnessed_and_a_fork_is_reported(hubs):
    p, q = hubs["H49"], hubs["H41"]
    await q.hub.ledger.sign_head()
    outcome = await p.hub.federation.witness.witness_all()
    assert outcome["H41"].startswith("witnessed")
    answer = (await p.hub.federation.store.witnesses("H41", 10))[0]
    assert answer["tree_size"] > 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
        token = await (await _client(p, COMMUNE.code)).token()
        async with session.get(
            f"{p.url}/v1/ledger/witnesses", headers={"Authorization": f"Bearer {token}"}
        ) as r:
            items = (await r.json())["items"]
    assert items[0]["peer"] == "H41" and items[0]["signature"]
    # A head that does not extend the last one seen is not countersigned, and is reported.
    store = p.hub.federation.store
    await store.pool.execute(
        "UPDATE federation_witnesses SET root_hash = $1 WHERE peer = 'H41'", b"\x00" * 32
    )
    await _commit_something(q)
    await q.hub.ledger.sign_head()
    assert (await p.hub.federation.witness.witness_all())["H41"] == "inconsistent"
    assert (await store.inconsistencies())[-1]["peer"] == "H41"
    status = {s.hub_id: s for s in await p.hub.federation.peers.status()}
    assert "inconsistent" in status["H41"].last_error
    assert status["H41"].link == "running"


async def _commit_something(running) -> None:
    """One more ledger leaf at a hub (a refused body), so its next head is larger."""
    await running.hub.packages.record_rejection(
        DISTRICT.code, secrets.token_bytes(32), {"code": "test.filler"}
    )
    await running.hub.ledger.sequence()


def _cli_env(running) -> dict:
    from tests.support.cli import env_for

    s = running.settings
    return env_for(
        s,
        LIENTHONG_HUB_ID=s.hub_id,
        LIENTHONG_AMQP_URL=s.amqp_url,
        LIENTHONG_TLS_CERT=s.tls_cert,
        LIENTHONG_TLS_KEY=s.tls_key,
    )


async def test_operators_manage_peers_from_the_command_line(hubs, tmp_path):
    from tests.support.cli import lienthong, no_noise

    p, q = hubs["H49"], hubs["H41"]
    env = _cli_env(p)
    listed = await asyncio.to_thread(
        lienthong, p.settings, "federation", "peer", "list", "--json", env=env
    )
    peers = json.loads(listed.stdout)
    assert [x["hub_id"] for x in peers] == ["H41"] and "guest:guest" not in listed.stdout
    status = await asyncio.to_thread(
        lienthong, p.settings, "federation", "status", "--json", env=env, check=False
    )
    rows = json.loads(status.stdout)
    assert rows[0]["hub_id"] == "H41" and rows[0]["link"] == "running"
    cert = tmp_path / "h41.pem"
    cert.write_bytes(q.cert_pem)
    bad = await asyncio.to_thread(
        lienthong,
        p.settings,
        "federation",
        "peer",
        "add",
        "H42",
        "--amqp",
        "http://x",
        "--http",
        q.url,
        "--cert",
        str(cert),
        env=env,
        check=False,
    )
    assert bad.returncode == 1 and "federation.bad_peer" in bad.stderr
    no_noise(bad)
    gone = await asyncio.to_thread(
        lienthong, p.settings, "federation", "peer", "remove", "H42", env=env, check=False
    )
    assert gone.returncode == 1 and "federation.unknown_peer" in gone.stderr
    added = await asyncio.to_thread(
        lienthong,
        p.settings,
        "federation",
        "peer",
        "add",
        "H42",
        "--amqp",
        q.settings.amqp_url,
        "--http",
        q.url,
        "--cert",
        str(cert),
        env=env,
        check=False,
    )
    assert added.returncode == 1 and "certificate.taken" in added.stderr
    await asyncio.to_thread(
        lienthong,
        p.settings,
        "federation",
        "peer",
        "add",
        "H41",
        "--amqp",
        q.settings.amqp_url,
        "--http",
        q.url,
        "--cert",
        str(cert),
        env=env,
    )


async def test_the_evidence_bundle_holds_the_remote_receipt_and_witnessed_heads(hubs, tmp_path):
    from exchange.audit import verify_bundle

    p, q = hubs["H49"], hubs["H41"]
    commune = await _client(p, COMMUNE.code)
    try:
        sent = await commune.submit(_document(f"evidence-{time.time_ns()}"))

        async def accepted():
            trail = await commune.trail(sent["id"])
            return any(e["detail"].get("kind") == "accepted" for e in trail["events"])

        await _wait(accepted, what="the remote receipt")
        await q.hub.ledger.sign_head()
        await p.hub.federation.witness.witness_all()
        headers = {"Authorization": f"Bearer {await commune.token()}"}
        async with commune.session.get(
            f"{p.url}/v1/packages/{sent['id']}/evidence", headers=headers
        ) as r:
            assert r.status == 200
            (tmp_path / "e.asice").write_bytes(await r.read())
    finally:
        await commune.session.close()
    both = [p.hub.key.cert, q.hub.key.cert]
    checks = await verify_bundle(tmp_path / "e.asice", both)
    by_item = {c.item: c for c in checks}
    assert by_item["remote receipt of H41"].ok, by_item["remote receipt of H41"].detail
    assert by_item["witnessed head H41"].ok, by_item["witnessed head H41"].detail
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    # Without the remote hub's root the remote receipt is not trusted.
    alone = {c.item: c for c in await verify_bundle(tmp_path / "e.asice", [p.hub.key.cert])}
    assert not alone["remote receipt of H41"].ok
    assert not alone["witnessed head H41"].ok


async def test_a_head_not_signed_by_the_key_it_names_is_not_countersigned(hubs):
    p, q = hubs["H49"], hubs["H41"]
    await _commit_something(q)
    head = await q.hub.ledger.sign_head()
    other = await p.hub.ledger.sign_head()  # a valid CMS, by another hub's key
    await q.hub.pool.execute(
        "UPDATE tree_heads SET signature = $1 WHERE tree_size = $2",
        other.signature,
        head.tree_size,
    )
    before = len(await p.hub.federation.store.witnesses("H41", 1000))
    assert (await p.hub.federation.witness.witness_all())["H41"] == "federation.bad_head"
    assert len(await p.hub.federation.store.witnesses("H41", 1000)) == before
    status = {s.hub_id: s for s in await p.hub.federation.peers.status()}
    assert "head" in status["H41"].last_error


async def test_a_sending_hub_that_cannot_be_fetched_from_is_waited_for(hubs):
    """The claim check cannot be redeemed while the sending hub's API is unreachable: the
    hand-over is kept and retried, the link status says why, and it arrives once after."""
    p, q = hubs["H49"], hubs["H41"]
    peers = q.hub.federation.peers
    commune = await _client(p, COMMUNE.code)
    try:
        await peers.add("H49", p.settings.amqp_url, "https://127.0.0.1:9", p.cert_pem)
        sent = await commune.submit(_document(f"unreachable-{time.time_ns()}"))
        digest = bytes.fromhex(sent["digest"])

        async def noted():
            status = {s.hub_id: s for s in await peers.status()}
            return status["H49"].last_error

        error = await _wait(noted, what="the fetch failure in the status")
        assert "cannot fetch from H49" in error
        assert not await q.hub.packages.digest_known(digest)
    finally:
        await peers.add("H49", p.settings.amqp_url, p.url, p.cert_pem)
        await commune.session.close()
    await _wait(lambda: _events(q, digest, "delivered"), what="the delivery once reachable")
    assert len(await _events(q, digest, "delivered")) == 1


def _rezip(source, target, changes: dict[str, bytes]) -> None:
    """The bundle with some members replaced, evidence.json re-hashed (it is not signed)."""
    import zipfile

    with zipfile.ZipFile(source) as old:
        files = {i.filename: old.read(i) for i in old.infolist()}
    files.update(changes)
    index = json.loads(files["evidence.json"])
    for name in changes:
        index["files"][name] = hashlib.sha256(files[name]).hexdigest()
    files["evidence.json"] = json.dumps(index).encode()
    with zipfile.ZipFile(target, "w") as new:
        new.writestr("mimetype", files.pop("mimetype"), compress_type=zipfile.ZIP_STORED)
        for name, data in files.items():
            new.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)


async def test_a_remote_receipt_swapped_in_the_bundle_is_caught(hubs, tmp_path):
    from exchange.audit import verify_bundle

    p, q = hubs["H49"], hubs["H41"]
    commune = await _client(p, COMMUNE.code)
    bundles = []
    try:
        for n in range(2):
            sent = await commune.submit(_document(f"swap-{n}-{time.time_ns()}"))

            async def accepted(package_id=sent["id"]):
                trail = await commune.trail(package_id)
                return any(e["detail"].get("kind") == "accepted" for e in trail["events"])

            await _wait(accepted, what="the remote receipt")
            headers = {"Authorization": f"Bearer {await commune.token()}"}
            async with commune.session.get(
                f"{p.url}/v1/packages/{sent['id']}/evidence", headers=headers
            ) as r:
                bundles.append(tmp_path / f"{n}.asice")
                bundles[-1].write_bytes(await r.read())
    finally:
        await commune.session.close()
    import zipfile

    with zipfile.ZipFile(bundles[1]) as other:
        swapped = {
            name: other.read(f"federation/receipts/H41.{ext}")
            for ext, name in (
                ("json", "federation/receipts/H41.json"),
                ("p7s", "federation/receipts/H41.p7s"),
            )
        }
    _rezip(bundles[0], tmp_path / "forged.asice", swapped)
    checks = {
        c.item: c
        for c in await verify_bundle(tmp_path / "forged.asice", [p.hub.key.cert, q.hub.key.cert])
    }
    assert not checks["remote receipt of H41"].ok
    assert "other bytes" in checks["remote receipt of H41"].detail
