"""The hub's signing key over time: a lost or replaced key, a rotation to a new key, and what
`lienthong audit check`, `lienthong hub certificate`, `GET /v1/ledger/certificate`, receipts and
evidence bundles make of it. Real PostgreSQL, RabbitMQ and CLI processes throughout."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from adapters.client import HubClient
from exchange.auth import issue_credentials
from exchange.http.serve import running_hub
from exchange.hubkeys import key_id
from exchange.ledger import head_bytes
from exchange.registry import Agency
from exchange.store import database as db
from schemas import build_document
from signing import KeySource, ensure_dev_key, open_key, sign_detached
from tests.conftest import cleanup_broker, make_settings
from tests.support.cli import env_for, no_noise
from tests.support.cli import lienthong as run_cli
from tests.support.pki import P12_PASSWORD

SENDER, RECIPIENT = "000.00.00.G22", "000.00.00.H49"


def lienthong(settings, *args: str, p12: Path | None = None) -> subprocess.CompletedProcess:
    """``lienthong ARGS`` whatever its exit code, with the ledger key ``p12`` when given."""
    extra = {}
    if p12 is not None:
        extra = dict(LIENTHONG_LEDGER_P12=str(p12), LIENTHONG_LEDGER_SECRET=P12_PASSWORD.decode())
    return run_cli(settings, *args, check=False, env=env_for(settings, **extra))


@contextlib.asynccontextmanager
async def hub_with(settings):
    """A running hub with two agencies; yields (hub, url, sender client, recipient client)."""
    async with running_hub(settings) as (hub, url):
        await hub.registry.upsert(
            [
                Agency(SENDER, "Văn phòng Chính phủ", None, "central"),
                Agency(RECIPIENT, "UBND tỉnh Quảng Ninh", None, "province"),
            ],
        )
        clients = []
        for code in (SENDER, RECIPIENT):
            await hub.broker.ensure_agency(code)
            creds = await issue_credentials(hub.credentials, code)
            clients.append(HubClient(url, creds.client_id, creds.client_secret))
        try:
            yield hub, url, *clients
        finally:
            for client in clients:
                await client.close()


async def send_and_sign(hub, sender: HubClient, number: str) -> dict:
    """Submit a document, wait until every event has its leaf, and sign a head."""
    sent = await sender.submit(
        build_document(
            sender=SENDER,
            recipients=[RECIPIENT],
            code_number=number,
            code_notation="VPCP",
            subject="Key test",
        )
    )
    ids = [r["id"] for r in await hub.pool.fetch("SELECT id FROM events")]
    await hub.ledger.wait_indexed(ids, timeout=10)
    await hub.ledger.sign_head()
    return sent


@pytest.fixture
async def dev_settings(tmp_path):
    settings = make_settings(tmp_path)  # no ledger key: the hub makes a development key
    yield settings
    await cleanup_broker(settings, [SENDER, RECIPIENT])
    await db.drop_schema(settings)


async def test_a_lost_or_replaced_dev_key_is_told_apart_from_edited_rows(dev_settings, tmp_path):
    settings = dev_settings
    dev_key = Path(settings.blob_dir).resolve().parent / "hub-dev-key.p12"
    async with hub_with(settings) as (hub, _, sender, _):
        await send_and_sign(hub, sender, "1")
        first = key_id(hub.key.cert)
        head = json.loads((await hub.ledger.head()).head)
        assert head["key"] == first  # the signed head names its key
    clean = lienthong(settings, "audit", "check")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    # The development key is lost.
    dev_key.unlink()
    out = lienthong(settings, "audit", "check")
    no_noise(out)
    assert out.returncode == 1
    assert "NOT THE HUB'S KEY: heads signed by a key that is not (or no longer) the hub's" in (
        out.stdout
    )
    assert first[:16] in out.stdout and "the hub's key cannot be opened" in out.stdout
    assert "TAMPERED" not in out.stdout and "None" not in out.stdout
    assert not dev_key.exists()  # a checker never makes itself a key
    missing = lienthong(settings, "hub", "certificate")
    no_noise(missing)
    assert missing.returncode == 1 and "error [signing.key_not_found]" in missing.stderr
    assert not dev_key.exists()

    # The hub starts again with a new development key: old heads are its former key's.
    async with hub_with(settings) as (hub, _, sender, _):
        await send_and_sign(hub, sender, "2")
        second = key_id(hub.key.cert)
        assert second != first
        pool = hub.pool
        out = lienthong(settings, "audit", "check")
        no_noise(out)
        assert out.returncode == 1
        former = [line for line in out.stdout.splitlines() if line.startswith("  - ")]
        assert len(former) == 1 and first[:16] in former[0], out.stdout
        assert "it is not the hub's current key" in former[0]

        # Both keys stay listed; trusting them both, everything is consistent.
        listing = lienthong(settings, "hub", "certificate", "--all")
        assert listing.returncode == 0, listing.stderr
        assert f"# key {first}\n" in listing.stdout
        assert f"# key {second}, current\n" in listing.stdout
        certs = [
            asn1_x509.Certificate.load(d)
            for _, _, d in pem.unarmor(listing.stdout.encode(), multiple=True)
        ]
        assert {key_id(c) for c in certs} == {first, second}
        (tmp_path / "all.pem").write_text(listing.stdout)
        trusted = lienthong(settings, "audit", "check", "--trust", str(tmp_path / "all.pem"))
        assert trusted.returncode == 0, trusted.stdout + trusted.stderr
        current = lienthong(settings, "hub", "certificate")
        assert current.returncode == 0
        assert [
            key_id(asn1_x509.Certificate.load(d))
            for _, _, d in pem.unarmor(current.stdout.encode(), multiple=True)
        ] == [second]

        # An edited row is another finding, on its own line, naming its leaf.
        victim = await pool.fetchrow(
            "SELECT id, ledger_index, organ_id FROM events ORDER BY ledger_index DESC LIMIT 1"
        )
        await pool.execute("UPDATE events SET organ_id = 'x' WHERE id = $1", victim["id"])
        out = lienthong(settings, "audit", "check")
        no_noise(out)
        assert out.returncode == 1
        assert (
            "TAMPERED: rows edited, deleted or reordered (1): first leaf that no longer matches: "
            f"{victim['ledger_index']}" in out.stdout
        )
        assert "NOT THE HUB'S KEY" in out.stdout
        await pool.execute(
            "UPDATE events SET organ_id = $2 WHERE id = $1", victim["id"], victim["organ_id"]
        )

        # Heads whose signature is broken, made by a key the hub never had, or by another key
        # than the one they name: three more findings, each with its own line.
        heads = await pool.fetch("SELECT * FROM tree_heads ORDER BY tree_size")
        assert len(heads) >= 3
        broken, foreign, misnamed = heads[-1], heads[-2], heads[0]
        signature = bytearray(broken["signature"])
        signature[-20] ^= 0xFF
        await pool.execute(
            "UPDATE tree_heads SET signature = $2 WHERE tree_size = $1",
            broken["tree_size"],
            bytes(signature),
        )
        stranger = ensure_dev_key(tmp_path / "stranger.p12", "someone else")
        with open_key(KeySource(p12=stranger)) as key:
            body = head_bytes(
                foreign["tree_size"], foreign["root_hash"], foreign["signed_at"], key_id(key.cert)
            )
            await pool.execute(
                "UPDATE tree_heads SET head = $2, signature = $3, key_id = $4 WHERE tree_size = $1",
                foreign["tree_size"],
                body,
                await sign_detached(body, key),
                key_id(key.cert),
            )
        with open_key(KeySource(p12=dev_key)) as key:  # the new key signs a head naming the old
            await pool.execute(
                "UPDATE tree_heads SET signature = $2 WHERE tree_size = $1",
                misnamed["tree_size"],
                await sign_detached(misnamed["head"], key),
            )
        out = lienthong(settings, "audit", "check", "--trust", str(tmp_path / "all.pem"))
        no_noise(out)
        assert out.returncode == 1
        lines = out.stdout.splitlines()
        assert "BAD SIGNATURE: head signatures that do not verify (2)" in lines
        assert f"  - signed head {misnamed['tree_size']}: the head names key {first[:16]}…" in (
            out.stdout
        )
        assert f"  - signed head {broken['tree_size']}: " in out.stdout
        assert "UNKNOWN KEY: heads signed by an unknown key (1)" in lines
        assert f"signed head {foreign['tree_size']}: signed by key " in out.stdout
        assert "someone else" in out.stdout and "not among the keys the hub has used" in out.stdout
        assert "TAMPERED" not in out.stdout and "NOT THE HUB'S KEY" not in out.stdout


@pytest.fixture
async def rotating(pki, tmp_path):
    """Settings for a hub whose key is rotated from the PKI's hub key to its next one."""
    settings = make_settings(tmp_path, ledger_p12=str(pki.identity("hub").p12))
    os.environ["LIENTHONG_LEDGER_SECRET"] = P12_PASSWORD.decode()
    try:
        yield settings
    finally:
        os.environ.pop("LIENTHONG_LEDGER_SECRET", None)
        await cleanup_broker(settings, [SENDER, RECIPIENT])
        await db.drop_schema(settings)


