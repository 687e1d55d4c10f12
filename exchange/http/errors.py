"""HTTP answers to refusals: one table from error code to status, and the middleware that
turns every failure into ``{"error": {"code", "message", "field", "line", "detail"}}``.

The OpenAPI document's error list and the middleware both read :data:`ERROR_CODES`; no refusal
chooses its own status where it is raised.
"""

from __future__ import annotations

import errno
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from exchange.errors import HubError
from exchange.store.database import unavailable
from schemas import FormatError

__all__ = ["ERROR_CODES", "REFUSALS", "errors_middleware", "refusal_response", "status_of"]

log = logging.getLogger("lienthong.http")

# Every error code a client can receive, with its HTTP status. Tests check that the code
# emits only these.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "auth.missing": (401, "no bearer token"),
    "auth.invalid_token": (401, "unknown or revoked token"),
    "auth.token_expired": (401, "the token has expired; get a new one from /v1/token"),
    "auth.invalid_client": (401, "wrong client_id or client_secret"),
    "auth.unsupported_grant_type": (400, "only client_credentials is supported"),
    "auth.throttled": (429, "too many failed logins from this client id or address; wait"),
    "auth.certificate_required": (401, "the agency is bound to a client certificate; present it"),
    "auth.certificate_mismatch": (401, "a token for another agency than the client certificate's"),
    "request.malformed": (400, "the HTTP request is malformed"),
    "request.aborted": (400, "the client went away mid-request (never seen by a client)"),
    "request.expectation_failed": (417, "an Expect header the hub does not meet"),
    "request.timeout": (408, "the request head or body did not arrive in time"),
    "request.uri_too_long": (414, "the request line is over 8190 bytes"),
    "request.header_too_large": (431, "a header line over 8190 bytes, 100 lines or 64 KiB"),
    "request.unsupported_encoding": (415, "Content-Encoding other than gzip, deflate, identity"),
    "request.rate_limited": (429, "too many requests of this kind; see Retry-After"),
    "body.bad_encoding": (400, "a gzip or deflate body that does not decode, or is truncated"),
    "body.malformed": (400, "broken body framing (chunked transfer coding)"),
    "service.unavailable": (503, "the database is unreachable; try again later"),
    "request.unsupported_media_type": (415, "packages are sent as application/xml"),
    "request.invalid_parameter": (400, "a query parameter is out of range"),
    "request.invalid_json": (400, "the body is not the JSON expected"),
    "body.empty": (400, "the body is empty"),
    "body.too_large": (413, "the body is over the configured limit"),
    "xml.malformed": (400, "not well-formed XML; the message names line and cause"),
    "xml.dtd_forbidden": (400, "DOCTYPE, entities and external references are refused"),
    "xml.too_deep": (400, "element nesting deeper than the limit"),
    "xml.too_many_elements": (400, "more elements than the limit"),
    "edxml.namespace": (422, "the root is not {http://www.mic.gov.vn/TBT/QCVN_102_2016}edXML"),
    "edxml.schema": (422, "the package breaks the QCVN 102:2016 schema"),
    "edxml.base64": (422, "an attachment is not valid base64"),
    "edxml.manifest_missing_attachment": (422, "a manifest reference has no attachment"),
    "edxml.attachment_not_in_manifest": (422, "an attachment is missing from the manifest"),
    "edxml.duplicate_content_id": (422, "two attachments share a ContentId"),
    "edxml.too_many_attachments": (413, "more attachments than the limit"),
    "edxml.field_too_long": (422, "a text field is longer than its limit (message names it)"),
    "edxml.attachment_name": (422, "an attachment name that is not a plain file name"),
    "organ_id.invalid": (422, "an organ id cannot be parsed"),
    "sender.mismatch": (403, "From/OrganId is not the authenticated agency"),
    "recipient.missing": (422, "the package names no recipient"),
    "recipient.unknown": (422, "a recipient is not in the registry"),
    "recipient.inactive": (422, "a recipient code is not valid today (see its successor)"),
    "package.duplicate_document_id": (409, "DocumentId already used with other content"),
    "status.not_party": (403, "a status from an agency with no such part in the document"),
    "status.unknown_document": (422, "a status about a document the hub does not know"),
    "package.not_found": (404, "no such package, or not yours to see"),
    "delivery.not_delivered": (409, "acknowledging before delivery"),
    "delivery.not_recipient": (409, "only a recipient acknowledges"),
    "signature.invalid": (422, "a signature failed (TOTAL-FAILED); detail has the report digest"),
    "signature.indeterminate": (422, "signatures could not be confirmed and policy refuses that"),
    "signature.missing": (422, "the package carries no XML signature and its policy needs one"),
    "signature.wrong_signer": (403, "a valid signature by someone not allowed to sign for From"),
    "report.not_found": (404, "the package was not verified (no trust anchors configured)"),
    "receipt.pending": (503, "the package's ledger position is not assigned yet; ask again"),
    "package.bytes_missing": (500, "the stored bytes are missing (operators are alerted)"),
    "ledger.head_not_found": (404, "no signed tree head of that size"),
    "ledger.bad_proof_request": (400, "leaf or sizes outside the log"),
    "http.not_found": (404, "no such route"),
    "http.method_not_allowed": (405, "wrong method for the route"),
    "internal": (500, "unexpected failure; an incident id is logged"),
    "report.out_of_scope": (403, "KPIs of agencies outside the caller's own subtree"),
    "console.bad_login": (401, "console sign-in with a wrong user name or password"),
    "console.locked": (429, "console user locked after repeated failed sign-ins"),
    "console.csrf_invalid": (403, "a console form without the session's CSRF token"),
    "console.forbidden": (403, "a console page the user's role may not see"),
    "status.out_of_order": (409, "a status the recipient's copy cannot take now (names its state)"),
    "recall.pending": (409, "a recall of that copy still waits for its answer (15 or 16)"),
    "document.unknown": (422, "a revocation, update or replacement of a document never sent"),
    "document.not_sender": (403, "a revocation, update or replacement of another's document"),
    "document.not_recipient": (422, "a replacement naming an organ that never received it"),
    "package.recalled": (410, "the sender recalled this document from the caller"),
    "push.invalid_url": (422, "a push URL that is not http(s), names no host, or carries a user"),
    "push.unknown_agency": (404, "push for an agency that is not in the registry"),
    "push.not_found": (404, "no push delivery with that id"),
    "push.not_retryable": (409, "the push delivery was acknowledged already"),
    "admin.disabled": (403, "the admin API is off until admin_token is set"),
    "agency.not_found": (404, "no such agency in the registry (on that day)"),
    "sender.inactive": (403, "sending as a retired code; the message names its successor"),
    "vdxp.unsigned": (401, "VDXP: no or malformed XroadVnpt-sign-header / hash-header"),
    "vdxp.bad_signature": (401, "VDXP: wrong HMAC, or unknown or revoked systemid"),
    "vdxp.organ_not_served": (403, "VDXP: the systemid does not serve this organ id"),
    "vdxp.missing_parameter": (400, "VDXP: a parameter the operation needs is missing"),
    "vdxp.hash_mismatch": (400, "VDXP: hash-file does not match the body (truncated upload)"),
    "vdxp.registry_managed": (403, "VDXP: the registry is managed by the hub's operators"),
    "federation.not_peer": (403, "a federation route or hand-over from a hub that is not a peer"),
    "federation.loop": (409, "a hand-over whose hops already include this hub (never an answer)"),
    "federation.bad_message": (400, "a federation message that is not a valid hand-over or note"),
    "federation.sender_mismatch": (422, "the fetched package's sender is not the hand-over's"),
    "federation.digest_mismatch": (502, "a peer served bytes other than the digest named"),
    "federation.fetch_failed": (502, "a peer hub could not be reached or refused the fetch"),
    "federation.bad_head": (502, "a peer served a tree head that cannot be read"),
    "federation.bad_peer": (400, "peer add: a hub id, URL or certificate that is not usable"),
    "federation.unknown_peer": (404, "peer remove: no such peer"),
    "federation.not_configured": (400, "federation needs hub_id, tls_cert and tls_key"),
    "federation.management_failed": (502, "the RabbitMQ management API refused or is unreachable"),
}


