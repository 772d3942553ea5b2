"""The event review page's rows: each event once, newest first, however it arrived.

An event reaches the page twice when a reload reads it from the database after its commit
and the bus delivers it after that same commit. A table whose rows repeat a key is drawn
wrong by the browser: stale rows stayed on the page whatever filter was chosen (the
intermittent "alerts only" and camera-filter failures of the browser test, on a busy
machine)."""

from __future__ import annotations

from typing import Any

import pytest

from safecity.video.ui import EVENT_ROWS_SHOWN, _newest_events_first


def _rows(*ids: int, source: str = "db") -> list[dict[str, Any]]:
    return [{"id": i, "source": source} for i in ids]


@pytest.mark.parametrize(
    ("lists", "expected_ids"),
    [
        # The bus delivers an event a reload has already read: shown once.
        ([_rows(7, 6, source="bus"), _rows(7, 5, 4)], [7, 6, 5, 4]),
        # A batch from the bus arrives oldest first: shown newest first.
        ([_rows(8, 9, 10, source="bus"), _rows(7)], [10, 9, 8, 7]),
        # Live rows that came in during a reload's read, older and newer than it.
        ([_rows(20, 18), _rows(21, 19, source="bus")], [21, 20, 19, 18]),
        # Nothing at all.
        ([[], []], []),
    ],
)
def test_each_event_once_newest_first(
    lists: list[list[dict[str, Any]]], expected_ids: list[int]
) -> None:
    merged = _newest_events_first(*lists)
    assert [r["id"] for r in merged] == expected_ids
    assert len({r["id"] for r in merged}) == len(merged)


def test_the_first_list_wins_for_an_event_in_both() -> None:
    merged = _newest_events_first(_rows(3, source="bus"), _rows(3, source="db"))
    assert merged == [{"id": 3, "source": "bus"}]


def test_only_the_newest_rows_are_kept() -> None:
    many = _rows(*range(1, EVENT_ROWS_SHOWN + 51))
    merged = _newest_events_first(_rows(EVENT_ROWS_SHOWN + 60, source="bus"), many)
    assert len(merged) == EVENT_ROWS_SHOWN
    assert merged[0]["id"] == EVENT_ROWS_SHOWN + 60
    assert merged[-1]["id"] == 52
