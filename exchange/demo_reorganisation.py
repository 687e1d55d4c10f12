"""The demo's 2025 reorganisation, in the shapes it really took (codes are illustrative).

* Quảng Ninh (H49) was not merged, but its district level went: thành phố Hạ Long retires
  into the new wards that now sit directly under the province (a split; packages still sent
  to the city go to phường Hồng Gai, where its seat was), and the old ward of Hồng Gai merges
  into the new one.
* Two provinces merged: Bắc Giang retires into Bắc Ninh, which keeps its code.

:func:`write_demo_files` writes the registry additions and the mapping as the CSV files an
operator would use (``registry import`` then ``registry reorganise``); ``lienthong demo`` runs
:func:`show_reorganisation` after its four-level exchange.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import time
from pathlib import Path

from exchange.registry import Agency

__all__ = [
    "EFFECTIVE",
    "MAPPING",
    "NEW_UNITS",
    "OLD_PROVINCES",
    "show_reorganisation",
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


async def show_reorganisation(console, hub, clients: dict, sender: str) -> bool:
    """The demo's second act: a document to the city under the old structure, the change
    recorded (dry run, then for real), a document to the retired city reaching the new ward;
    returns whether every step checked out. ``clients`` has the demo agencies' clients."""
    import tempfile

    from rich.table import Table

    from adapters.client import HubClient
    from exchange.auth import issue_credentials
    from exchange.mapping import read_mapping
    from exchange.reorganise import apply_reorganisation
    from schemas import build_document

    def document(number: str) -> bytes:
        return build_document(
            sender=sender,
            recipients=[CITY],
            code_number=number,
            code_notation="VPCP-TCCV",
            subject="V/v bàn giao hồ sơ khi sắp xếp đơn vị hành chính",
            attachments=[("cong-van.txt", "text/plain", "Bàn giao hồ sơ.\n".encode())],
        )

    console.print("\n[bold]The 2025 reorganisation[/] (district level abolished, provinces merged)")
    old = await clients[sender].submit(document(f"{int(time.time())}a"))
    await hub.registry.upsert([*OLD_PROVINCES, *NEW_UNITS], by="demo", reason="new units")
    for unit in (*OLD_PROVINCES, *NEW_UNITS):
        await hub.broker.ensure_agency(unit.code)
    with tempfile.TemporaryDirectory() as tmp:
        rows, problems = read_mapping(write_demo_files(Path(tmp))[1])
    ok = not problems
    for dry_run in (True, False):
        plan = await apply_reorganisation(
            hub.registry, rows, by="demo", reason="demo mapping", dry_run=dry_run
        )
        ok &= not plan.problems
        title = "Dry run: what would change" if dry_run else "Applied"
        table = Table("change", title=title)
        for line in plan.described or ["(nothing: already applied)"]:
            table.add_row(line)
        console.print(table)
    creds = await issue_credentials(hub.credentials, HONG_GAI)
    ward = HubClient(clients[sender].base_url, creds.client_id, creds.client_secret)
    try:
        new = await clients[sender].submit(document(f"{int(time.time())}b"))
        ok &= new["recipients"] == [HONG_GAI] and new.get("redirected_from") == {HONG_GAI: CITY}
        arrived = await _arrival(ward, new["id"])
        ok &= arrived is not None and arrived.get("addressed_as") == CITY
    finally:
        await ward.close()
    console.print(
        f"A document sent to the retired city {CITY} after the change went to "
        f"{', '.join(new['recipients'])} (redirected_from {new.get('redirected_from')}); "
        f"the ward's inbox says it was addressed as {arrived and arrived.get('addressed_as')}."
    )
    trail = await clients[sender].trail(old["id"])
    city = trail["parties"][CITY]
    ok &= [r["organ_id"] for r in trail["recipients"]] == [CITY]
    console.print(
        f"The document sent before keeps its recipient {CITY} ({city['name']}, {city['level']}); "
        f"today its successor is {', '.join(city['today']['successors'])}."
    )
    verdict = "[green]every step checked out[/]" if ok else "[red]something went wrong[/]"
    console.print(f"Reorganisation: {verdict}.")
    return ok


async def _arrival(client, package_id: str, timeout: float = 30.0) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async for item in client.inbox_items():
            if item["id"] == package_id:
                return item
        await asyncio.sleep(0.05)
    return None
