"""Federation messages: what a hub accepts from the inbound queue, and the link check."""

from __future__ import annotations

import json

import pytest

from exchange.errors import HubError
from exchange.federation.evidence import allowed
from exchange.federation.intake import received_from
from exchange.federation.messages import Handover, Note, parse_message

DIGEST = "ab" * 32


def _handover(**changes) -> bytes:
    raw = {
        "type": "handover",
        "v": 1,
        "digest": DIGEST,
        "sender": "000.05.10.H49",
        "recipient": "000.00.10.H41",
        "from_hub": "H49",
        "hops": [{"hub": "H49", "at": "2026-12-01T00:00:00+00:00"}],
    }
    return json.dumps({**raw, **changes}).encode()


def test_a_hand_over_and_a_note_round_trip():
    parsed = parse_message(_handover())
    assert isinstance(parsed, Handover) and parsed.hubs() == ["H49"]
    assert parse_message(parsed.to_bytes()) == parsed
    note = Note(bytes.fromhex(DIGEST), "accepted", "H41", "H41", "", "t", {"recipients": []})
    assert parse_message(note.to_bytes()) == note


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", None),
        (b"[1]", None),
        (json.dumps({"type": "handover", "v": 2}).encode(), None),
        (_handover(digest="AB" * 32), "digest"),
        (_handover(digest="ab" * 31), "digest"),
        (_handover(from_hub="../etc"), "from_hub"),
        (_handover(from_hub=""), "from_hub"),
        (_handover(hops="H49"), "hops"),
        (_handover(hops=[{"hub": "H" * 65, "at": "t"}]), "hops.hub"),
        (_handover(hops=[{"hub": "H49", "at": "t"}] * 17), "hops"),
        (_handover(hops=["H49"]), "hops"),
        (_handover(sender="x" * 65), "sender"),
        (_handover(type="other"), "type"),
        (json.dumps({"type": "note", "v": 1, "digest": DIGEST, "kind": "hacked"}).encode(), "kind"),
    ],
)
def test_malformed_messages_are_bad_message(body, field):
    with pytest.raises(HubError) as refused:
        parse_message(body)
    assert refused.value.code == "federation.bad_message"
    assert refused.value.field == field


def test_only_the_peers_link_counts_as_the_peer():
    peer = "amqp://guest:secret@127.0.0.1:5672/lt-H49"
    link = [{"uri": b"amqp://127.0.0.1:5672/lt-H49", "exchange": b"lienthong.federation.out"}]
    assert received_from(link, peer)
    assert not received_from(None, peer)  # published straight into our exchange
    assert not received_from([], peer)
    assert not received_from([{"uri": "amqp://127.0.0.1:5672/lt-H41"}], peer)
    assert not received_from([{"uri": "amqp://10.0.0.9:5672/lt-H49"}], peer)
    assert not received_from(["amqp://127.0.0.1:5672/lt-H49"], peer)


def test_bundle_member_names_of_federation_evidence():
    assert allowed("federation/receipts/H41.json") and allowed("federation/receipts/H41.p7s")
    assert allowed("federation/witnessed/national.json")
    assert not allowed("federation/receipts/../x.json")
    assert not allowed("federation/other/H41.json")
    assert not allowed("federation/witnessed/H41.p7s")
