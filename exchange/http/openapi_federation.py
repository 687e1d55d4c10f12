"""The OpenAPI paths of the routes peer hubs call (exchange/http/federation.py) and of the
witness signatures."""

from __future__ import annotations

from exchange.http.openapi_parts import BIG, errors, integer, json_body, text

__all__ = ["FEDERATION_PATHS"]


def _peer_route(summary: str, ok: dict, *parameters: dict) -> dict:
    """A route for peer hubs: authenticated by the hub certificate of the connection."""
    return {
        "get": {
            "summary": summary + " (peer hubs, mutual TLS)",
            "security": [],
            "parameters": list(parameters),
            "responses": {"200": ok, **errors(403, 404)},
        }
    }


FEDERATION_PATHS = {
    "/v1/federation/packages/{digest}": _peer_route(
        "The bytes of a package handed over, by SHA-256",
        {
            "description": "The package",
            "content": {"application/xml": {"schema": {"type": "string"}}},
        },
        {"name": "digest", "in": "path", "required": True, "schema": {"type": "string"}},
    ),
    "/v1/federation/head": _peer_route(
        "The latest signed tree head, with a consistency proof from an older size",
        json_body({"type": "object"}, "head (and proof)"),
        integer("consistency_from", 0, BIG),
    ),
    "/v1/federation/directory": _peer_route(
        "Every agency this hub knows, with its home hub",
        json_body({"type": "object"}, "directory"),
    ),
    "/v1/ledger/witnesses": {
        "get": {
            "summary": "This hub's countersignatures of its peers' tree heads",
            "parameters": [integer("limit", 1, 1000), text("peer")],
            "responses": {
                "200": json_body({"type": "object"}, "witness signatures"),
                **errors(401),
            },
        }
    },
}
