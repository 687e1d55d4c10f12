"""The demo's 2025 reorganisation, in the shapes it really took (codes are illustrative).

* Quảng Ninh (H49) was not merged, but its district level went: thành phố Hạ Long retires
  into the new wards that now sit directly under the province (a split; packages still sent
  to the city go to phường Hồng Gai, where its seat was), and the old ward of Hồng Gai merges
  into the new one.
* Two provinces merged: Bắc Giang retires into Bắc Ninh, which keeps its code.

:func:`write_demo_files` writes the registry additions and the mapping as the CSV files an
operator would use (``registry import`` then ``registry reorganise``).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from exchange.registry import Agency

__all__ = [
    "EFFECTIVE",
    "MAPPING",
    "NEW_UNITS",
    "OLD_PROVINCES",
    "write_demo_files",
]

EFFECTIVE = dt.date(2025, 7, 1)
PROVINCE = "000.00.00.H49"
CITY = "000.00.10.H49"  # UBND thành phố Hạ Long, district level until 2025-06-30
OLD_WARD = "000.05.10.H49"  # UBND phường Hồng Gai (old), under the city
HONG_GAI = "000.00.71.H49"
HA_LONG = "000.00.72.H49"
BAI_CHAY = "000.00.73.H49"
BAC_GIANG = "000.00.00.H24"
BAC_NINH = "000.00.00.H27"

# Registered before the change: the two provinces that merge (the H49 units are the demo's own).
OLD_PROVINCES = (
    Agency(BAC_GIANG, "UBND tỉnh Bắc Giang", None, "province"),
    Agency(BAC_NINH, "UBND tỉnh Bắc Ninh", None, "province"),
)
# The units the reorganisation creates, registered (``registry import``) before the mapping.
NEW_UNITS = (
    Agency(HONG_GAI, "UBND phường Hồng Gai", PROVINCE, "commune", valid_from=EFFECTIVE),
    Agency(HA_LONG, "UBND phường Hạ Long", PROVINCE, "commune", valid_from=EFFECTIVE),
    Agency(BAI_CHAY, "UBND phường Bãi Cháy", PROVINCE, "commune", valid_from=EFFECTIVE),
)
MAPPING = (
    {"old": CITY, "new": f"{HONG_GAI} {HA_LONG} {BAI_CHAY}", "kind": "split"},
    {"old": OLD_WARD, "new": HONG_GAI, "kind": "merge", "parent": PROVINCE},
    {"old": BAC_GIANG, "new": BAC_NINH, "kind": "merge"},
)


def write_demo_files(folder: Path) -> tuple[Path, Path]:
    """Write ``new-units.csv`` (for ``registry import``) and ``mapping-2025-07-01.csv`` (for
    ``registry reorganise``) into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    units = folder / "new-units.csv"
    with units.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["code", "name", "parent", "level", "valid_from"])
        for unit in (*OLD_PROVINCES, *NEW_UNITS):
            valid_from = unit.valid_from.isoformat() if unit.valid_from else ""
            writer.writerow([unit.code, unit.name, unit.parent or "", unit.level, valid_from])
    mapping = folder / "mapping-2025-07-01.csv"
    with mapping.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, ["old", "new", "effective", "kind", "parent"])
        writer.writeheader()
        for row in MAPPING:
            writer.writerow({"effective": EFFECTIVE.isoformat(), "parent": "", **row})
    return units, mapping
