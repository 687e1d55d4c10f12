"""The hub's signing keys over time: which key signed a head or a receipt, and every key used.

A key is named by its **key id**, the SHA-256 (hex) of its signer certificate in DER. Signed tree
heads carry it inside the signed JSON (``"key"``), and heads and receipts store it in a column, so
a key can be rotated (a new PKCS#12 file or token key, or a lost development key replaced) while
everything signed before stays verifiable: ``hub_keys`` keeps the certificate chain of every key
the hub has signed with, with the first and last time it was seen in use. It is only a listing:
whether a listed key is *trusted* is for the auditor's anchors to say, never for the database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from exchange.store.ledger import PostgresLedger
from signing import KeyHandle

__all__ = [
    "HubKey",
    "KeyInfo",
    "chain_of",
    "describe",
    "hub_key",
    "key_id",
    "key_listing",
    "pem_chain",
]


def key_id(cert: asn1_x509.Certificate) -> str:
    """The key id: SHA-256 of the signer certificate (DER), hex."""
    return hashlib.sha256(cert.dump()).hexdigest()


def chain_of(key: KeyHandle) -> list[asn1_x509.Certificate]:
    """The key's certificate first, then the other certificates that came with it, once each."""
    seen: set[bytes] = set()
    chain = []
    for cert in [key.cert, *key.chain]:
        if cert is not None and cert.dump() not in seen:
            seen.add(cert.dump())
            chain.append(cert)
    return chain


def pem_chain(certs: Iterable[asn1_x509.Certificate]) -> str:
    """Certificates as concatenated PEM blocks."""
    return "".join(pem.armor("CERTIFICATE", c.dump()).decode() for c in certs)


@dataclass(frozen=True)
class HubKey:
    """One key the hub has signed with."""

    key_id: str
    subject: str
    chain_pem: str
    first_used: dt.datetime
    last_used: dt.datetime

    def to_json(self, current: str | None = None) -> dict:
        return {
            "key_id": self.key_id,
            "subject": self.subject,
            "current": self.key_id == current,
            "first_used": self.first_used.isoformat(),
            "last_used": self.last_used.isoformat(),
            "chain": self.chain_pem,
        }


@dataclass(frozen=True)
class KeyInfo:
    """What the ledger lists of a key: its id, the subject of its certificate, its chain."""

    key_id: str
    subject: str
    chain_pem: str


def describe(key: KeyHandle) -> KeyInfo:
    """The listing of the hub's key."""
    return KeyInfo(key_id(key.cert), key.cert.subject.human_friendly, pem_chain(chain_of(key)))


def hub_key(row) -> HubKey:
    return HubKey(row["key_id"], row["subject"], row["chain"], row["first_used"], row["last_used"])


async def key_listing(store: PostgresLedger, current: KeyHandle) -> dict:
    """Every key the hub has used, as ``GET /v1/ledger/certificate?all=true`` serves them."""
    now = key_id(current.cert)
    keys = [hub_key(r) for r in await store.keys()]
    if now not in {k.key_id for k in keys}:  # the sequencer records it at start; not yet, here
        await store.record_key(describe(current))
        keys = [hub_key(r) for r in await store.keys()]
    return {"current": now, "keys": [k.to_json(now) for k in keys]}
