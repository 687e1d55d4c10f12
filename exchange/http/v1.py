"""The ``/v1`` handlers: authenticate, read the request, call the core, shape the answer.

Every route but the token endpoint, the OpenAPI document and the operators' routes needs a
bearer token (or a registered client certificate). Refusals are raised as errors and answered
by :mod:`exchange.http.errors`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import logging

from aiohttp import web

from exchange import documents, hubkeys, kpi, merkle, trails
from exchange.auth import Caller, authenticate
from exchange.clientcerts import CertificateCache, certificate_bound, certificate_caller
from exchange.errors import HubError
from exchange.evidence import build_bundle
from exchange.history import agency_as_of, package_parties, parse_day
from exchange.http import federation as federation_routes
from exchange.http.bodies import stream_body
from exchange.http.login import LoginGuard, token_response
from exchange.http.openapi import openapi_document
from exchange.http.push import push_routes
from exchange.http.tls import peer_certificate
from exchange.hub import Hub
from exchange.throttle import SlidingWindow, too_many
from schemas import OrganId

__all__ = ["CERTS", "HEAD_SIGNS", "HUB", "KPI_REPORTS", "LOGINS", "ROUTES"]

log = logging.getLogger("lienthong.http")
HUB = web.AppKey("hub", Hub)
LOGINS = web.AppKey("logins", LoginGuard)
HEAD_SIGNS = web.AppKey("head_signs", SlidingWindow)
KPI_REPORTS = web.AppKey("kpi_reports", SlidingWindow)  # reports computed, per agency
CERTS = web.AppKey("client_certificates", CertificateCache)
_XML_TYPES = {"application/xml", "text/xml", "application/edxml+xml"}


async def _caller(request: web.Request) -> Caller:
    """The bearer token's agency, or the registered client certificate's. On a connection with
    such a certificate a token is optional, and a token of another agency is refused."""
    hub = request.app[HUB]
    header = request.headers.get("Authorization")
    certs = request.app[CERTS]
    bound = await certificate_caller(hub.credentials, peer_certificate(request), certs)
    if bound is None:
        caller = await authenticate(hub.credentials, header, hub.tokens)
        if await certificate_bound(hub.credentials, caller.organ_id, certs):
            raise HubError(
                "auth.certificate_required",
                f"{caller.organ_id} is bound to a client certificate: present it (mutual TLS) "
                "with the token",
            )
        return caller
    if not header:
        return bound
    caller = await authenticate(hub.credentials, header, hub.tokens)
    if caller.organ_id != bound.organ_id:
        raise HubError(
            "auth.certificate_mismatch",
            "the bearer token is not for the agency of this connection's client certificate",
        )
    return caller


async def token(request: web.Request) -> web.Response:
    """OAuth2 client credentials: form or JSON body, or HTTP Basic for the client pair."""
    hub = request.app[HUB]
    return await token_response(request, hub.credentials, hub.settings, request.app[LOGINS])


async def agencies(request: web.Request) -> web.Response:
    """The registry: GET /v1/agencies?parent=&level=&under=&at=&limit=&offset="""
    hub = request.app[HUB]
    await _caller(request)
    query = request.query
    under = None
    if "under" in query:
        under = OrganId.parse(query["under"], field="under").subtree_prefix
    level = query.get("level")
    if level is not None and level not in _LEVELS:
        raise HubError(
            "request.invalid_parameter", f"level must be one of {', '.join(_LEVELS)}", field="level"
        )
    rows = await hub.registry.list(
        parent=query.get("parent"),
        level=level,
        under=under,
        at=parse_day(query.get("at")),
        limit=_int(query, "limit", 1000, 1, 10_000),
        offset=_int(query, "offset", 0, 0, 10**9),
    )
    return web.json_response({"items": [a.to_json() for a in rows]})


async def agency(request: web.Request) -> web.Response:
    """One agency as of a day, with its versions: GET /v1/agencies/{code}?at=YYYY-MM-DD"""
    hub = request.app[HUB]
    await _caller(request)
    day = parse_day(request.query.get("at"))
    return web.json_response(await agency_as_of(hub.registry, request.match_info["code"], day))


_LEVELS = ("central", "province", "district", "commune")


def _int(query, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HubError(
            "request.invalid_parameter", f"{name} must be an integer", field=name
        ) from None
    if not low <= value <= high:
        raise HubError(
            "request.invalid_parameter", f"{name} must be between {low} and {high}", field=name
        )
    return value


async def submit(request: web.Request) -> web.Response:
    """POST /v1/packages: the edXML package as the body, streamed to disk while hashed."""
    hub = request.app[HUB]
    caller = await _caller(request)
    if request.content_type not in _XML_TYPES:
        raise HubError(
            "request.unsupported_media_type",
            f"send the package as application/xml, not {request.content_type or 'no type'}",
        )
    limit = hub.settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise HubError("body.too_large", f"the body is larger than the limit of {limit} bytes")
    incoming = hub.blobs.incoming(limit)
    try:
        async for chunk in stream_body(
            request,
            idle_timeout=hub.settings.body_idle_timeout_seconds,
            deadline=hub.settings.body_timeout_seconds,
            min_rate=hub.settings.body_min_rate_bytes_per_second,
        ):
            incoming.write(chunk)
    except BaseException:
        incoming.discard()
        raise
    if incoming.size == 0:
        incoming.discard()
        raise HubError("body.empty", "the body is empty")
    result = await hub.submissions.submit(caller, incoming)
    status = 200 if result.duplicate else 202
    return web.json_response(
        result.to_json(), status=status, headers={"Location": f"/v1/packages/{result.id}"}
    )


async def inbox(request: web.Request) -> web.Response:
    """GET /v1/inbox?after=CURSOR&limit=N"""
    hub = request.app[HUB]
    caller = await _caller(request)
    after = _int(request.query, "after", 0, 0, 2**62)
    limit = _int(request.query, "limit", 100, 1, hub.settings.inbox_max_limit)
    return web.json_response(
        await hub.deliveries.inbox(caller, after, limit, hub.settings.inbox_max_bytes)
    )


async def package_bytes(request: web.Request) -> web.StreamResponse:
    """GET /v1/packages/{id}: exactly the stored bytes."""
    hub = request.app[HUB]
    caller = await _caller(request)
    row = await hub.deliveries.locate(caller, request.match_info["id"])
    path = hub.blobs.path_for(row["digest"])
    if not path.is_file():
        log.error("stored bytes missing", extra={"package_id": str(row["id"])})
        raise HubError(
            "package.bytes_missing",
            "the hub cannot find this package's bytes; the operators are alerted",
        )
    await documents.refuse_recalled(hub.flows, caller, row)
    await hub.deliveries.fetched(caller, row)
    # Again once the download is recorded: a recall decided meanwhile may have seen it untaken.
    await documents.refuse_recalled(hub.flows, caller, row)
    digest_b64 = base64.b64encode(row["digest"]).decode()
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/xml",
            "Repr-Digest": f"sha-256=:{digest_b64}:",
            "X-Package-Kind": row["kind"],
        },
    )


async def receipt(request: web.Request) -> web.Response:
    """GET /v1/packages/{id}/receipt: the hub's signed receipt (made now if it was pending)."""
    hub = request.app[HUB]
    caller = await _caller(request)
    row = await hub.deliveries.locate(caller, request.match_info["id"])
    return web.json_response(await hub.receipts.issue(row["id"]))


