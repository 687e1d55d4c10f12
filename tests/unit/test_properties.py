"""Properties that must hold for every input, not only for the examples: organ ids, the chunked
base64 decoder, the Merkle tree and the signature policy (Hypothesis)."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange import merkle
from exchange.errors import HubError
from exchange.policy import decide
from exchange.signers import SignerVerdict
from schemas import OrganId, OrganIdError
from schemas.encoded import Base64Error, decode_base64
from signing.validation.report import AttachmentReport, PackageReport, XmlSignatureReport
from tests.unit.test_merkle import naive_mth

pytestmark = pytest.mark.unit

# ----- organ ids --------------------------------------------------------------------------

segment = st.text("0123456789", min_size=1, max_size=4)
top = st.builds(
    lambda letter, digits: letter + digits,
    st.sampled_from("GHKABZ"),
    st.text("0123456789", min_size=2, max_size=2),
)
organ_like = st.builds(lambda lower, t: ".".join([*lower, t]), st.lists(segment, max_size=3), top)


@given(st.one_of(organ_like, st.text(max_size=40)))
def test_an_organ_id_parses_to_a_fixed_point_or_is_refused_as_such(raw):
    try:
        oid = OrganId.parse(raw)
    except OrganIdError as exc:  # never any other exception, and always a ValueError too
        assert isinstance(exc, ValueError) and exc.code == "organ_id.invalid"
        return
    again = OrganId.parse(str(oid))
    assert again == oid and str(again) == str(oid)
    assert 1 <= oid.depth <= 4
    assert oid.routing_key.split(".") == list(reversed(oid.segments))
    chain = oid.ancestors()  # levels that are zero are skipped: 001.00.10.H47 → 000.00.10.H47
    depths = [oid.depth, *(a.depth for a in chain)]
    assert depths == sorted(set(depths), reverse=True) and depths[-1] == 1
    assert all(a.top == oid.top for a in chain)
    key = oid.routing_key
    assert key == oid.subtree_prefix or key.startswith(oid.subtree_prefix + ".")


@given(organ_like)
def test_the_parent_is_higher_up_in_the_same_subtree(raw):
    oid = OrganId.parse(raw)
    if oid.parent is not None:
        assert oid.parent.depth < oid.depth
        assert oid.routing_key.startswith(oid.parent.subtree_prefix + ".")


# ----- strict chunked base64 --------------------------------------------------------------

b64ish = st.text(
    alphabet=st.sampled_from(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/= \n")),
    max_size=64,
)


def _strict(text: str) -> bytes | None:
    """The whole text, whitespace removed, decoded at once in strict mode (RFC 4648: padding
    only at the end, none in excess)."""
    whole = "".join(text.split()).encode()
    if len(whole) % 4:  # Python 3.11's strict mode still lets "AAAAAAAA=" through
        return None
    try:
        return binascii.a2b_base64(whole, strict_mode=True)
    except binascii.Error:
        return None


def _validate(text: str) -> bytes | None:
    """base64.b64decode(validate=True): the alphabet is checked, excess padding tolerated."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error:
        return None


@settings(max_examples=400)
@given(st.one_of(b64ish, st.binary(max_size=48).map(lambda b: base64.b64encode(b).decode())),
       st.integers(1, 9))  # fmt: skip
def test_the_chunked_decoder_is_strict_base64_whatever_the_chunks(text, chunk):
    """In chunks of any size it decides as one strict decode of the whole text would, and
    whatever it accepts, b64decode(validate=True) reads the same way."""
    try:
        got = b"".join(decode_base64(text, chunk=chunk))
    except Base64Error:
        got = None
    assert got == _strict(text), (text, chunk)
    if got is not None:
        assert got == _validate(text)


@given(st.binary(max_size=200), st.integers(1, 50))
def test_any_bytes_round_trip_whatever_the_line_breaks_and_chunks(data, width):
    encoded = base64.b64encode(data).decode()
    wrapped = "\n".join(encoded[i : i + width] for i in range(0, len(encoded), width))
    assert b"".join(decode_base64(wrapped, chunk=width + 3)) == data


# ----- the Merkle tree --------------------------------------------------------------------


def _reader(leaves: list[bytes]):
    """A node reader over a fully stored tree, as the ledger stores perfect subtrees."""
    nodes: dict[tuple[int, int], bytes] = {}
    level = [merkle.leaf_hash(leaf) for leaf in leaves]
    height = 0
    while level:
        for index, value in enumerate(level):
            nodes[(height, index)] = value
        level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        height += 1
    return lambda lvl, idx: nodes[(lvl, idx)]