_RETRY_AFTER_SECONDS = 5
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS}
# Routes that answer without the database: liveness, readiness, metrics, the API description.
WITHOUT_DATABASE = frozenset({"/healthz", "/readyz", "/metrics", "/v1/openapi.json"})
# aiohttp's own refusals, by status; their headers (Allow on a 405) are kept.
_HTTP_CODES = {
    400: "request.malformed",
    404: "http.not_found",
    405: "http.method_not_allowed",
    413: "body.too_large",
    417: "request.expectation_failed",
}
_KEPT_HEADERS = ("Allow", "Retry-After", "Accept-Encoding", "Accept-Ranges", "Content-Range")

Refusal = HubError | FormatError


def status_of(code: str) -> int:
    """The HTTP status of an error code (500 for a code missing from the table: a bug)."""
    entry = ERROR_CODES.get(code)
    if entry is None:
        log.error("an error code is missing from the status table", extra={"code": code})
        return 500
    return entry[0]


def refusal_response(exc: Refusal) -> web.Response:
    """The JSON answer to a refusal, with the status of its code and the headers it needs."""
    status = status_of(exc.code)
    body: dict = {"code": exc.code, "message": exc.message}
    for name in ("field", "line", "detail"):
        if value := getattr(exc, name, None):
            body[name] = value
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 503:
        headers.setdefault("Retry-After", str(_RETRY_AFTER_SECONDS))
    return web.json_response({"error": body}, status=status, headers=headers or None)


