"""Organ ids ("mã định danh", QCVN 102:2016 amended 2022): parse, normalise, tree, routing key.

An organ id is written lowest level first: ``V1V2V3.Z1Z2.Y1Y2.MX1X2``. ``MX1X2`` is the top-level
unit (a ministry ``G..`` or a province ``H..``/``K..``); zeros mean "none at this level". Field data
also carries three-segment ids (``28.22.H17``); they are padded on the left to the full form.

    >>> oid = OrganId.parse(" 28.22.h17 ")
    >>> str(oid), oid.depth, str(oid.parent), oid.routing_key
    ('000.28.22.H17', 3, '000.00.22.H17', 'H17.22.28.000')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from schemas.errors import FormatError

__all__ = ["GovLevel", "OrganId", "OrganIdError", "normalise"]

MAX_LENGTH = 35
# Widths of the segments below the top one, from level 2 (Y) up to level 4 (V).
_LOWER_WIDTHS = (2, 2, 3)
_SEGMENT = re.compile(r"^[0-9A-Z]+$")
_TOP = re.compile(r"^[A-Z][0-9A-Z]{1,4}$")


class OrganIdError(FormatError, ValueError):
    """An organ id that cannot be understood (a :class:`FormatError` and a ``ValueError``)."""

    def __init__(self, raw: str, reason: str, field: str | None = None) -> None:
        super().__init__(
            "organ_id.invalid", f"organ id {raw[:60]!r} is not valid: {reason}", field=field
        )


class GovLevel(StrEnum):
    """The four levels of government."""

    CENTRAL = "central"
    PROVINCE = "province"
    DISTRICT = "district"
    COMMUNE = "commune"


@dataclass(frozen=True, slots=True)
class OrganId:
    """A normalised organ id; ``segments`` are kept in written order (lowest level first)."""

    segments: tuple[str, ...]

    @classmethod
    def parse(cls, raw: str, field: str | None = None) -> OrganId:
        """Parse leniently (spaces, lower case, short forms); raise :class:`OrganIdError`."""
        if not isinstance(raw, str):
            raise OrganIdError(repr(raw), "not a string", field)
        text = raw.strip().upper()
        if not text:
            raise OrganIdError(raw, "empty", field)
        if len(text) > MAX_LENGTH:
            raise OrganIdError(raw, f"longer than {MAX_LENGTH} characters", field)
        parts = text.split(".")
        if any(not p or not _SEGMENT.match(p) for p in parts):
            raise OrganIdError(raw, "segments must be digits and A-Z separated by '.'", field)
        top, lower = parts[-1], parts[:-1]
        if not _TOP.match(top):
            raise OrganIdError(raw, f"top-level segment {top!r} must start with a letter", field)
        for segment in lower:
            if not segment.isdigit():
                raise OrganIdError(raw, f"segment {segment!r} must be digits", field)
        # Pad missing lower levels with zeros, to the standard widths (Y, Z, V).
        missing = len(_LOWER_WIDTHS) - len(lower)
        if missing > 0:
            pad = ["0" * w for w in reversed(_LOWER_WIDTHS[len(lower) :])]
            lower = pad + lower
        # Widen short numeric segments (e.g. '1' -> '01') at the standard levels.
        widths = list(reversed(_LOWER_WIDTHS)) if len(lower) == 3 else None
        if widths:
            lower = [s.zfill(w) if len(s) < w else s for s, w in zip(lower, widths, strict=True)]
        return cls(tuple(lower) + (top,))

    def __str__(self) -> str:
        return ".".join(self.segments)

    @property
    def top(self) -> str:
        """The top-level unit code, e.g. ``H49`` or ``G22``."""
        return self.segments[-1]

    @property
    def depth(self) -> int:
        """1 for a top-level unit, 2 for its direct units, ... (deepest non-zero segment)."""
        lower = self.segments[:-1]
        for index, segment in enumerate(lower):
            if int(segment) != 0:
                return len(lower) - index + 1
        return 1

    @property
    def parent(self) -> OrganId | None:
        """The unit one level up (the deepest non-zero segment zeroed), or ``None`` at the top."""
        lower = list(self.segments[:-1])
        for index, segment in enumerate(lower):
            if int(segment) != 0:
                lower[index] = "0" * len(segment)
                return OrganId(tuple(lower) + (self.top,))
        return None

    def ancestors(self) -> list[OrganId]:
        """Parents up to the top-level unit, nearest first."""
        chain, node = [], self.parent
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain

    @property
    def routing_key(self) -> str:
        """AMQP topic key: segments reversed, so ``H47.#`` selects a whole province."""
        return ".".join(reversed(self.segments))

    @property
    def subtree_prefix(self) -> str:
        """The routing key without its trailing zero segments: ``H47.10`` for ``000.00.10.H47``.

        ``<prefix>.#`` as an AMQP binding (or ``LIKE '<prefix>.%'``) selects the unit's subtree.
        """
        key = list(reversed(self.segments))
        while len(key) > 1 and not key[-1].strip("0"):
            key.pop()
        return ".".join(key)

    @property
    def gov_level(self) -> GovLevel:
        """A best guess of the level of government; the registry may say otherwise."""
        depth = self.depth
        if depth == 1:
            return GovLevel.CENTRAL if self.top.startswith("G") else GovLevel.PROVINCE
        if depth == 2:
            return GovLevel.DISTRICT
        return GovLevel.COMMUNE


def normalise(raw: str, field: str | None = None) -> str:
    """The canonical text form of an organ id."""
    return str(OrganId.parse(raw, field))