@settings(max_examples=60)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=40), st.data())
def test_proofs_verify_against_the_rfc_root(leaves, data):
    node = _reader(leaves)
    size = len(leaves)
    root = merkle.root_hash(size, node)
    assert root == naive_mth(leaves)
    index = data.draw(st.integers(0, size - 1))
    path = merkle.inclusion_proof(index, size, node)
    merkle.verify_inclusion(leaves[index], index, size, path, root)
    old = data.draw(st.integers(1, size))
    proof = merkle.consistency_proof(old, size, node)
    merkle.verify_consistency(old, size, naive_mth(leaves[:old]), root, proof)
    if size > 1:  # another leaf at that index is not proven
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaves[index] + b"!", index, size, path, root)


# ----- the signature policy ---------------------------------------------------------------

INDICATIONS = ("TOTAL-PASSED", "TOTAL-FAILED", "INDETERMINATE")
SUBS = {
    "TOTAL-PASSED": (None,),
    "TOTAL-FAILED": ("HASH_FAILURE", "SIG_CRYPTO_FAILURE", "REVOKED"),
    "INDETERMINATE": ("TRY_LATER", "NO_CERTIFICATE_CHAIN_FOUND", "SIGNED_DATA_NOT_FOUND"),
}
RANK = {"TOTAL-PASSED": 0, "INDETERMINATE": 1, "TOTAL-FAILED": 2}


@st.composite
def verdicts(draw):
    indication = draw(st.sampled_from(INDICATIONS))
    return indication, draw(st.sampled_from(SUBS[indication]))


@st.composite
def reports(draw):
    xml_ind, xml_sub = draw(verdicts())
    attachments = []
    for n in range(draw(st.integers(0, 3))):
        signed = draw(st.booleans())
        ind, sub = draw(verdicts()) if signed else ("INDETERMINATE", None)
        if sub == "SIGNED_DATA_NOT_FOUND":
            ind, sub, signed = "INDETERMINATE", None, False
        summary = {
            "indication": ind,
            "sub_indication": sub,
            "signatures": int(signed),
            "document_timestamps": 0,
            "message": "m",
        }
        attachments.append(
            AttachmentReport(f"cid:{n}", f"a{n}.pdf", "0" * 64, ind, {"summary": summary})
        )
    parts = [(xml_ind, xml_sub)] + [
        (a.indication, a.report["summary"]["sub_indication"]) for a in attachments
    ]
    worst = max(parts, key=lambda p: RANK[p[0]])
    xml = XmlSignatureReport(xml_ind, xml_sub, "m", None, None, None, None, True)
    report = PackageReport("s", "t", "0" * 64, worst[0], worst[1], "m", xml, attachments)
    return report


def _outcome(report, policy, indeterminate, signer):
    try:
        verdict = decide(report, policy, indeterminate, signer)
    except HubError as exc:
        return "refused", exc.code
    return "accepted", verdict.warning


@settings(max_examples=300)
@given(
    reports(),
    st.sampled_from(["enforce", "report-only"]),
    st.sampled_from(["accept", "refuse"]),
    st.sampled_from([None, SignerVerdict(True, "ok"), SignerVerdict(False, "not theirs")]),
)
def test_the_policy_refuses_exactly_what_it_says(report, policy, indeterminate, signer):
    outcome, detail = _outcome(report, policy, indeterminate, signer)
    if policy == "report-only":
        assert outcome == "accepted"  # recorded, never refused
        return
    xml = report.xml_signature
    signed = [(a.indication, a.report["summary"]["sub_indication"]) for a in report.attachments
              if a.report["summary"]["signatures"]]  # fmt: skip
    judged = [(xml.indication, xml.sub_indication), *signed]
    if (xml.indication, xml.sub_indication) == ("INDETERMINATE", "SIGNED_DATA_NOT_FOUND"):
        assert (outcome, detail) == ("refused", "signature.missing")
    elif any(ind == "TOTAL-FAILED" for ind, _ in judged):
        assert (outcome, detail) == ("refused", "signature.invalid")
    elif signer is not None and not signer.allowed:
        assert (outcome, detail) == ("refused", "signature.wrong_signer")
    elif undecided := [sub for ind, sub in judged if ind == "INDETERMINATE"]:
        only_try_later = all(sub == "TRY_LATER" for sub in undecided)
        if only_try_later and indeterminate == "accept":
            assert outcome == "accepted" and "TRY_LATER" in detail
        else:
            assert (outcome, detail) == ("refused", "signature.indeterminate")
    else:
        assert outcome == "accepted"
