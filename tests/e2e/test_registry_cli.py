"""The operator's reorganisation procedure with the ``lienthong`` command: import the new
units, dry run, apply, apply again, look a code up as of a day; a bad mapping changes nothing."""

from __future__ import annotations

import json

import pytest

from exchange import demo_reorganisation as demo
from exchange.store import database as db
from tests.conftest import make_settings
from tests.support.cli import lienthong, no_noise

BEFORE = f"""code,name,parent,level
{demo.PROVINCE},UBND tỉnh Quảng Ninh,,province
{demo.CITY},UBND thành phố Hạ Long,{demo.PROVINCE},district
{demo.OLD_WARD},UBND phường Hồng Gai,{demo.CITY},commune
"""


@pytest.fixture
async def settings(tmp_path):
    s = make_settings(tmp_path)
    yield s
    await db.drop_schema(s)


def _show(settings, code: str, *at: str) -> dict:
    return json.loads(lienthong(settings, "registry", "show", code, *at, "--json").stdout)


def test_reorganise_dry_run_apply_and_show_as_of(settings, tmp_path):
    before = tmp_path / "before.csv"
    before.write_text(BEFORE, encoding="utf-8")
    lienthong(settings, "registry", "import", str(before), "--by", "ops")
    units, mapping = demo.write_demo_files(tmp_path)
    out = lienthong(settings, "registry", "import", str(units)).stdout
    assert "5 new, 0 updated, 0 unchanged" in out

    dry = lienthong(settings, "registry", "reorganise", str(mapping), "--dry-run", "--by", "ops")
    no_noise(dry)
    assert f"would: 2025-07-01 {demo.CITY} (UBND thành phố Hạ Long) retires →" in dry.stdout
    assert "H49 (UBND tỉnh Quảng Ninh): 1 merge, 1 split" in dry.stdout
    assert "H24 (UBND tỉnh Bắc Giang): 1 merge" in dry.stdout
    assert "dry run: nothing was changed" in dry.stdout
    assert _show(settings, demo.CITY)["active"] is True

    done = lienthong(settings, "registry", "reorganise", str(mapping), "--by", "ops")
    assert "3 new version(s) recorded, 0 row(s) already applied" in done.stdout
    again = lienthong(settings, "registry", "reorganise", str(mapping), "--by", "ops")
    assert "0 new version(s) recorded, 3 row(s) already applied" in again.stdout

    now = _show(settings, demo.CITY)
    assert now["active"] is False and now["successors_today"] == [demo.HONG_GAI]
    then = _show(settings, demo.CITY, "--at", "2025-06-30")
    assert then["active"] is True and then["agency"]["level"] == "district"
    table = lienthong(settings, "registry", "show", demo.OLD_WARD, "--at", "2025-06-30").stdout
    assert "UBND phường Hồng Gai" in table and "takes documents" in table
    listing = json.loads(
        lienthong(settings, "registry", "list", "--at", "2025-06-30", "--json").stdout
    )
    assert demo.HONG_GAI not in {a["code"] for a in listing}  # not registered yet that day
    old_tree = json.loads(
        lienthong(settings, "registry", "structure", "--at", "2025-06-30", "--json").stdout
    )["codes"]
    assert old_tree[demo.OLD_WARD] == {
        "level": "commune",
        "parent": demo.CITY,
        "province": demo.PROVINCE,
    }
    counts = lienthong(settings, "registry", "structure").stdout
    assert "000.00.00.H49: 4 commune, 1 district, 1 province" in counts  # retired ones kept
    assert "000.00.00.H27: 2 province" in counts  # Bắc Giang counts under Bắc Ninh now


def test_bad_mapping_lists_its_conflicts_and_changes_nothing(settings, tmp_path):
    before = tmp_path / "before.csv"
    before.write_text(BEFORE, encoding="utf-8")
    lienthong(settings, "registry", "import", str(before))
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "old,new,effective,kind\n"
        f"{demo.CITY},000.00.98.H49,2025-07-01,merge\n"
        f"{demo.CITY},{demo.PROVINCE},2025-07-01,merge\n"
        f"{demo.OLD_WARD},{demo.PROVINCE},2025-02-30,merge\n",
        encoding="utf-8",
    )
    proc = lienthong(settings, "registry", "reorganise", str(bad), check=False)
    no_noise(proc)
    assert proc.returncode == 1
    for kind in ("mapping.unknown_successor", "mapping.duplicate", "mapping.bad_date"):
        assert kind in proc.stderr
    assert "nothing was changed" in proc.stderr
    as_json = lienthong(settings, "registry", "reorganise", str(bad), "--json", check=False)
    assert as_json.returncode == 1
    kinds = [c["kind"] for c in json.loads(as_json.stdout)["conflicts"]]
    assert kinds == ["mapping.bad_date", "mapping.duplicate", "mapping.unknown_successor"]
    assert _show(settings, demo.CITY)["active"] is True
    missing = lienthong(settings, "registry", "show", "000.00.99.H49", check=False)
    assert missing.returncode == 1 and "agency.not_found" in missing.stderr
    no_noise(missing)
