"""The OpenAPI 3.1 description of the ``/v1`` API, served at ``/v1/openapi.json``."""

from __future__ import annotations

from functools import cache

__all__ = ["ERROR_CODES", "openapi_document"]

# Every error code a client can receive, with its HTTP status. Tests check that the code
# emits only these.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "auth.missing": (401, "no bearer token"),
    "auth.invalid_token": (401, "unknown or revoked token"),
    "auth.token_expired": (401, "the token has expired; get a new one from /v1/token"),
    "auth.invalid_client": (401, "wrong client_id or client_secret"),
    "auth.unsupported_grant_type": (400, "only client_credentials is supported"),
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
    "service.unavailable": (503, "the database is unreachable right now; retry after Retry-After"),
    "internal": (500, "unexpected failure; an incident id is logged"),
}

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: int) -> dict:
    out = {}
    for status in statuses:
        codes = sorted(c for c, (s, _) in ERROR_CODES.items() if s == status)
        out[str(status)] = {
            "description": "Refused: " + ", ".join(codes),
            "content": {"application/json": {"schema": _ERROR}},
        }
    return out


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


@cache
def openapi_document() -> dict:
    """The document, built once."""
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
                    "summary": "Exchange client credentials for a bearer token (OAuth2)",
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
                        "200": _json({"$ref": "#/components/schemas/Token"}, "A bearer token"),
                        **_errors(400, 401),
                    },
                }
            },
            "/v1/agencies": {
                "get": {
                    "summary": "The agency registry",
                    "parameters": [
                        {"name": n, "in": "query", "schema": {"type": "string"}}
                        for n in ("parent", "level", "under")
                    ]
                    + [
                        {"name": n, "in": "query", "schema": {"type": "integer"}}
                        for n in ("limit", "offset")
                    ],
                    "responses": {
                        "200": _json(
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
                        **_errors(400, 401),
                    },
                }
            },
            "/v1/packages": {
                "post": {
                    "summary": "Submit an edXML document or status package",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/xml": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    "responses": {
                        "202": _json({"$ref": "#/components/schemas/Submission"}, "Accepted"),
                        "200": _json(
                            {"$ref": "#/components/schemas/Submission"},
                            "The same bytes were already accepted: the first submission",
                        ),
                        **_errors(400, 401, 403, 409, 413, 415, 422),
                    },
                }
            },
            "/v1/inbox": {
                "get": {
                    "summary": "Packages waiting for the caller, oldest first",
                    "parameters": [
                        {"name": "after", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Inbox"}, "The inbox"),
                        **_errors(400, 401),
                    },
                }
            },
            "/v1/packages/{id}": {
                "get": {
                    "summary": "The exact bytes of a package (sender and recipients only)",
                    "parameters": [_ID],
                    "responses": {
                        "200": {
                            "description": "The package as received",
                            "content": {"application/xml": {"schema": {"type": "string"}}},
                        },
                        **_errors(401, 404),
                    },
                }
            },
            "/v1/packages/{id}/ack": {
                "post": {
                    "summary": "Confirm the package is safely stored; it leaves the inbox",
                    "parameters": [_ID],
                    "responses": {
                        "200": _json({"type": "object"}, "Acknowledged"),
                        **_errors(401, 404, 409),
                    },
                }
            },
            "/v1/packages/{id}/evidence": {
                "get": {
                    "summary": "Evidence bundle (ASiC-E zip): bytes, statuses, receipts, "
                    "ledger leaves with inclusion proofs, signed head, hub certificates",
                    "parameters": [_ID],
                    "responses": {
                        "200": {
                            "description": "The bundle; check it with `lienthong audit verify`",
                            "content": {"application/vnd.etsi.asic-e+zip": {}},
                        },
                        **_errors(401, 404),
                    },
                }
            },
            "/v1/packages/{id}/receipt": {
                "get": {
                    "summary": "The hub's signed receipt (also returned with the 202)",
                    "parameters": [_ID],
                    "responses": {
                        "200": _json({"type": "object"}, "body, signature (CMS) and claims"),
                        **_errors(401, 404, 503),
                    },
                }
            },
            "/v1/packages/{id}/report": {
                "get": {
                    "summary": "The signature verification report made when the package arrived",
                    "parameters": [_ID],
                    "responses": {
                        "200": _json({"type": "object"}, "lienthong.package-validation-report/1"),
                        **_errors(401, 404),
                    },
                }
            },
            "/v1/ledger/heads": {
                "get": {
                    "summary": "The latest signed tree head, or the one of ?size=N; with "
                    "?consistency_from=M also the consistency proof from size M",
                    "parameters": [
                        {"name": n, "in": "query", "schema": {"type": "integer"}}
                        for n in ("size", "consistency_from")
                    ],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/TreeHead"}, "A signed head"),
                        **_errors(400, 401, 404),
                    },
                },
                "post": {
                    "summary": "Sign a head of the log as it is now",
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/TreeHead"}, "A signed head"),
                        **_errors(401, 404),
                    },
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
                        **_errors(400, 401),
                    },
                }
            },
            "/v1/ledger/proof/inclusion": {
                "get": {
                    "summary": "RFC 9162 inclusion proof of a leaf in the tree of a given size",
                    "parameters": [
                        {"name": n, "in": "query", "required": True, "schema": {"type": "integer"}}
                        for n in ("leaf", "size")
                    ],
                    "responses": {
                        "200": _json({"type": "object"}, "leaf_hash and audit_path (hex)"),
                        **_errors(400, 401),
                    },
                }
            },
            "/v1/ledger/proof/consistency": {
                "get": {
                    "summary": "RFC 9162 consistency proof between two tree sizes",
                    "parameters": [
                        {"name": n, "in": "query", "required": True, "schema": {"type": "integer"}}
                        for n in ("from", "to")
                    ],
                    "responses": {
                        "200": _json({"type": "object"}, "proof (hex)"),
                        **_errors(400, 401),
                    },
                }
            },
            "/v1/packages/{id}/trail": {
                "get": {
                    "summary": "Every recorded event of the package",
                    "parameters": [_ID],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Trail"}, "The trail"),
                        **_errors(401, 404),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
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
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
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
                "Trail": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "recipients": {"type": "array", "items": {"type": "object"}},
                        "events": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
    }
