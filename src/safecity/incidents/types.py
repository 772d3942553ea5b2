"""Incident types: what a call taker picks, mapped to APCO ANS 2.103 common incident type
codes (for data exchange with other agencies), each with a default priority (P1 most urgent).

These are the defaults a new database is seeded with; the command centre edits the table."""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class TypeDefault:
    code: str
    label: str
    apco_code: str
    priority: int
    serious: bool = False  # level-4 alerts go to central command when left unattended


DEFAULT_TYPES: tuple[TypeDefault, ...] = (
    TypeDefault("terrorism", "Terrorism", "TERROR", 1, serious=True),
    TypeDefault("explosion", "Explosion / blast", "EXPLOS", 1, serious=True),
    TypeDefault("bomb_threat", "Bomb threat / suspicious object", "BOMB", 1, serious=True),
    TypeDefault("murder", "Murder / firing", "HOMICIDE", 1, serious=True),
    TypeDefault("kidnapping", "Kidnapping", "ABDUCTNF", 1, serious=True),
    TypeDefault("robbery", "Robbery / dacoity", "ROBBERY", 1, serious=True),
    TypeDefault("panic", "Panic alert", "ALRPANS", 1, serious=True),
    TypeDefault("fire", "Fire", "FOTHER", 1),
    TypeDefault("snatching", "Snatching (mobile, purse)", "ROBBERY", 2),
    TypeDefault("assault", "Assault / fight", "ASSAULT", 2),
    TypeDefault("vehicle_theft", "Vehicle theft", "VEHSTLN", 2),
    TypeDefault("harassment", "Harassment", "HARR", 2),
    TypeDefault("domestic", "Domestic violence", "DVA", 2),
    TypeDefault("traffic_accident", "Traffic accident", "MVA", 2),
    TypeDefault("suspicious", "Suspicious person / vehicle", "SUSP", 3),
    TypeDefault("camera_alert", "Camera alert (perimeter, intrusion)", "SUSP", 2),
    TypeDefault("other", "Other", "INVEST", 3),
    TypeDefault("prank", "Prank / irrelevant", "911H", 4),
)

#: Response-time targets in seconds by priority and area type:
#: (acknowledge by SHO, dispatch a unit, arrive on scene).
DEFAULT_TARGETS: dict[tuple[int, str], tuple[int, int, int]] = {
    (1, "urban"): (60, 180, 600),
    (1, "rural"): (60, 300, 1200),
    (2, "urban"): (120, 300, 900),
    (2, "rural"): (120, 600, 1800),
    (3, "urban"): (300, 900, 1800),
    (3, "rural"): (300, 1200, 3600),
    (4, "urban"): (900, 3600, 7200),
    (4, "rural"): (900, 3600, 7200),
}
#: A serious incident still not on scene this long after it came in goes to central command.
SERIOUS_UNATTENDED_S = 900

#: Which types may be the same event reported twice (a robbery call and an assault call
#: 100 m apart a minute later are probably one incident).
COMPATIBLE_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"robbery", "snatching", "assault", "murder", "panic", "kidnapping"}),
    frozenset({"terrorism", "explosion", "bomb_threat", "fire", "murder"}),
    frozenset({"traffic_accident", "fire"}),
    frozenset({"suspicious", "camera_alert", "bomb_threat"}),
)


def compatible(a: str, b: str) -> bool:
    return a == b or any(a in g and b in g for g in COMPATIBLE_GROUPS)


@functools.cache
def compatible_types(a: str) -> frozenset[str]:
    """Every type `compatible` with `a` (itself included): matching a call against many
    stored incidents asks one set instead of the groups each time."""
    return frozenset({a}.union(*(g for g in COMPATIBLE_GROUPS if a in g)))