def unavailable_error() -> HubError:
    """The database cannot be reached: nothing was changed, try again."""
    return HubError(
        "service.unavailable",
        "the hub cannot reach its database right now; nothing was changed, try again shortly",
    )


def _http_error(exc: web.HTTPException) -> HubError:
    headers = {k: exc.headers[k] for k in _KEPT_HEADERS if k in exc.headers}
    code = _HTTP_CODES.get(exc.status, "request.malformed" if exc.status < 500 else "internal")
    return HubError(code, exc.reason, headers=headers)


# Facades answer refusals in their own envelope: path prefix -> (refusal) -> response.
FACADE_REFUSALS = web.AppKey("facade_refusals", dict)


def _answer(request: web.Request, exc: Refusal) -> web.Response:
    for prefix, answer in request.app.get(FACADE_REFUSALS, {}).items():
        if request.path.startswith(prefix):
            return answer(exc)
    return refusal_response(exc)


REFUSALS = web.AppKey("refusals", Callable)  # (code) -> None: counts refusals for /metrics
DATABASE_READY = web.AppKey("database_ready", Callable)  # () -> bool


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn every failure into the JSON error shape; never leak a stack trace."""
    count = request.app.get(REFUSALS, lambda code: None)
    try:
        ready = request.app.get(DATABASE_READY)
        if ready is not None and not ready() and request.path not in WITHOUT_DATABASE:
            raise unavailable_error()
        return await handler(request)
    except (HubError, FormatError) as exc:
        count(exc.code)
        return _answer(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _answer(request, _http_error(exc))
    except Exception as exc:
        if unavailable(exc):
            log.warning("database unavailable", extra={"path": request.path, "error": repr(exc)})
            count("service.unavailable")
            return _answer(request, unavailable_error())
        if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
            log.error("storage unavailable", extra={"path": request.path, "error": repr(exc)})
            count("service.unavailable")
            return _answer(
                request,
                HubError(
                    "service.unavailable",
                    "the hub cannot store the package right now (its storage is full or "
                    "failing); nothing was kept, try again later",
                ),
            )
        incident = uuid.uuid4().hex[:12]
        log.exception("internal error", extra={"incident": incident, "path": request.path})
        return _answer(
            request, HubError("internal", f"internal error; incident {incident} is logged")
        )
