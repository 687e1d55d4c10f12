"""Hubs witness each other's ledgers.

Periodically this hub asks each peer (over mutual TLS) for its latest signed tree head and a
consistency proof from the last head it saw of that peer, checks the proof, and countersigns
the head with its own key: a statement "hub W saw peer P's log at size N with root R", kept and
served at ``GET /v1/ledger/witnesses``. A head that does not extend the one seen before is not
countersigned: it is kept as evidence and reported loudly (an error log and the peer's last
error), since a log that forks has rewritten history.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import logging

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from exchange import merkle
from exchange.errors import HubError
from exchange.federation.peers import Peers
from exchange.hubkeys import key_id
from exchange.store.federation import PostgresFederation
from exchange.tasks import BackgroundLoop, log_failure
from signing import KeyHandle, sign_detached, verify_detached

__all__ = ["Witness", "witness_json"]

log = logging.getLogger("lienthong.federation")


def witness_body(witness: str, peer: str, head: bytes, size: int, root: bytes) -> bytes:
    """The canonical statement a witness signature covers."""
    return json.dumps(
        {
            "v": 1,
            "type": "lienthong.witness",
            "witness": witness,
            "peer": peer,
            "tree_size": size,
            "root_hash": root.hex(),
            "head_sha256": hashlib.sha256(head).hexdigest(),
            "witnessed_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def witness_json(row) -> dict:
    """A stored witness signature as the API serves it."""
    return {
        "peer": row["peer"],
        "tree_size": row["tree_size"],
        "root_hash": row["root_hash"].hex(),
        "peer_head": row["head"].decode(),
        "peer_signature": base64.b64encode(row["peer_signature"]).decode(),
        "body": base64.b64encode(row["body"]).decode(),
        "signature": base64.b64encode(row["signature"]).decode(),
        "signature_format": "CMS SignedData, detached, DER, base64",
        "witnessed_at": row["witnessed_at"].isoformat(),
    }


async def _check_signed(peer: str, head: bytes, signature: bytes, chain_pem: object) -> None:
    """The head's CMS signature is intact and made by the key the head names (whose chain the
    peer serves with it). This proves integrity, not trust: an auditor checks the peer's key
    against the anchors it trusts (``lienthong audit verify --trust``)."""
    try:
        certs = [
            asn1_x509.Certificate.load(der)
            for _, _, der in pem.unarmor(str(chain_pem).encode(), multiple=True)
        ]
        if not certs:
            raise ValueError("no certificate")
        result = await verify_detached(head, signature, [certs[-1]])
        named = json.loads(head).get("key")
    except (ValueError, TypeError) as exc:
        raise HubError("federation.bad_head", f"{peer}'s head signature: {exc}") from None
    if not (result.intact and result.valid) or (named and named != key_id(result.signer_cert)):
        raise HubError(
            "federation.bad_head",
            f"{peer}'s head is not signed by the key it names ({result.problem or 'other key'})",
        )


class Witness(BackgroundLoop):
    """Countersigns every peer's latest head every ``interval`` seconds."""

    task_name = "federation-witness"

    def __init__(
        self,
        hub_id: str,
        store: PostgresFederation,
        peers: Peers,
        key: KeyHandle,
        interval: float,
    ) -> None:
        self.hub_id = hub_id
        self.store = store
        self.peers = peers
        self.key = key
        self.interval = interval
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.witness_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_failure(log, "witnessing peers' heads failed; retrying", exc)

    async def witness_all(self) -> dict[str, str]:
        """One round over every peer: ``{peer: "witnessed N" | "inconsistent" | error}``."""
        outcome = {}
        for row in await self.store.peers():
            peer = row["hub_id"]
            try:
                outcome[peer] = await self.witness(peer)
                await self.store.peer_error(peer, None)
            except HubError as exc:
                outcome[peer] = exc.code
                await self.store.peer_error(peer, f"witness: {exc.message}")
        return outcome

    async def witness(self, peer: str) -> str:
        """Check and countersign ``peer``'s latest head."""
        last = await self.store.last_witnessed(peer)
        params = {"consistency_from": str(last["tree_size"])} if last else None
        client = await self.peers.client(peer)
        answer = await client.get_json("/v1/federation/head", params)
        try:
            size, root = int(answer["tree_size"]), bytes.fromhex(answer["root_hash"])
            head, signature = answer["head"].encode(), base64.b64decode(answer["signature"])
            if (
                json.loads(head).get("root_hash") != root.hex()
                or json.loads(head).get("tree_size") != size
            ):
                raise ValueError("the head's fields are not what it signs")
            proof = [bytes.fromhex(h) for h in answer.get("consistency", {}).get("proof", [])]
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise HubError(
                "federation.bad_head", f"{peer} served an unreadable head: {exc}"
            ) from None
        await _check_signed(peer, head, signature, answer.get("certificate"))
        if last is not None:
            if size < last["tree_size"]:
                return await self._inconsistent(peer, last, size, root, "the log shrank")
            try:
                merkle.verify_consistency(last["tree_size"], size, last["root_hash"], root, proof)
            except merkle.ProofError as exc:
                return await self._inconsistent(peer, last, size, root, str(exc))
            if size == last["tree_size"]:
                return f"unchanged {size}"
        body = witness_body(self.hub_id, peer, head, size, root)
        ours = await sign_detached(body, self.key)
        await self.store.add_witness(peer, size, root, head, signature, body, ours)
        return f"witnessed {size}"

    async def _inconsistent(self, peer: str, last, size: int, root: bytes, why: str) -> str:
        detail = {
            "previous": {"tree_size": last["tree_size"], "root_hash": last["root_hash"].hex()},
            "now": {"tree_size": size, "root_hash": root.hex()},
            "problem": why,
        }
        log.error(
            "PEER LEDGER INCONSISTENT: %s showed a head that does not extend the one it showed "
            "before (%s)",
            peer,
            why,
            extra={"peer": peer, **detail},
        )
        await self.store.add_inconsistency(peer, detail)
        await self.store.peer_error(peer, f"ledger inconsistent: {why}")
        return "inconsistent"
