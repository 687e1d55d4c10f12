"""The per-recipient state machine of exchange/flows.py as pure rules: every move it allows
and every one it refuses, with the code and a message that names the current state."""

from __future__ import annotations

import uuid

import pytest

from exchange.errors import HubError
from exchange.flows import (
    Copy,
    Disposition,
    answer_step,
    normalised_status,
    progress_step,
    recall_step,
    supersede_step,
)

REQUEST, STATUS = uuid.uuid4(), uuid.uuid4()


def copy(**state) -> Copy:
    return Copy(uuid.uuid4(), "000.00.00.H49", b"\0" * 32, "G22,2024/05/02,1/VP", False, **state)


def refused(call, code: str) -> HubError:
    with pytest.raises(HubError) as caught:
        call()
    assert caught.value.code == code
    return caught.value


@pytest.mark.parametrize(
    ("current", "code"),
    [
        (None, "01"),
        (None, "02"),
        (None, "03"),  # 01 never sent
        (None, "06"),
        ("01", "02"),
        ("01", "03"),
        ("01", "05"),
        ("03", "04"),
        ("03", "05"),  # back to back, as registering systems do
        ("04", "05"),
        ("05", "05"),  # processing repeats
        ("05", "06"),
    ],
)
def test_forward_moves_are_recorded(current, code):
    after = progress_step(copy(progress=current), code, STATUS)
    assert (after.progress, after.status_code, after.status_package) == (code, code, STATUS)


@pytest.mark.parametrize("code", ["01", "03", "04"])
def test_an_exact_repeat_is_harmless(code):
    assert progress_step(copy(progress=code), code, STATUS) is None


@pytest.mark.parametrize(
    ("current", "code", "named"),
    [
        ("03", "01", "03 (registered)"),
        ("05", "04", "05 (processing)"),
        ("06", "05", "06 (finished)"),
        ("06", "06", "06 (finished)"),  # a second 06
        ("02", "03", "02 (rejected)"),  # anything after 02
        ("02", "02", "02 (rejected)"),
        ("03", "02", "03 (registered)"),  # 02 only instead of 03
    ],
)
def test_backwards_a_second_06_and_anything_after_02_are_out_of_order(current, code, named):
    error = refused(
        lambda: progress_step(copy(progress=current), code, STATUS), "status.out_of_order"
    )
    assert named in error.message


def test_a_recalled_copy_takes_no_status():
    refused(
        lambda: progress_step(copy(disposition=Disposition.RECALLED), "05", STATUS),
        "status.out_of_order",
    )


def test_a_recall_waits_for_an_answer_where_the_copy_was_taken():
    taken = Copy(uuid.uuid4(), "000.00.00.H49", b"", None, True)
    asked = recall_step(taken, REQUEST)
    assert (asked.disposition, asked.awaiting) == (Disposition.RECALL_REQUESTED, REQUEST)
    assert answer_step(asked, "15", "14", STATUS).disposition == Disposition.RECALLED
    refused_copy = answer_step(asked, "16", "16", STATUS)
    assert (refused_copy.disposition, refused_copy.awaiting) == (Disposition.RECALL_REFUSED, None)
    again = recall_step(refused_copy, REQUEST)  # allowed after a 16
    assert again.disposition == Disposition.RECALL_REQUESTED
    error = refused(lambda: recall_step(asked, REQUEST), "recall.pending")
    assert "waits for its answer" in error.message


def test_a_recall_of_a_copy_never_taken_is_settled_at_once():
    settled = recall_step(copy(), REQUEST)
    assert (settled.disposition, settled.awaiting) == (Disposition.RECALLED, None)
    refused(lambda: recall_step(settled, REQUEST), "status.out_of_order")


def test_an_update_supersedes_and_the_answer_is_recorded():
    superseded = supersede_step(copy(progress="03"), REQUEST)
    assert (superseded.disposition, superseded.superseded_by, superseded.awaiting) == (
        Disposition.SUPERSEDED,
        REQUEST,
        REQUEST,
    )
    answered = answer_step(superseded, "16", "16", STATUS)
    assert (answered.disposition, answered.answer, answered.progress) == (
        Disposition.SUPERSEDED,
        "refused",
        "03",
    )
    assert supersede_step(copy(disposition=Disposition.RECALLED), REQUEST) is None


def test_14_is_one_vendors_15():
    assert normalised_status("14") == "15"
    assert normalised_status("16") == "16"