async def test_receipts_bundles_and_certificates_across_a_key_rotation(rotating, pki, tmp_path):
    old, new = pki.identity("hub"), pki.identity("hub_next")
    old_id, new_id = (key_id(asn1_x509.Certificate.load(i.cert_der)) for i in (old, new))
    async with hub_with(rotating) as (hub, _, sender, _):
        sent = await send_and_sign(hub, sender, "1")
        assert sent["receipt"]["key_id"] == old_id
    # Rotation: the hub now signs with its next key.
    settings = rotating.replace(ledger_p12=str(new.p12))
    async with hub_with(settings) as (hub, url, sender, recipient):
        await recipient.fetch(sent["id"])  # new leaves: the bundle needs a new head
        await recipient.ack(sent["id"])
        headers = {"Authorization": f"Bearer {await sender.token()}"}
        session = sender.session
        async with session.get(f"{url}/v1/packages/{sent['id']}/evidence", headers=headers) as r:
            assert r.status == 200, await r.text()
            bundle = await r.read()
        async with session.get(f"{url}/v1/ledger/heads", headers=headers) as r:
            latest = await r.json()
        assert latest["key_id"] == new_id and json.loads(latest["head"])["key"] == new_id

        # The certificate over the API: the current chain, or every key the hub has used.
        async with session.get(f"{url}/v1/ledger/certificate") as r:
            assert r.status == 401 and (await r.json())["error"]["code"] == "auth.missing"
        async with session.get(f"{url}/v1/ledger/certificate", headers=headers) as r:
            assert r.status == 200 and r.content_type == "application/pem-certificate-chain"
            assert r.headers["X-Key-Id"] == new_id
            chain = [d for _, _, d in pem.unarmor(await r.read(), multiple=True)]
        assert chain[0] == new.cert_der and len(chain) == 2  # the key's and its issuing CA's
        async with session.get(f"{url}/v1/ledger/certificate?all=true", headers=headers) as r:
            listing = await r.json()
        assert listing["current"] == new_id
        assert [k["key_id"] for k in listing["keys"]] == [old_id, new_id]
        assert [k["current"] for k in listing["keys"]] == [False, True]
        first = pem.unarmor(listing["keys"][0]["chain"].encode(), multiple=True)
        assert next(first)[2] == old.cert_der
        async with session.get(f"{url}/v1/ledger/certificate?all=maybe", headers=headers) as r:
            body = await r.json()
            assert r.status == 400 and body["error"]["code"] == "request.invalid_parameter"

    # The bundle carries both keys' certificates and verifies offline under the CA's root;
    # the verdict names the key that signed the head.
    archive = zipfile.ZipFile(io.BytesIO(bundle))
    carried = {
        key_id(asn1_x509.Certificate.load(d))
        for _, _, d in pem.unarmor(archive.read("certs/hub.pem"), multiple=True)
    }
    assert {old_id, new_id} <= carried
    assert json.loads(archive.read("ledger/head.json"))["key"] == new_id
    path = tmp_path / "evidence.asice"
    path.write_bytes(bundle)
    out = lienthong(settings, "audit", "verify", str(path), "--trust", str(pki.root_pem), "--json")
    no_noise(out)
    assert out.returncode == 0, out.stdout + out.stderr
    checks = {c["item"]: c for c in json.loads(out.stdout)}
    assert f"(key {new_id})" in checks["signed tree head"]["detail"]
    assert f"(key {old_id})" in checks[f"receipt {sent['id']}"]["detail"]

    # audit check: under the CA's root both keys' heads verify; with only the current key
    # trusted, the old heads are the former key's, and said so.
    out = lienthong(settings, "audit", "check", "--trust", str(pki.root_pem), p12=new.p12)
    no_noise(out)
    assert out.returncode == 0, out.stdout + out.stderr
    out = lienthong(settings, "audit", "check", p12=new.p12)
    no_noise(out)
    assert out.returncode == 1
    assert "NOT THE HUB'S KEY" in out.stdout and old_id[:16] in out.stdout
    assert new_id[:16] not in out.stdout
