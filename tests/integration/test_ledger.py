"""The delivery ledger end to end: receipts, signed heads, proofs, evidence bundles checked offline
by the CLI, and tampering done directly in PostgreSQL found by `lienthong audit check`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import stat
import subprocess
import zipfile

import pytest

from adapters.client import HubClient
from exchange import merkle
from exchange.auth import issue_credentials
from exchange.http.serve import running_hub
from exchange.registry import Agency
from exchange.store import database as db
from schemas import build_document, build_status
from tests.conftest import cleanup_broker, make_settings
from tests.support.cli import cli_args, env_for, lienthong
from tests.support.pki import P12_PASSWORD

SENDER, PROVINCE, COMMUNE = "000.00.00.G22", "000.00.00.H49", "000.05.10.H49"


@pytest.fixture(scope="module")
async def ledger_hub(pki, tmp_path_factory):
    """A hub whose ledger key is the PKI's hub certificate and whose heads get TSA tokens."""
    tmp = tmp_path_factory.mktemp("ledger")
    settings = make_settings(
        tmp,
        ledger_p12=str(pki.identity("hub").p12),
        tsa_url=pki.tsa_url,
        outbox_retry_seconds=1.0,
    )
    os.environ["LIENTHONG_LEDGER_SECRET"] = P12_PASSWORD.decode()
    codes = [SENDER, PROVINCE, COMMUNE]
    try:
        async with running_hub(settings) as (hub, url):
            await hub.registry.upsert(
                [
                    Agency(SENDER, "Văn phòng Chính phủ", None, "central"),
                    Agency(PROVINCE, "UBND tỉnh Quảng Ninh", None, "province"),
                    Agency(COMMUNE, "UBND phường Hồng Gai", "000.00.10.H49", "commune"),
                ],
            )
            clients = {}
            for code in codes:
                await hub.broker.ensure_agency(code)
                creds = await issue_credentials(hub.credentials, code)
                clients[code] = HubClient(url, creds.client_id, creds.client_secret)
            yield hub, url, clients, settings, tmp
            for client in clients.values():
                await client.close()
    finally:
        os.environ.pop("LIENTHONG_LEDGER_SECRET", None)
        await cleanup_broker(settings, codes)
        await db.drop_schema(settings)


async def until(predicate, timeout=15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def exchange_document(clients, number: str) -> dict:
    sender = clients[SENDER]
    sent = await sender.submit(
        build_document(
            sender=SENDER,
            recipients=[PROVINCE, COMMUNE],
            code_number=number,
            code_notation="VPCP",
            subject="Ledger test",
        )
    )
    for code in (PROVINCE, COMMUNE):

        async def arrived(code=code):
            return any(i["id"] == sent["id"] for i in (await clients[code].inbox())["items"])

        await until(arrived)
        await clients[code].fetch(sent["id"])
        await clients[code].ack(sent["id"])
        await clients[code].submit(
            build_status(
                sender=code,
                response_for_organ_id=SENDER,
                response_for_document_id=sent["document_id"],
                status_code="03",
                description="Tiếp nhận",
            )
        )
    return sent


def _cli_env(settings) -> dict:
    return env_for(
        settings,
        LIENTHONG_LEDGER_P12=settings.ledger_p12,
        LIENTHONG_LEDGER_SECRET=P12_PASSWORD.decode(),
    )


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    """``lienthong ARGS`` with the hub's ledger key, whatever its exit code."""
    return lienthong(settings, *args, check=False, env=_cli_env(settings))


async def test_receipt_is_signed_and_names_the_ledger_leaf(ledger_hub, pki, tmp_path):
    hub, _, clients, _, _ = ledger_hub
    package = build_document(
        sender=SENDER,
        recipients=[PROVINCE],
        code_number="1",
        code_notation="VPCP",
        subject="Receipt",
    )
    sent = await clients[SENDER].submit(package)
    receipt = sent["receipt"]
    claims = receipt["claims"]
    assert claims["digest"] == hashlib.sha256(package).hexdigest() == sent["digest"]
    assert claims["sender"] == SENDER and claims["recipients"] == [PROVINCE]
    assert isinstance(claims["ledger"]["leaf_index"], int)
    leaf = await hub.pool.fetchval(
        "SELECT leaf FROM events WHERE ledger_index = $1", claims["ledger"]["leaf_index"]
    )
    assert json.loads(leaf)["event"] == "submitted" and json.loads(leaf)["digest"] == sent["digest"]
    # Oracle: openssl checks the hub's detached CMS signature over the receipt bytes.
    (tmp_path / "r.json").write_bytes(base64.b64decode(receipt["body"]))
    (tmp_path / "r.p7s").write_bytes(base64.b64decode(receipt["signature"]))
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.issuing_pem.read_bytes())
    out = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "r.p7s"),
            "-content",
            str(tmp_path / "r.json"),
            "-CAfile",
            str(pki.root_pem),
            "-certfile",
            str(chain),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    # The same bytes again: the same receipt, not a new one.
    again = await clients[SENDER].submit(package)
    assert again["receipt"]["signature"] == receipt["signature"]


