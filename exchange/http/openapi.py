"""The OpenAPI 3.1 description of the ``/v1`` API, served at ``/v1/openapi.json``."""

from __future__ import annotations

from functools import cache

from exchange.http.errors import ERROR_CODES
from exchange.http.openapi_federation import FEDERATION_PATHS
from exchange.http.openapi_parts import BIG, errors, integer, json_body, text
from exchange.http.push import push_paths

__all__ = ["openapi_document"]


_VSCHAR = "^[ -~]*$"  # RFC 6749 A.1, A.2: visible ASCII and space
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_XML_BODY = {"schema": {"type": "string", "format": "binary"}}


_HEALTH = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string"},
        "database": {"type": "string"},
        "broker": {"type": "string"},
    },
}


_DAY = {"type": "string", "format": "date", "maxLength": 10}
_KPI_OPERATION = {
    "summary": "Timeliness and volume KPIs of the caller's subtree, from the recorded events",
    "parameters": [
        {"name": "from", "in": "query", "schema": _DAY, "description": "first day (ICT)"},
        {"name": "to", "in": "query", "schema": _DAY, "description": "last day, included"},
        {
            "name": "level",
            "in": "query",
            "schema": {"enum": ["central", "province", "district", "commune"]},
        },
        text("under", description="an organ id in the caller's subtree: its whole subtree"),
        text("agency", description="one organ id in the caller's subtree"),
        {
            "name": "structure_at",
            "in": "query",
            "schema": _DAY,
            "description": "group by the registry's levels of that day (default: today)",
        },
    ],
    "responses": {
        "200": json_body(
            {
                "type": "object",
                "required": ["schema", "period", "figures", "by_level", "by_agency", "pending"],
                "properties": {
                    "schema": {"const": "lienthong.kpi-report/1"},
                    "period": {"type": "object"},
                    "as_of": {"type": "string", "format": "date-time"},
                    "scope": {"type": "object"},
                    "figures": {
                        "type": "object",
                        "additionalProperties": {"$ref": "#/components/schemas/KpiFigure"},
                    },
                    "by_level": {"type": "object"},
                    "by_agency": {"type": "array", "items": {"type": "object"}},
                    "charts": {"type": "object"},
                    "pending": {"type": "object"},
                    "structure_at": {"type": "string", "format": "date"},
                },
            },
            "Each figure with its numerator, denominator and the event kinds it reads",
        ),
        **errors(401, 403, 422, 429),
    },
}


@cache
def openapi_document(inbox_max_limit: int = 500) -> dict:
    """The document, built once per inbox limit (the one setting that shows in it), with the
    VDXP and LGSP facades."""
    from exchange.http.facade_openapi import add_facades  # it imports v1, which imports this

    return add_facades(_v1_document(inbox_max_limit))


