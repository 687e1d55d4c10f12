"""Push delivery over HTTP: the receipts of a package, and the operators' ``/v1/admin`` routes
(list pushes, see one with its attempts, redeliver), behind ``Bearer <admin_token>``.

:func:`push_routes` is called by :mod:`exchange.http.v1` with its app key and its caller
check, so this module does not import it back; :func:`push_paths` is the matching part of the
OpenAPI document.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from exchange.errors import HubError
from exchange.push import STATES
from schemas import OrganId

__all__ = ["push_paths", "push_routes"]

_ADMIN_LIMIT = 1000


def _admin(request: web.Request, hub) -> None:
    """Only an operator: ``Authorization: Bearer <admin_token>``, compared in constant time."""
    expected = hub.settings.admin_token
    if not expected:
        raise HubError("admin.disabled", "the admin API is off: set admin_token to use it")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise HubError("auth.missing", "send Authorization: Bearer <admin_token>")
    digest = hashlib.sha256(given.strip().encode("utf-8", "surrogateescape")).digest()
    if not hmac.compare_digest(digest, hashlib.sha256(expected.encode()).digest()):
        raise HubError("auth.invalid_token", "wrong admin token")


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= _ADMIN_LIMIT:
        raise HubError(
            "request.invalid_parameter",
            f"limit must be between 1 and {_ADMIN_LIMIT}",
            field="limit",
        )
    return int(raw)


def _agency(request: web.Request) -> str | None:
    raw = request.query.get("agency")
    return None if raw is None else str(OrganId.parse(raw, field="agency"))


def push_routes(hub_key: web.AppKey, caller: Callable[[web.Request], Awaitable]) -> list:
    """(method, path, handler) of the receipts route and the admin routes."""

    async def receipts(request: web.Request) -> web.Response:
        """GET /v1/packages/{id}/receipts: the acceptance receipt and each delivery receipt
        the caller may see (the sender: every recipient's; a recipient: its own)."""
        hub = request.app[hub_key]
        who = await caller(request)
        row = await hub.deliveries.locate(who, request.match_info["id"])
        acceptance = await hub.receipts.issue(row["id"])
        only = None if row["sender"] == who.organ_id else who.organ_id
        items = [{"type": "acceptance", "recipient": None, "receipt": acceptance}]
        for taken in await hub.delivery_receipts.for_package(row["id"], only):
            items.append({"type": "delivery", **taken})
        return web.json_response({"package_id": str(row["id"]), "items": items})

    async def list_deliveries(request: web.Request) -> web.Response:
        """GET /v1/admin/deliveries?state=&agency=&limit="""
        hub = request.app[hub_key]
        agency, limit = _agency(request), _limit(request)  # checked first, like every route
        _admin(request, hub)
        items = await hub.push_admin.list(request.query.get("state"), agency, limit)
        return web.json_response({"items": items})

    async def one_delivery(request: web.Request) -> web.Response:
        """GET /v1/admin/deliveries/{id}: the push and every attempt."""
        hub = request.app[hub_key]
        _admin(request, hub)
        push = await hub.push_admin.get(request.match_info["id"])
        push["attempt_log"] = await hub.push_admin.attempts(request.match_info["id"])
        return web.json_response(push)

    async def retry_one(request: web.Request) -> web.Response:
        """POST /v1/admin/deliveries/{id}/retry"""
        hub = request.app[hub_key]
        _admin(request, hub)
        retried = await hub.push_admin.retry(request.match_info["id"])
        hub.pusher.kick()
        return web.json_response({"retried": retried})

    async def retry_agency(request: web.Request) -> web.Response:
        """POST /v1/admin/agencies/{agency}/deliveries/retry: every failed push of an agency."""
        hub = request.app[hub_key]
        agency = str(OrganId.parse(request.match_info["agency"], field="agency"))
        _admin(request, hub)
        retried = await hub.push_admin.retry(organ_id=agency)
        hub.pusher.kick()
        return web.json_response({"retried": retried})

    return [
        ("GET", "/v1/packages/{id}/receipts", receipts),
        ("GET", "/v1/admin/deliveries", list_deliveries),
        ("POST", "/v1/admin/agencies/{agency}/deliveries/retry", retry_agency),
        ("GET", "/v1/admin/deliveries/{id}", one_delivery),
        ("POST", "/v1/admin/deliveries/{id}/retry", retry_one),
    ]


def push_paths(errors: Callable[..., dict], json_body: Callable[[dict, str], dict]) -> dict:
    """The OpenAPI paths of :func:`push_routes` (``errors`` and ``json_body`` build answers
    the way the rest of the document does)."""
    push_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }
    admin = [{"bearer": []}]
    agency = {
        "name": "agency",
        "in": "query",
        "schema": {"type": "string", "maxLength": 64},
        "description": "an organ id",
    }
    retried = json_body(
        {
            "type": "object",
            "properties": {"retried": {"type": "array", "items": {"type": "string"}}},
        },
        "The ids of the pushes due again now",
    )
    return {
        "/v1/packages/{id}/receipts": {
            "get": {
                "summary": "The hub's acceptance receipt and every delivery receipt the caller "
                "may see (signed when a recipient's system took the package: 2xx on push, or ack)",
                "parameters": [push_id],
                "responses": {
                    "200": json_body({"type": "object"}, "items: type, recipient, receipt"),
                    **errors(401, 404),
                },
            }
        },
        "/v1/admin/deliveries": {
            "get": {
                "summary": "Operators: push deliveries, newest first (Bearer admin_token)",
                "security": admin,
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"enum": list(STATES)}},
                    agency,
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": _ADMIN_LIMIT},
                    },
                ],
                "responses": {
                    "200": json_body({"type": "object"}, "items"),
                    **errors(401, 403, 422),
                },
            }
        },
        "/v1/admin/agencies/{agency}/deliveries/retry": {
            "post": {
                "summary": "Operators: every failed push of an agency, attempted again now",
                "security": admin,
                "parameters": [{**agency, "in": "path", "required": True}],
                "responses": {"200": retried, **errors(401, 403, 422)},
            }
        },
        "/v1/admin/deliveries/{id}": {
            "get": {
                "summary": "Operators: one push delivery and every attempt",
                "security": admin,
                "parameters": [push_id],
                "responses": {
                    "200": json_body({"type": "object"}, "the push and attempt_log"),
                    **errors(401, 403, 404),
                },
            }
        },
        "/v1/admin/deliveries/{id}/retry": {
            "post": {
                "summary": "Operators: attempt a failed push again now (a fresh time to live)",
                "security": admin,
                "parameters": [push_id],
                "responses": {"200": retried, **errors(401, 403, 404, 409)},
            }
        },
    }
