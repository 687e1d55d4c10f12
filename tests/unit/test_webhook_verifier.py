"""The DMS-side verifier (adapters/webhook.py) against the hub's signer (exchange/push): what
the hub signs verifies; anything changed, late, replayed or unsigned does not."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest

from adapters.webhook import WebhookError, WebhookVerifier
from exchange.push.contract import new_secret, push_headers, secret_key, signature

BODY = b"<edXML>exact bytes</edXML>"
PACKAGE = "3f2b8c1e-0000-4000-8000-000000000001"


def signed(secret: str, body: bytes = BODY, at: int | None = None, wid: str = "w-1") -> dict:
    stamp = int(time.time()) if at is None else at
    mac = signature(secret_key(secret), wid, stamp, body)
    return push_headers(wid, stamp, mac, hashlib.sha256(body).digest(), PACKAGE, "edoc", 1)


def test_what_the_hub_signs_verifies():
    secret = new_secret()
    delivery = WebhookVerifier(secret).verify(signed(secret), BODY)
    assert (delivery.id, delivery.package_id, delivery.kind) == ("w-1", PACKAGE, "edoc")
    assert delivery.body == BODY and delivery.digest == hashlib.sha256(BODY).hexdigest()


def test_headers_are_case_insensitive_and_rotation_accepts_either_secret():
    old, new = new_secret(), new_secret()
    headers = {k.upper(): v for k, v in signed(old).items()}
    assert WebhookVerifier([new, old]).verify(headers, BODY).id == "w-1"


@pytest.mark.parametrize(
    "change, status, words",
    [
        (lambda h, b: (h, b + b" "), 401, "does not match"),
        (lambda h, b: ({**h, "webhook-id": "w-2"}, b), 401, "does not match"),
        (lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b), 401, "does not match"),
        (
            lambda h, b: ({**h, "webhook-signature": "v2," + h["webhook-signature"][3:]}, b),
            401,
            "does not match",
        ),
        (
            lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
            400,
            "missing",
        ),
        (lambda h, b: ({**h, "webhook-timestamp": "soon"}, b), 400, "Unix seconds"),
        (lambda h, b: ({**h, "webhook-id": "x" * 300}, b), 400, "at most 256"),
        (
            lambda h, b: (
                {**h, "Repr-Digest": "sha-256=:" + base64.b64encode(b"0" * 32).decode() + ":"},
                b,
            ),
            400,
            "Repr-Digest",
        ),
    ],
)
def test_changed_or_incomplete_requests_are_refused(change, status, words):
    secret = new_secret()
    headers, body = change(signed(secret), BODY)
    with pytest.raises(WebhookError) as refused:
        WebhookVerifier(secret).verify(headers, body)
    assert refused.value.status == status and words in str(refused.value)


def test_the_wrong_secret_is_refused():
    with pytest.raises(WebhookError) as refused:
        WebhookVerifier(new_secret()).verify(signed(new_secret()), BODY)
    assert refused.value.status == 401


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_timestamp_outside_the_tolerance_is_refused(skew):
    secret = new_secret()
    headers = signed(secret, at=int(time.time()) + skew)
    with pytest.raises(WebhookError) as refused:
        WebhookVerifier(secret, tolerance_seconds=300).verify(headers, BODY)
    assert "tolerance 300 s" in str(refused.value)


def test_ids_taken_are_recognised_and_the_oldest_forgotten():
    verifier = WebhookVerifier(new_secret(), remember_at_most=2)
    for wid in ("a", "b", "c"):
        verifier.remember(wid)
    assert not verifier.seen("a") and verifier.seen("b") and verifier.seen("c")


def test_a_secret_that_is_not_whsec_base64_is_refused():
    with pytest.raises(ValueError):
        WebhookVerifier("whsec_***")
    with pytest.raises(ValueError):
        WebhookVerifier([])
