"""The federation routes: what peer hubs ask for over mutual TLS, and the witness signatures.

A peer is recognised by the certificate of its connection alone: its SHA-256 must be the one
registered with ``lienthong federation peer add``; anything else is ``403 federation.not_peer``.
"""

from __future__ import annotations

import hashlib
import re

from aiohttp import web

from exchange import hubkeys
from exchange.errors import HubError
from exchange.federation.witness import witness_json
from exchange.http import v1
from exchange.http.tls import peer_certificate

__all__ = ["directory", "package_for_peer", "peer_head", "witnesses"]

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


async def _peer(request: web.Request) -> str:
    """The peer hub on the other end of this connection, or ``federation.not_peer``."""
    hub = request.app[v1.HUB]
    der = peer_certificate(request)
    peer = None
    if der and hub.federation is not None:
        peer = await hub.federation.store.peer_by_certificate(hashlib.sha256(der).digest())
    if peer is None:
        raise HubError(
            "federation.not_peer",
            "this route is for peer hubs: connect with a hub certificate registered as a peer",
        )
    return peer


async def package_for_peer(request: web.Request) -> web.StreamResponse:
    """GET /v1/federation/packages/{digest}: the bytes of a package handed over to a peer."""
    hub = request.app[v1.HUB]
    await _peer(request)
    digest_hex = request.match_info["digest"]
    if not _DIGEST.match(digest_hex):
        raise HubError("request.invalid_parameter", "digest is a SHA-256 in hex", field="digest")
    digest = bytes.fromhex(digest_hex)
    path = hub.blobs.path_for(digest)
    if not await hub.federation.store.handed_over(digest) or not path.is_file():
        raise HubError("package.not_found", "no package with this digest was handed over")
    return web.FileResponse(path, headers={"Content-Type": "application/xml"})


async def peer_head(request: web.Request) -> web.Response:
    """GET /v1/federation/head[?consistency_from=M]: the latest signed head, for witnesses."""
    hub = request.app[v1.HUB]
    old = v1._int(request.query, "consistency_from", 0, 0, 2**62)
    await _peer(request)
    head = await hub.ledger.head()
    if head is None:
        raise HubError("ledger.head_not_found", "no signed head yet")
    body = head.to_json()
    body["certificate"] = hubkeys.pem_chain(hubkeys.chain_of(hub.key))
    if old:
        proof = await v1._proof(hub.ledger.consistency(old, head.tree_size))
        body["consistency"] = {"from": old, "proof": [h.hex() for h in proof]}
    return web.json_response(body)


async def directory(request: web.Request) -> web.Response:
    """GET /v1/federation/directory: every agency this hub knows, with its home hub."""
    hub = request.app[v1.HUB]
    await _peer(request)
    rows = await hub.federation.store.directory()
    items = [
        {
            "code": r["code"],
            "name": r["name"],
            "parent": r["parent"],
            "level": r["level"],
            "valid_from": r["valid_from"].isoformat() if r["valid_from"] else None,
            "valid_to": r["valid_to"].isoformat() if r["valid_to"] else None,
            "successor": r["successor"],
            "successors": list(r["successors"]),
            "home_hub": r["hub_id"] or hub.settings.hub_id,
        }
        for r in rows
    ]
    return web.json_response({"hub_id": hub.settings.hub_id, "items": items})


async def witnesses(request: web.Request) -> web.Response:
    """GET /v1/ledger/witnesses[?peer=HUB][&limit=N]: this hub's countersignatures of its
    peers' tree heads, newest first (agencies and peers may read them)."""
    hub = request.app[v1.HUB]
    try:
        await _peer(request)
    except HubError:
        await v1._caller(request)
    limit = v1._int(request.query, "limit", 100, 1, 1000)
    peer = request.query.get("peer") or None
    rows = [] if hub.federation is None else await hub.federation.store.witnesses(peer, limit)
    return web.json_response(
        {"hub_id": hub.settings.hub_id or None, "items": [witness_json(r) for r in rows]}
    )