async def test_heads_and_proofs_over_the_api(ledger_hub):
    hub, url, clients, _, _ = ledger_hub
    await exchange_document(clients, "2")
    headers = {"Authorization": f"Bearer {await clients[SENDER].token()}"}
    session = clients[SENDER].session
    async with session.post(f"{url}/v1/ledger/heads", headers=headers) as r:
        first = await r.json()
    # One more leaf, sequenced at once (a quick submit, not a whole exchange), and yet:
    more = await clients[SENDER].submit(
        build_document(
            sender=SENDER,
            recipients=[PROVINCE],
            code_number="2b",
            code_notation="VPCP",
            subject="Ledger test",
        )
    )
    event = await hub.pool.fetchval(
        "SELECT id FROM events WHERE package_id = $1::uuid AND event = 'submitted'", more["id"]
    )
    assert event in await hub.ledger.wait_indexed([event])
    async with session.post(f"{url}/v1/ledger/heads", headers=headers) as r:
        # Asked again within a second: the same head (requests cannot make the hub sign at will).
        assert (await r.json())["tree_size"] == first["tree_size"]
    await exchange_document(clients, "3")
    await asyncio.sleep(1.05)
    async with session.post(f"{url}/v1/ledger/heads", headers=headers) as r:
        second = await r.json()
    assert second["tree_size"] > first["tree_size"]
    async with session.get(
        f"{url}/v1/ledger/heads?size={first['tree_size']}&consistency_from={first['tree_size']}",
        headers=headers,
    ) as r:
        assert (await r.json())["root_hash"] == first["root_hash"]
    async with session.get(
        f"{url}/v1/ledger/proof/consistency?from={first['tree_size']}&to={second['tree_size']}",
        headers=headers,
    ) as r:
        proof = [bytes.fromhex(h) for h in (await r.json())["proof"]]
    merkle.verify_consistency(
        first["tree_size"],
        second["tree_size"],
        bytes.fromhex(first["root_hash"]),
        bytes.fromhex(second["root_hash"]),
        proof,
    )
    size = second["tree_size"]
    for index in (0, size // 2, size - 1):
        async with session.get(
            f"{url}/v1/ledger/proof/inclusion?leaf={index}&size={size}", headers=headers
        ) as r:
            body = await r.json()
        merkle.verify_inclusion(
            bytes.fromhex(body["leaf_hash"]),
            index,
            size,
            [bytes.fromhex(h) for h in body["audit_path"]],
            bytes.fromhex(second["root_hash"]),
            hashed=True,
        )
    async with session.get(
        f"{url}/v1/ledger/proof/inclusion?leaf={size}&size={size}", headers=headers
    ) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "ledger.bad_proof_request"
    # The head signature is timestamped by the TSA.
    assert "timestamp" in json.loads(second["head"])


async def _bundle(ledger_hub, number: str) -> tuple[bytes, dict]:
    _, url, clients, _, _ = ledger_hub
    sent = await exchange_document(clients, number)
    headers = {"Authorization": f"Bearer {await clients[SENDER].token()}"}
    async with clients[SENDER].session.get(
        f"{url}/v1/packages/{sent['id']}/evidence", headers=headers
    ) as r:
        assert r.status == 200, await r.text()
        assert r.content_type == "application/vnd.etsi.asic-e+zip"
        return await r.read(), sent


def _hub_anchor(pki, tmp_path):
    path = tmp_path / "hub.pem"
    path.write_bytes(pki.identity("hub").cert_pem.read_bytes())
    return path


async def test_evidence_bundle_verifies_offline_with_the_cli(ledger_hub, pki, tmp_path):
    hub, url, clients, settings, _ = ledger_hub
    data, sent = await _bundle(ledger_hub, "4")
    bundle = tmp_path / "evidence.asice"
    bundle.write_bytes(data)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names[0] == "mimetype"
    assert {
        "package.edxml",
        "ledger/head.json",
        "ledger/head.p7s",
        "ledger/leaves.json",
        "evidence.json",
        "META-INF/manifest.xml",
        "certs/hub.pem",
    } <= set(names)
    assert sum(n.startswith("statuses/") for n in names) == 2
    anchor = _hub_anchor(pki, tmp_path)
    out = cli(settings, "audit", "verify", str(bundle), "--trust", str(anchor), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    checks = json.loads(out.stdout)
    items = " ".join(c["item"] for c in checks)
    for expected in ("signed tree head", "package.edxml", "receipt", "status 03 link", "leaf"):
        assert expected in items
    head_check = next(c for c in checks if c["item"] == "signed tree head")
    assert head_check["ok"] and "timestamped" in head_check["detail"]  # the TSA's token
    events = {c["item"].split("(")[-1].rstrip(")") for c in checks if c["item"].startswith("leaf")}
    assert {"submitted", "routed", "delivered", "fetched", "acknowledged", "status"} <= events
    # Later: a newer head with a consistency proof shows the log only grew.
    await exchange_document(clients, "5")
    headers = {"Authorization": f"Bearer {await clients[SENDER].token()}"}
    bundle_size = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("ledger/head.json"))[
        "tree_size"
    ]
    async with clients[SENDER].session.post(f"{url}/v1/ledger/heads", headers=headers) as r:
        newest = (await r.json())["tree_size"]
    async with clients[SENDER].session.get(
        f"{url}/v1/ledger/heads?size={newest}&consistency_from={bundle_size}", headers=headers
    ) as r:
        (tmp_path / "newer.json").write_text(await r.text())
    out = cli(
        settings,
        "audit",
        "verify",
        str(bundle),
        "--trust",
        str(anchor),
        "--head",
        str(tmp_path / "newer.json"),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "without rewriting" in out.stdout


def _rewrite(data: bytes, changes: dict[str, bytes], fix_index: bool = True) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    files = {n: src.read(n) for n in src.namelist()}
    files.update(changes)
    if fix_index:
        index = json.loads(files["evidence.json"])
        for name in changes:
            if name in index["files"]:
                index["files"][name] = hashlib.sha256(files[name]).hexdigest()
        files["evidence.json"] = json.dumps(index).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name, content in files.items():
            dst.writestr(name, content)
    return out.getvalue()


async def test_doctored_bundles_are_refused(ledger_hub, pki, tmp_path):
    _, _, _, settings, _ = ledger_hub
    data, _ = await _bundle(ledger_hub, "6")
    other, _ = await _bundle(ledger_hub, "7")
    other_zip = zipfile.ZipFile(io.BytesIO(other))
    anchor = _hub_anchor(pki, tmp_path)
    # A head signed by another (even trusted-CA) key.
    from signing import KeySource, open_key, sign_detached

    head = zipfile.ZipFile(io.BytesIO(data)).read("ledger/head.json")
    with open_key(KeySource(p12=pki.identity("clerk").p12), P12_PASSWORD.decode()) as key:
        forged_sig = await sign_detached(head, key)
    cases = {
        "swapped package": (
            _rewrite(data, {"package.edxml": other_zip.read("package.edxml")}),
            "package.edxml",
        ),
        "head of another size": (
            _rewrite(
                data,
                {
                    "ledger/head.json": other_zip.read("ledger/head.json"),
                    "ledger/head.p7s": other_zip.read("ledger/head.p7s"),
                },
            ),
            "leaf",
        ),
        "head signed by another key": (
            _rewrite(data, {"ledger/head.p7s": forged_sig}),
            "signed tree head",
        ),
        "index not updated": (
            _rewrite(data, {"package.edxml": b"<x/>"}, fix_index=False),
            "file package.edxml",
        ),
    }
    for name, (doctored, failing_item) in cases.items():
        path = tmp_path / f"{name}.asice"
        path.write_bytes(doctored)
        out = cli(settings, "audit", "verify", str(path), "--trust", str(anchor), "--json")
        assert out.returncode == 1, name
        failed = [c["item"] for c in json.loads(out.stdout) if not c["ok"]]
        assert any(item.startswith(failing_item) for item in failed), (name, failed)


async def test_a_recipient_sees_only_its_own_statuses_in_the_bundle(ledger_hub):
    _, url, clients, _, _ = ledger_hub
    sent = await exchange_document(clients, "10")  # both recipients answered 03
    headers = {"Authorization": f"Bearer {await clients[PROVINCE].token()}"}
    async with clients[PROVINCE].session.get(
        f"{url}/v1/packages/{sent['id']}/evidence", headers=headers
    ) as r:
        bundle = zipfile.ZipFile(io.BytesIO(await r.read()))
    statuses = [n for n in bundle.namelist() if n.startswith("statuses/")]
    assert len(statuses) == 1
    assert PROVINCE.encode() in bundle.read(statuses[0])
    assert COMMUNE.encode() not in b"".join(
        bundle.read(n) for n in bundle.namelist() if n.startswith(("statuses/", "ledger/leaves"))
    )
    # The sender sees both, and the receipt endpoint serves the receipt given with the 202.
    headers = {"Authorization": f"Bearer {await clients[SENDER].token()}"}
    async with clients[SENDER].session.get(
        f"{url}/v1/packages/{sent['id']}/evidence", headers=headers
    ) as r:
        names = zipfile.ZipFile(io.BytesIO(await r.read())).namelist()
    assert sum(n.startswith("statuses/") for n in names) == 2
    async with clients[SENDER].session.get(
        f"{url}/v1/packages/{sent['id']}/receipt", headers=headers
    ) as r:
        assert (await r.json())["signature"] == sent["receipt"]["signature"]


async def test_unsafe_or_broken_zips_are_refused_before_reading(ledger_hub, pki, tmp_path):
    _, _, _, settings, _ = ledger_hub
    data, _ = await _bundle(ledger_hub, "8")
    anchor = _hub_anchor(pki, tmp_path)
    truncated = tmp_path / "truncated.asice"
    truncated.write_bytes(data[: len(data) // 2])
    traversal = tmp_path / "traversal.asice"
    with zipfile.ZipFile(traversal, "w") as z:
        z.writestr("mimetype", "application/vnd.etsi.asic-e+zip")
        z.writestr("../../evil.txt", "pwned")
    absolute = tmp_path / "absolute.asice"
    with zipfile.ZipFile(absolute, "w") as z:
        z.writestr(zipfile.ZipInfo("/etc/evil"), "pwned")
    for path, message in (
        (truncated, "zip"),
        (traversal, "path traversal"),
        (absolute, "path traversal"),
    ):
        out = cli(settings, "audit", "verify", str(path), "--trust", str(anchor))
        assert out.returncode == 1 and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert not (tmp_path.parent / "evil.txt").exists()


async def test_audit_check_finds_rows_edited_deleted_or_reordered(ledger_hub):
    hub, url, clients, settings, _ = ledger_hub
    await exchange_document(clients, "9")
    await hub.ledger.wait_indexed([r["id"] for r in await hub.pool.fetch("SELECT id FROM events")])
    await hub.ledger.sign_head()
    clean = cli(settings, "audit", "check")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    pool = hub.pool
    victim = await pool.fetchrow(
        "SELECT id, ledger_index, organ_id FROM events WHERE event = 'delivered' "
        "ORDER BY ledger_index LIMIT 1"
    )

    # Edited: a delivery moved to another agency.
    await pool.execute("UPDATE events SET organ_id = '000.00.00.H01' WHERE id = $1", victim["id"])
    out = cli(settings, "audit", "check")
    assert (
        out.returncode == 1
        and f"first leaf that no longer matches: {victim['ledger_index']}" in out.stdout
    )
    await pool.execute(
        "UPDATE events SET organ_id = $2 WHERE id = $1", victim["id"], victim["organ_id"]
    )
    assert cli(settings, "audit", "check").returncode == 0

    # Reordered: two leaves swap places.
    a, b = victim["ledger_index"], victim["ledger_index"] + 1
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE events SET ledger_index = -1 WHERE ledger_index = $1", a)
        await conn.execute("UPDATE events SET ledger_index = $1 WHERE ledger_index = $2", a, b)
        await conn.execute("UPDATE events SET ledger_index = $1 WHERE ledger_index = -1", b)
    out = cli(settings, "audit", "check")
    assert out.returncode == 1 and f"no longer matches: {a}" in out.stdout
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE events SET ledger_index = -1 WHERE ledger_index = $1", a)
        await conn.execute("UPDATE events SET ledger_index = $1 WHERE ledger_index = $2", a, b)
        await conn.execute("UPDATE events SET ledger_index = $1 WHERE ledger_index = -1", b)
    assert cli(settings, "audit", "check").returncode == 0

    # Deleted: a row disappears.
    await pool.execute("DELETE FROM events WHERE id = $1", victim["id"])
    out = cli(settings, "audit", "check")
    assert out.returncode == 1 and f"no longer matches: {victim['ledger_index']}" in out.stdout


def _zip(members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info, content in members:
            dst.writestr(info, content)
    return out.getvalue()


def _members(data: bytes) -> list[tuple[str, bytes]]:
    src = zipfile.ZipFile(io.BytesIO(data))
    return [(n, src.read(n)) for n in src.namelist()]


def _symlink(name: str, target: bytes) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode in external_attr counts
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


def _needs_version(data: bytes, version: int) -> bytes:
    """The bundle, its first central directory entry asking for zip ``version`` to extract."""
    at = data.index(b"PK\x01\x02") + 6
    return data[:at] + bytes([version, 0]) + data[at + 2 :]


def _fake_tree(data: bytes, contents: list[bytes]) -> dict[str, bytes]:
    """Leaves of the attacker's choosing, with a head whose root really covers them (its
    signature cannot verify): verification must get past the proofs to the leaves' content."""
    hashes = [merkle.leaf_hash(c) for c in contents]
    root = merkle.root_hash(len(contents), lambda level, index: _subtree(hashes, level, index))
    pkg = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("evidence.json"))["package_id"]
    leaves = [
        {
            "index": i,
            "package_id": pkg,
            "event": "status",
            "leaf": base64.b64encode(c).decode(),
            "audit_path": [
                h.hex()
                for h in merkle.inclusion_proof(
                    i, len(contents), lambda lv, ix: _subtree(hashes, lv, ix)
                )
            ],
        }
        for i, c in enumerate(contents)
    ]
    head = {
        "v": 1,
        "log": "lienthong",
        "tree_size": len(contents),
        "root_hash": root.hex(),
        "timestamp": "2026-01-01T00:00:00.000000+00:00",
    }
    return {
        "ledger/head.json": json.dumps(head).encode(),
        "ledger/leaves.json": json.dumps({"tree_size": len(contents), "leaves": leaves}).encode(),
    }


def _subtree(hashes: list[bytes], level: int, index: int) -> bytes:
    nodes = hashes[index << level : (index + 1) << level]
    while len(nodes) > 1:
        nodes = [merkle.node_hash(nodes[i], nodes[i + 1]) for i in range(0, len(nodes), 2)]
    return nodes[0]


async def test_hostile_bundle_shapes_get_a_refusal_never_a_traceback(ledger_hub, pki, tmp_path):
    _, _, _, settings, _ = ledger_hub
    data, _ = await _bundle(ledger_hub, "12")
    anchor = _hub_anchor(pki, tmp_path)
    index = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("evidence.json"))
    pkg = index["package_id"]
    digest = hashlib.sha256(zipfile.ZipFile(io.BytesIO(data)).read("package.edxml")).hexdigest()

    def leaf(**changes) -> bytes:
        content = {
            "v": 1,
            "event": "status",
            "package": pkg,
            "digest": digest,
            "organ": PROVINCE,
            "at": "2026-01-01T00:00:00.000000+00:00",
            "detail": {},
        }
        return json.dumps({**content, **changes}).encode()

    deep = b"[" * 100_000 + b"]" * 100_000
    cases = {
        "evidence.json a list": ({"evidence.json": b"[]"}, "evidence.json must be a JSON object"),
        "files a list": (
            {"evidence.json": json.dumps({**index, "files": list(index["files"])}).encode()},
            "evidence.json: files must be a JSON object",
        ),
        "status_packages a number": (
            {"evidence.json": json.dumps({**index, "status_packages": 7}).encode()},
            "status_packages must be a list",
        ),
        "an unexpected key": (
            {"evidence.json": json.dumps({**index, "signed_by": "the minister"}).encode()},
            "unexpected keys: signed_by",
        ),
        "a version that is true": (
            {"evidence.json": json.dumps({**index, "v": True}).encode()},
            "evidence.json is not a lienthong evidence index (v 1)",
        ),
        "100,000 nested arrays in evidence.json": ({"evidence.json": deep}, "nests too deeply"),
        "100,000 nested arrays in leaves.json": (
            {"ledger/leaves.json": deep},
            "ledger/leaves.json nests too deeply",
        ),
        "leaves that are numbers or lists": (
            {"ledger/leaves.json": json.dumps({"tree_size": 3, "leaves": [5, [1]]}).encode()},
            "leaf #0 must be a JSON object, not a number",
        ),
        "a head that is a list": ({"ledger/head.json": b"[1, 2]"}, "ledger/head.json must be"),
    }
    failed_checks = {
        # Proven against the head's root, so verification reaches their content.
        "leaf contents that are numbers or lists": (
            _fake_tree(data, [b"5", b"[1]"]),
            "not a lienthong leaf",
        ),
        "a status detail that is a string": (
            _fake_tree(data, [leaf(detail="a string")]),
            "detail must be a JSON object, not a string",
        ),
        "a status link to nothing": (
            _fake_tree(data, [leaf(detail={"status_package": 5, "status_digest": []})]),
            "status_package must be a string",
        ),
    }

    async def run(name: str, doctored: bytes) -> tuple[int, str]:
        path = tmp_path / f"{name}.asice"
        path.write_bytes(doctored)
        proc = await asyncio.create_subprocess_exec(
            *cli_args("audit", "verify", str(path), "--trust", str(anchor), "--json"),
            env=_cli_env(settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        return proc.returncode, out.decode(), err.decode()

    every = {**cases, **failed_checks}
    results = await asyncio.gather(
        *(
            run(name, _rewrite(data, changes, fix_index=False))
            for name, (changes, _) in every.items()
        )
    )
    for (name, (_, message)), (code, out, err) in zip(every.items(), results, strict=True):
        assert "Traceback" not in out + err, (name, out, err)
        assert code == 1, (name, out, err)
        if name in cases:
            assert "error: the bundle is refused: " in err and message in err, (name, err)
        else:
            failed = [c["detail"] for c in json.loads(out) if not c["ok"]]
            assert any(message in detail for detail in failed), (name, failed)


async def test_members_the_manifest_does_not_list_are_refused(ledger_hub, pki, tmp_path):
    _, _, _, settings, _ = ledger_hub
    data, _ = await _bundle(ledger_hub, "13")
    anchor = _hub_anchor(pki, tmp_path)
    members = _members(data)
    package = dict(members)["package.edxml"]
    forged = package.replace(b"Ledger test", b"Forged test")
    cases = {
        "a forged status next to the real ones": (
            _zip([*members, ("statuses/00000000-0000-4000-8000-000000000000.edxml", forged)]),
            "is not listed in META-INF/manifest.xml",
        ),
        "an unlisted symlink": (
            _zip([*members, _symlink("statuses/link.edxml", b"/etc/passwd")]),
            "is a symbolic link",
        ),
        "the package as a symlink entry": (
            _zip([_symlink(n, c) if n == "package.edxml" else (n, c) for n, c in members]),
            "'package.edxml' is a symbolic link",
        ),
        "a member needing an unknown zip version": (
            _needs_version(data, 0xFF),
            "not a readable zip",
        ),
        "a directory entry": (
            _zip([*members, ("statuses/extra/", b"")]),
            "is not a regular file",
        ),
    }
    for name, (doctored, message) in cases.items():
        path = tmp_path / "bundle.asice"
        path.write_bytes(doctored)
        out = cli(settings, "audit", "verify", str(path), "--trust", str(anchor), "--json")
        assert out.returncode == 1, (name, out.stdout)
        assert "Traceback" not in out.stderr, (name, out.stderr)
        assert "the bundle is refused: " in out.stderr and message in out.stderr, (
            name,
            out.stderr,
        )
    # README.txt is hashed like the evidence: rewording what the items prove fails a check.
    path.write_bytes(
        _zip([(n, b"Everything here is proven." if n == "README.txt" else c) for n, c in members])
    )
    out = cli(settings, "audit", "verify", str(path), "--trust", str(anchor), "--json")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert [c["item"] for c in json.loads(out.stdout) if not c["ok"]] == ["file README.txt"]
    # The bundle as the hub made it still passes.
    path.write_bytes(data)
    assert cli(settings, "audit", "verify", str(path), "--trust", str(anchor)).returncode == 0


def _listed_everywhere(data: bytes, extra: dict[str, bytes]) -> bytes:
    """Add members and list them in both (unsigned) indexes: the manifest and evidence.json."""
    src = zipfile.ZipFile(io.BytesIO(data))
    files = {n: src.read(n) for n in src.namelist()}
    files.update(extra)
    index = json.loads(files["evidence.json"])
    for name, content in extra.items():
        index["files"][name] = hashlib.sha256(content).hexdigest()
    files["evidence.json"] = json.dumps(index).encode()
    manifest = files["META-INF/manifest.xml"].decode()
    entries = "".join(
        f'<manifest:file-entry manifest:full-path="{n}" manifest:media-type="text/plain"/>'
        for n in extra
    )
    files["META-INF/manifest.xml"] = manifest.replace(
        "</manifest:manifest>", entries + "</manifest:manifest>"
    ).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name, content in files.items():
            dst.writestr(name, content)
    return out.getvalue()


async def test_members_listed_in_the_unsigned_indexes_are_still_not_evidence(
    ledger_hub, pki, tmp_path
):
    """Listing a forged member in the manifest and evidence.json does not make it evidence:
    only the bundle's own layout, about its own packages, and reports the ledger names."""
    _, _, _, settings, _ = ledger_hub
    data, sent = await _bundle(ledger_hub, "14")
    package_id = sent["id"]
    anchor = _hub_anchor(pki, tmp_path)
    forged = {
        "a status nobody sent": {"statuses/00000000-0000-4000-8000-000000000000.edxml": b"<x/>"},
        "a report nobody made": {f"reports/{package_id}.json": b'{"indication": "TOTAL-PASSED"}'},
        "anything else": {"notes/anything.exe": b"MZ"},
    }
    for name, extra in forged.items():
        path = tmp_path / "forged.asice"
        path.write_bytes(_listed_everywhere(data, extra))
        out = cli(settings, "audit", "verify", str(path), "--trust", str(anchor), "--json")
        assert out.returncode == 1, (name, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr
