"""Call categories a call taker picks, with their default priority (P1 most urgent)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    code: str
    label: str
    priority: int


CATEGORIES: dict[str, Category] = {
    c.code: c
    for c in (
        Category("terrorism", "Terrorism / explosion", 1),
        Category("murder", "Murder / firing", 1),
        Category("kidnapping", "Kidnapping", 1),
        Category("robbery", "Robbery / dacoity", 1),
        Category("fire", "Fire", 1),
        Category("snatching", "Snatching (mobile, purse)", 2),
        Category("assault", "Assault / fight", 2),
        Category("vehicle_theft", "Vehicle theft", 2),
        Category("harassment", "Harassment", 2),
        Category("domestic", "Domestic violence", 2),
        Category("traffic_accident", "Traffic accident", 2),
        Category("suspicious", "Suspicious person / vehicle", 3),
        Category("panic", "Panic alert", 1),
        Category("other", "Other", 3),
        Category("prank", "Prank / irrelevant", 4),
    )
}


def category_or_none(code: str) -> Category | None:
    return CATEGORIES.get(code)
