"""What hubs send each other over the federated exchange: hand-overs and notes (JSON).

A *hand-over* is a claim check: the digest of a package the sending hub holds, the agency it
is for, who sent it, and the hops it made so far (hub id and time each). The receiving hub
fetches the bytes from the sending hub over mutual TLS and checks them against the digest.

A *note* travels the other way, hop by hop towards the sender's hub: what a hub further on
did with a hand-over (``accepted`` with its signed receipt, ``refused`` with a
status-02-style reason, and the recipient's ``delivered``, ``fetched``, ``acknowledged``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

from exchange.errors import HubError

__all__ = ["NOTE_KINDS", "Handover", "Note", "parse_message"]

NOTE_KINDS = ("accepted", "refused", "delivered", "fetched", "acknowledged")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_MAX_HOPS = 16


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def check_hub_id(value: object, field_name: str = "hub_id") -> str:
    """A hub id: letters, digits, ``_.-``, at most 64 characters."""
    if not isinstance(value, str) or not _HUB_ID.match(value):
        raise HubError("federation.bad_message", f"{field_name} is not a hub id", field=field_name)
    return value


@dataclass(frozen=True)
class Handover:
    """A claim check for one package, handed from ``from_hub`` for ``recipient``."""

    digest: bytes
    sender: str
    recipient: str
    from_hub: str
    hops: tuple[dict, ...] = field(default_factory=tuple)  # ({"hub", "at"}, ...), oldest first

    def hubs(self) -> list[str]:
        return [hop["hub"] for hop in self.hops]

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "type": "handover",
                "v": 1,
                "digest": self.digest.hex(),
                "sender": self.sender,
                "recipient": self.recipient,
                "from_hub": self.from_hub,
                "hops": list(self.hops),
            },
            sort_keys=True,
        ).encode()


@dataclass(frozen=True)
class Note:
    """What ``hub_id`` did (``kind``) about the package with ``digest``, sent by ``from_hub``."""

    digest: bytes
    kind: str
    hub_id: str
    from_hub: str
    organ_id: str = ""
    at: str = field(default_factory=now_iso)
    detail: dict = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "type": "note",
                "v": 1,
                "digest": self.digest.hex(),
                "kind": self.kind,
                "hub": self.hub_id,
                "from_hub": self.from_hub,
                "organ_id": self.organ_id,
                "at": self.at,
                "detail": self.detail,
            },
            sort_keys=True,
        ).encode()


def _digest(raw: dict) -> bytes:
    value = raw.get("digest")
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise HubError("federation.bad_message", "digest is not a SHA-256 in hex", field="digest")
    return bytes.fromhex(value)


def _text(raw: dict, name: str, limit: int = 64) -> str:
    value = raw.get(name, "")
    if not isinstance(value, str) or len(value) > limit:
        raise HubError("federation.bad_message", f"{name} is not a short text", field=name)
    return value


def parse_message(body: bytes) -> Handover | Note:
    """A hand-over or a note from its JSON; anything else is ``federation.bad_message``."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HubError("federation.bad_message", "the message is not JSON") from None
    if not isinstance(raw, dict) or raw.get("v") != 1:
        raise HubError("federation.bad_message", "not a version-1 federation message")
    if raw.get("type") == "handover":
        hops = raw.get("hops")
        if not isinstance(hops, list) or len(hops) > _MAX_HOPS:
            raise HubError("federation.bad_message", "hops is not a short list", field="hops")
        clean = tuple(
            {"hub": check_hub_id(h.get("hub"), "hops.hub"), "at": _text(h, "at")}
            for h in hops
            if isinstance(h, dict)
        )
        if len(clean) != len(hops):
            raise HubError("federation.bad_message", "a hop is not an object", field="hops")
        return Handover(
            _digest(raw),
            _text(raw, "sender"),
            _text(raw, "recipient"),
            check_hub_id(raw.get("from_hub"), "from_hub"),
            clean,
        )
    if raw.get("type") == "note":
        kind = raw.get("kind")
        if kind not in NOTE_KINDS:
            raise HubError("federation.bad_message", "unknown note kind", field="kind")
        detail = raw.get("detail", {})
        if not isinstance(detail, dict) or len(json.dumps(detail)) > 64 * 1024:
            raise HubError("federation.bad_message", "detail is not a small object", field="detail")
        return Note(
            _digest(raw),
            kind,
            check_hub_id(raw.get("hub"), "hub"),
            check_hub_id(raw.get("from_hub"), "from_hub"),
            _text(raw, "organ_id"),
            _text(raw, "at"),
            detail,
        )
    raise HubError("federation.bad_message", "neither a hand-over nor a note", field="type")