async def ack(request: web.Request) -> web.Response:
    """POST /v1/packages/{id}/ack"""
    hub = request.app[HUB]
    caller = await _caller(request)
    return web.json_response(await hub.deliveries.acknowledge(caller, request.match_info["id"]))


async def trail(request: web.Request) -> web.Response:
    """GET /v1/packages/{id}/trail"""
    hub = request.app[HUB]
    caller = await _caller(request)
    body = await trails.trail(hub.deliveries, caller, request.match_info["id"])
    codes = [body["sender"]]
    for copy in body["recipients"]:
        codes += [copy["addressed_as"], copy["organ_id"]]
    received = dt.datetime.fromisoformat(body["received_at"])
    body["parties"] = await package_parties(hub.registry, codes, received)
    return web.json_response(body)


async def document(request: web.Request) -> web.Response:
    """GET /v1/documents?document_id=...: a document and every package about it."""
    hub = request.app[HUB]
    caller = await _caller(request)
    document_id = request.query.get("document_id", "")
    if not document_id:
        raise HubError("request.invalid_parameter", "document_id is required", field="document_id")
    return web.json_response(await documents.document(hub.flows, hub.packages, caller, document_id))


async def ledger_heads(request: web.Request) -> web.Response:
    """GET /v1/ledger/heads[?size=N][&consistency_from=M]; POST signs a head now."""
    hub = request.app[HUB]
    caller = await _caller(request)
    size = _int(request.query, "size", 0, 0, 2**62) or None
    old = _int(request.query, "consistency_from", 0, 0, 2**62)
    if request.method == "POST":
        limiter = request.app[HEAD_SIGNS]
        wait = limiter.retry_after(caller.organ_id)
        if wait is not None:
            raise too_many("request.rate_limited", "heads are signed on demand sparingly", wait)
        limiter.hit(caller.organ_id)
        head = await hub.ledger.sign_head(reuse_within=1.0)
    else:
        head = await hub.ledger.head(size)
    if head is None:
        raise HubError("ledger.head_not_found", "no signed head of that size")
    body = head.to_json()
    if old:
        body["consistency"] = {
            "from": old,
            "proof": [h.hex() for h in await _proof(hub.ledger.consistency(old, head.tree_size))],
        }
    return web.json_response(body)


async def ledger_certificate(request: web.Request) -> web.Response:
    """GET /v1/ledger/certificate: the PEM chain of the key the hub signs with; ?all=true: every
    key it has used (JSON: key id, subject, period of use, PEM chain)."""
    hub = request.app[HUB]
    await _caller(request)
    everything = request.query.get("all", "false")
    if everything not in ("true", "false"):
        raise HubError("request.invalid_parameter", "all must be true or false", field="all")
    if everything == "true":
        return web.json_response(await hubkeys.key_listing(hub.ledger_store, hub.key))
    return web.Response(
        text=hubkeys.pem_chain(hubkeys.chain_of(hub.key)),
        content_type="application/pem-certificate-chain",
        headers={"X-Key-Id": hubkeys.key_id(hub.key.cert)},
    )


async def _proof(coroutine):
    try:
        return await coroutine
    except merkle.ProofError as exc:
        raise HubError("ledger.bad_proof_request", str(exc)) from None


async def inclusion_proof(request: web.Request) -> web.Response:
    """GET /v1/ledger/proof/inclusion?leaf=INDEX&size=N"""
    hub = request.app[HUB]
    await _caller(request)
    index = _int(request.query, "leaf", -1, 0, 2**62)
    size = _int(request.query, "size", 0, 1, 2**62)
    path = await _proof(hub.ledger.inclusion(index, size))
    leaf = await hub.ledger.leaf_hash(index)
    return web.json_response(
        {
            "leaf_index": index,
            "tree_size": size,
            "leaf_hash": leaf.hex() if leaf else None,
            "audit_path": [h.hex() for h in path],
        }
    )


async def consistency_proof(request: web.Request) -> web.Response:
    """GET /v1/ledger/proof/consistency?from=M&to=N"""
    hub = request.app[HUB]
    await _caller(request)
    old = _int(request.query, "from", 0, 1, 2**62)
    new = _int(request.query, "to", 0, 1, 2**62)
    proof = await _proof(hub.ledger.consistency(old, new))
    return web.json_response({"from": old, "to": new, "proof": [h.hex() for h in proof]})


async def verification_report(request: web.Request) -> web.Response:
    """GET /v1/packages/{id}/report: the stored verification report, exactly as recorded."""
    hub = request.app[HUB]
    caller = await _caller(request)
    row = await hub.deliveries.locate(caller, request.match_info["id"])
    report = await hub.packages.report(row["id"])
    if report is None:
        raise HubError("report.not_found", "this package was not verified")
    return web.Response(body=report, content_type="application/json", charset="utf-8")


async def evidence(request: web.Request) -> web.Response:
    """GET /v1/packages/{id}/evidence: an ASiC-E zip an auditor checks offline."""
    hub = request.app[HUB]
    caller = await _caller(request)
    row = await hub.deliveries.locate(caller, request.match_info["id"])
    data = await build_bundle(hub, row, caller.organ_id)
    return web.Response(
        body=data,
        content_type="application/vnd.etsi.asic-e+zip",
        headers={"Content-Disposition": f'attachment; filename="evidence-{row["id"]}.asice"'},
    )