def _v1_document(inbox_max_limit: int) -> dict:
    package_routes = {
        f"/v1/packages/{{id}}{suffix}": {
            method: {
                "summary": summary,
                "parameters": [_ID],
                "responses": {"200": ok, **errors(401, 404, *extra)},
            }
        }
        for suffix, method, summary, ok, extra in (
            (
                "",
                "get",
                "The exact bytes of a package (sender and recipients only)",
                {
                    "description": "The package as received",
                    "content": {"application/xml": {"schema": {"type": "string"}}},
                },
                (410,),
            ),
            (
                "/ack",
                "post",
                "Confirm the package is safely stored; it leaves the inbox",
                json_body({"type": "object"}, "Acknowledged"),
                (409,),
            ),
            (
                "/evidence",
                "get",
                "Evidence bundle (ASiC-E zip): bytes, statuses, receipts, ledger leaves with "
                "inclusion proofs, signed head, hub certificates",
                {
                    "description": "The bundle; check it with `lienthong audit verify`",
                    "content": {"application/vnd.etsi.asic-e+zip": {}},
                },
                (),
            ),
            (
                "/receipt",
                "get",
                "The hub's signed receipt (also returned with the 202)",
                json_body({"type": "object"}, "body, signature (CMS) and claims"),
                (),
            ),
            (
                "/report",
                "get",
                "The signature verification report made when the package arrived",
                json_body({"type": "object"}, "lienthong.package-validation-report/1"),
                (),
            ),
            (
                "/trail",
                "get",
                "Every recorded event of the package",
                json_body({"$ref": "#/components/schemas/Trail"}, "The trail"),
                (),
            ),
        )
    }
    head = json_body({"$ref": "#/components/schemas/TreeHead"}, "A signed head")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lienthong hub API",
            "version": "1",
            "description": "Exchange of edXML packages (QCVN 102:2016) between state agencies. "
            "Error codes: "
            + "; ".join(f"{c} ({s}): {d}" for c, (s, d) in sorted(ERROR_CODES.items())),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/v1/token": {
                "post": {
                    "summary": "Exchange client credentials for a bearer token (OAuth2); the "
                    "client pair may also come as HTTP Basic",
                    "security": [],
                    "requestBody": {
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {"$ref": "#/components/schemas/TokenRequest"}
                            },
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/TokenRequest"}
                            },
                        }
                    },
                    "responses": {
                        "200": json_body({"$ref": "#/components/schemas/Token"}, "A bearer token"),
                        **errors(401, 413, 415, 429),
                    },
                }
            },
            "/v1/agencies": {
                "get": {
                    "summary": "The agency registry",
                    "parameters": [
                        text("parent"),
                        {
                            "name": "level",
                            "in": "query",
                            "schema": {"enum": ["central", "province", "district", "commune"]},
                        },
                        text("under", description="an organ id: its whole subtree"),
                        text("at", format="date", description="the registry as of this day"),
                        integer("limit", 1, 10_000),
                        integer("offset", 0, 10**9),
                    ],
                    "responses": {
                        "200": json_body(
                            {
                                "type": "object",
                                "properties": {
                                    "items": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Agency"},
                                    }
                                },
                            },
                            "Agencies ordered by code",
                        ),
                        **errors(401, 422),
                    },
                }
            },
            "/v1/agencies/{code}": {
                "get": {
                    "summary": "One agency as of a day (default today), with every version",
                    "parameters": [
                        {
                            "name": "code",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        text("at", format="date", description="YYYY-MM-DD"),
                    ],
                    "responses": {
                        "200": json_body({"$ref": "#/components/schemas/AgencyAsOf"}, "The agency"),
                        **errors(401, 404, 422),
                    },
                }
            },
            "/v1/packages": {
                "post": {
                    "summary": "Submit an edXML document or status package (Content-Encoding "
                    "gzip or deflate accepted; limits apply to the decoded bytes)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/xml": _XML_BODY,
                            "text/xml": _XML_BODY,
                            "application/edxml+xml": _XML_BODY,
                        },
                    },
                    "responses": {
                        "202": json_body({"$ref": "#/components/schemas/Submission"}, "Accepted"),
                        "200": json_body(
                            {"$ref": "#/components/schemas/Submission"},
                            "The same bytes were already accepted: the first submission",
                        ),
                        **errors(401, 403, 409, 413, 415, 422),
                    },
                }
            },
            "/v1/inbox": {
                "get": {
                    "summary": "Packages waiting for the caller, oldest first",
                    "parameters": [
                        integer("after", 0, BIG, doc="the `next` cursor of the previous page"),
                        integer("limit", 1, inbox_max_limit),
                    ],
                    "responses": {
                        "200": json_body({"$ref": "#/components/schemas/Inbox"}, "The inbox"),
                        **errors(401),
                    },
                }
            },
            **package_routes,
            "/v1/documents": {
                "get": {
                    "summary": "A document the caller sent or receives, with every package "
                    "about it (versions, revocations, updates, replacements, statuses) and each "
                    "copy's state, last status and disposition",
                    "parameters": [{**text("document_id", minLength=1), "required": True}],
                    "responses": {
                        "200": json_body({"$ref": "#/components/schemas/Document"}, "The document"),
                        **errors(401),
                    },
                }
            },
            "/v1/ledger/heads": {
                "get": {
                    "summary": "The latest signed tree head, or the one of ?size=N; with "
                    "?consistency_from=M also the consistency proof from size M",
                    "parameters": [
                        integer("size", 0, BIG, doc="0 or absent: the latest head"),
                        integer("consistency_from", 0, BIG, doc="0 or absent: no proof"),
                    ],
                    "responses": {"200": head, **errors(401, 404)},
                },
                "post": {
                    "summary": "Sign a head of the log as it is now (rate-limited per agency)",
                    "responses": {"200": head, **errors(401, 404, 429)},
                },
            },
            "/v1/ledger/certificate": {
                "get": {
                    "summary": "The certificate chain (PEM) of the key the hub signs heads and "
                    "receipts with (its key id in X-Key-Id). With ?all=true, every key the hub has "
                    "used, oldest first, as JSON: {current, keys: [{key_id, subject, current, "
                    "first_used, last_used, chain}]}; a key id is the SHA-256 (hex) of the signer "
                    'certificate, as named by signed heads ("key") and receipts (key_id)',
                    "parameters": [
                        {"name": "all", "in": "query", "schema": {"enum": ["true", "false"]}}
                    ],
                    "responses": {
                        "200": {
                            "description": "PEM chain, or with ?all=true the JSON listing",
                            "content": {
                                "application/pem-certificate-chain": {},
                                "application/json": {"schema": {"type": "object"}},
                            },
                        },
                        **errors(400, 401),
                    },
                }
            },
            "/v1/ledger/proof/inclusion": {
                "get": {
                    "summary": "RFC 9162 inclusion proof of a leaf in the tree of a given size",
                    "parameters": [
                        integer("leaf", 0, BIG, required=True),
                        integer("size", 1, BIG, required=True),
                    ],
                    "responses": {
                        "200": json_body({"type": "object"}, "leaf_hash and audit_path (hex)"),
                        **errors(401),
                    },
                }
            },
            "/v1/ledger/proof/consistency": {
                "get": {
                    "summary": "RFC 9162 consistency proof between two tree sizes",
                    "parameters": [
                        integer("from", 1, BIG, required=True),
                        integer("to", 1, BIG, required=True),
                    ],
                    "responses": {
                        "200": json_body({"type": "object"}, "proof (hex)"),
                        **errors(401),
                    },
                }
            },
            **FEDERATION_PATHS,
            "/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": json_body({"type": "object"}, "OpenAPI 3.1")},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness: the process answers, whatever its dependencies",
                    "security": [],
                    "responses": {"200": json_body(_HEALTH, "alive")},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: the database and the broker are both usable",
                    "security": [],
                    "responses": {
                        "200": json_body(_HEALTH, "ready"),
                        "503": json_body(_HEALTH, "not ready; each dependency says why"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (a bearer token when metrics_token is set)",
                    "security": [{}, {"bearer": []}],
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **errors(401),
                    },
                }
            },
            **push_paths(errors, json_body),
            "/v1/reports/kpi": {"get": _KPI_OPERATION},
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "KpiFigure": {
                    "type": "object",
                    "required": ["name", "value", "numerator", "denominator", "unit", "events"],
                    "properties": {
                        "name": {"type": "string"},
                        "value": {"type": ["number", "null"]},
                        "numerator": {"type": ["integer", "null"]},
                        "denominator": {"type": ["integer", "null"]},
                        "unit": {"enum": ["count", "ratio", "seconds"]},
                        "events": {"type": "array", "items": {"type": "string"}},
                        "how": {"type": "string"},
                        "detail": {"type": "object"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string", "enum": sorted(ERROR_CODES)},
                                "message": {"type": "string"},
                                "field": {"type": "string"},
                                "line": {"type": "integer"},
                            },
                        }
                    },
                },
                "TokenRequest": {
                    "type": "object",
                    "required": ["client_id", "client_secret"],
                    "properties": {
                        "grant_type": {"const": "client_credentials"},
                        "client_id": {"type": "string", "maxLength": 128, "pattern": _VSCHAR},
                        "client_secret": {"type": "string", "maxLength": 512, "pattern": _VSCHAR},
                    },
                },
                "Token": {
                    "type": "object",
                    "properties": {
                        "access_token": {"type": "string"},
                        "token_type": {"const": "Bearer"},
                        "expires_in": {"type": "integer"},
                    },
                },
                "Agency": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "name": {"type": "string"},
                        "parent": {"type": ["string", "null"]},
                        "level": {"enum": ["central", "province", "district", "commune"]},
                        "valid_from": {"type": ["string", "null"], "format": "date"},
                        "valid_to": {"type": ["string", "null"], "format": "date"},
                        "successor": {"type": ["string", "null"]},
                        "routing_key": {"type": "string"},
                        "successors": {"type": "array", "items": {"type": "string"}},
                        "route_to": {"type": "array", "items": {"type": "string"}},
                        "effective_from": {"type": ["string", "null"], "format": "date"},
                        "version": {"type": ["integer", "null"]},
                    },
                },
                "AgencyAsOf": {
                    "type": "object",
                    "properties": {
                        "at": {"type": "string", "format": "date"},
                        "agency": {"$ref": "#/components/schemas/Agency"},
                        "active": {"type": "boolean"},
                        "successors_today": {"type": "array", "items": {"type": "string"}},
                        "versions": {
                            "type": "array",
                            "items": {
                                "allOf": [{"$ref": "#/components/schemas/Agency"}],
                                "properties": {
                                    "recorded_by": {"type": "string"},
                                    "recorded_at": {"type": "string", "format": "date-time"},
                                    "reason": {"type": ["string", "null"]},
                                },
                            },
                        },
                    },
                },
                "Submission": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "kind": {"enum": ["edoc", "status"]},
                        "document_id": {"type": ["string", "null"]},
                        "digest": {"type": "string", "description": "SHA-256 of the body, hex"},
                        "digest_algorithm": {"const": "sha256"},
                        "recipients": {"type": "array", "items": {"type": "string"}},
                        "duplicate": {"type": "boolean"},
                        "redirected_from": {
                            "type": "object",
                            "description": "recipient -> the retired code the sender addressed",
                            "additionalProperties": {"type": "string"},
                        },
                    },
                },
                "TreeHead": {
                    "type": "object",
                    "properties": {
                        "tree_size": {"type": "integer"},
                        "root_hash": {"type": "string"},
                        "signed_at": {"type": "string", "format": "date-time"},
                        "head": {"type": "string", "description": "the exact signed JSON"},
                        "signature": {"type": "string", "description": "CMS, DER, base64"},
                        "key_id": {
                            "type": ["string", "null"],
                            "description": "SHA-256 of the signer certificate, hex; see "
                            "/v1/ledger/certificate",
                        },
                    },
                },
                "Inbox": {
                    "type": "object",
                    "properties": {
                        "items": {"type": "array", "items": {"type": "object"}},
                        "next": {"type": ["string", "null"]},
                    },
                },
                "Document": {
                    "type": "object",
                    "required": ["document_id", "packages"],
                    "properties": {
                        "document_id": {"type": "string"},
                        "packages": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "Trail": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "recipients": {
                            "type": "array",
                            "description": "each visible copy: state, status_code, "
                            "status_received, progress, disposition, awaiting_answer, answer, "
                            "superseded_by, times",
                            "items": {"type": "object"},
                        },
                        "links": {
                            "type": "array",
                            "description": "revokes, updates, replaces, revoked_by, "
                            "updated_by, replaced_by",
                            "items": {"type": "object"},
                        },
                        "events": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
    }
