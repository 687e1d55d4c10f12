import pytest

from schemas import GovLevel, OrganId, OrganIdError, normalise


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("000.00.00.H49", "000.00.00.H49"),
        ("  000.00.00.h49 ", "000.00.00.H49"),
        ("28.22.H17", "000.28.22.H17"),
        ("01.02.G22", "000.01.02.G22"),
        ("G22", "000.00.00.G22"),
        ("1.2.10.H47", "001.02.10.H47"),
        ("000.00.00.A80", "000.00.00.A80"),
        ("001.00.20.JB2", "001.00.20.JB2"),
    ],
)
def test_normalise_field_forms(raw, expected):
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "9fbfbad2-f1f8-4256-a2eb-50fb1061cddb",
        "000.00.00.",
        "000..00.H49",
        "0.0.0.123",
        "000.AB.00.H49",
        "x" * 36,
        "000.00.00.H49;DROP",
    ],
)
def test_garbage_is_refused_with_a_code(raw):
    with pytest.raises(OrganIdError) as info:
        OrganId.parse(raw, field="To/OrganId")
    assert info.value.code == "organ_id.invalid"
    assert info.value.field == "To/OrganId"


def test_non_string_is_refused():
    with pytest.raises(OrganIdError):
        OrganId.parse(None)  # type: ignore[arg-type]


def test_tree_and_levels():
    unit = OrganId.parse("001.00.10.H47")
    assert unit.depth == 4
    assert str(unit.parent) == "000.00.10.H47"
    assert str(unit.parent.parent) == "000.00.00.H47"
    assert unit.parent.parent.parent is None
    assert [str(a) for a in unit.ancestors()] == ["000.00.10.H47", "000.00.00.H47"]
    assert OrganId.parse("000.00.00.G22").gov_level is GovLevel.CENTRAL
    assert OrganId.parse("000.00.00.H49").gov_level is GovLevel.PROVINCE
    assert OrganId.parse("000.00.10.H49").gov_level is GovLevel.DISTRICT
    assert OrganId.parse("000.05.10.H49").gov_level is GovLevel.COMMUNE


def test_routing_key_reverses_segments():
    assert OrganId.parse("001.00.10.H47").routing_key == "H47.10.00.001"
    assert OrganId.parse("28.22.H17").routing_key == "H17.22.28.000"


def test_subtree_prefix_drops_trailing_zero_levels():
    assert OrganId.parse("000.00.00.H49").subtree_prefix == "H49"
    assert OrganId.parse("000.00.10.H49").subtree_prefix == "H49.10"
    assert OrganId.parse("001.00.10.H47").subtree_prefix == "H47.10.00.001"


def test_parse_is_idempotent():
    for raw in ("28.22.H17", "000.00.10.H47", "G22"):
        once = normalise(raw)
        assert normalise(once) == once