async def kpi_report(request: web.Request) -> web.Response:
    """GET /v1/reports/kpi?from=&to=&level=&under=&agency=&structure_at=: KPIs of the
    caller's own subtree."""
    hub = request.app[HUB]
    caller = await _caller(request)
    query = kpi.parse_query(request.query)
    limiter = request.app[KPI_REPORTS]
    wait = limiter.retry_after(caller.organ_id)
    if wait is not None:
        raise too_many("request.rate_limited", "KPI reports are computed sparingly", wait)
    limiter.hit(caller.organ_id)
    own = OrganId.parse(caller.organ_id).subtree_prefix
    if query.scope.under is None:
        query = dataclasses.replace(query, scope=dataclasses.replace(query.scope, under=own))
    elif not kpi.within(query.scope.under, own):
        raise HubError(
            "report.out_of_scope",
            f"{caller.organ_id} sees the KPIs of its own subtree only",
            field="under",
        )
    if query.scope.agency and not kpi.within(OrganId.parse(query.scope.agency).routing_key, own):
        raise HubError(
            "report.out_of_scope",
            f"{caller.organ_id} sees the KPIs of its own subtree only",
            field="agency",
        )
    report = await kpi.kpi_report(
        hub.stores.kpi, query, kpi.deadlines_of(hub.settings), hub.registry.structure_at
    )
    return web.json_response(report)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[HUB].settings.inbox_max_limit))


async def health(request: web.Request) -> web.Response:
    """GET /healthz: liveness. The process answers; says nothing of its dependencies."""
    return web.json_response({"status": "alive"})


async def ready(request: web.Request) -> web.Response:
    """GET /readyz: readiness. 200 when the database and the broker are both usable."""
    checks = await request.app[HUB].readiness()
    ok = all(value == "ok" for value in checks.values())
    return web.json_response(
        {"status": "ready" if ok else "not ready", **checks}, status=200 if ok else 503
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text; behind ``Authorization: Bearer <metrics_token>`` when that is set."""
    expected = request.app[HUB].settings.metrics_token
    if expected:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HubError("auth.missing", "send Authorization: Bearer <metrics_token>")
        # Compare digests: constant time whatever the lengths.
        digest = hashlib.sha256(given.strip().encode("utf-8", "surrogateescape")).digest()
        if not hmac.compare_digest(digest, hashlib.sha256(expected.encode()).digest()):
            raise HubError("auth.invalid_token", "wrong metrics token")
    hub = request.app[HUB]
    text = hub.metrics.render() + await hub.gauges()
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


# (method, path, handler): the router and the OpenAPI test read this one list.
ROUTES = [
    ("POST", "/v1/token", token),
    ("GET", "/v1/agencies", agencies),
    ("POST", "/v1/packages", submit),
    ("GET", "/v1/inbox", inbox),
    ("GET", "/v1/packages/{id}", package_bytes),
    ("POST", "/v1/packages/{id}/ack", ack),
    ("GET", "/v1/packages/{id}/trail", trail),
    ("GET", "/v1/packages/{id}/evidence", evidence),
    ("GET", "/v1/packages/{id}/report", verification_report),
    ("GET", "/v1/packages/{id}/receipt", receipt),
    ("GET", "/v1/ledger/heads", ledger_heads),
    ("POST", "/v1/ledger/heads", ledger_heads),
    ("GET", "/v1/ledger/certificate", ledger_certificate),
    ("GET", "/v1/ledger/proof/inclusion", inclusion_proof),
    ("GET", "/v1/ledger/proof/consistency", consistency_proof),
    ("GET", "/v1/openapi.json", openapi),
    ("GET", "/healthz", health),
    ("GET", "/readyz", ready),
    ("GET", "/metrics", metrics),
    ("GET", "/v1/reports/kpi", kpi_report),
    ("GET", "/v1/documents", document),
    ("GET", "/v1/agencies/{code}", agency),
    ("GET", "/v1/federation/packages/{digest}", federation_routes.package_for_peer),
    ("GET", "/v1/federation/head", federation_routes.peer_head),
    ("GET", "/v1/federation/directory", federation_routes.directory),
    ("GET", "/v1/ledger/witnesses", federation_routes.witnesses),
]
ROUTES += push_routes(HUB, _caller)  # receipts and /v1/admin (exchange/http/push.py)
