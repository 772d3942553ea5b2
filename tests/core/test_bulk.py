"""`BulkStatement`: rows stored exactly as `Connection.execute` stores them, and
`insert_returning` gives each row's id in row order, with SQLAlchemy's errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from safecity.core.bulk import BulkStatement, ListQuery
from safecity.core.db import UTCDateTime
from safecity.core.runtime import Runtime

_META = MetaData()
_PROBE = Table(
    "bulk_probe",
    _META,
    Column("id", Integer, primary_key=True),
    Column("name", String(32), unique=True),
    Column("at", UTCDateTime()),
    Column("flag", Boolean),
    Column("x", Float),
    Column("data", JSON),
)
_NAMES = ("name", "at", "flag", "x", "data")
_INSERT_IDS = BulkStatement(
    insert(_PROBE)
    .values({n: bindparam(n) for n in _NAMES})
    .returning(_PROBE.c.id, sort_by_parameter_order=True),
    names=_NAMES,
)
#: A list, a scalar with a type to convert (the time) and a literal the statement holds.
_FIND = ListQuery(
    select(_PROBE.c.name, _PROBE.c.x)
    .where(
        _PROBE.c.name.in_(bindparam("names", expanding=True)),
        _PROBE.c.at >= bindparam("since", type_=UTCDateTime()),
        _PROBE.c.flag == True,  # noqa: E712  (SQL, not Python)
    )
    .order_by(_PROBE.c.name),
    lists=("names",),
    scalars=("since",),
)
_INSERT = BulkStatement(
    insert(_PROBE).inline().values({n: bindparam(n) for n in _NAMES}), names=_NAMES
)


def _rows(prefix: str, n: int) -> list[dict[str, Any]]:
    t0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    return [
        {
            "name": f"{prefix}{i}",
            "at": t0 + timedelta(seconds=i // 3),  # shared values are converted once
            "flag": i % 2 == 0,
            "x": i / 7,
            "data": {"i": i, "tags": ["a", prefix]},
        }
        for i in range(n)
    ]


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {n: [r[n] for r in rows] for n in _NAMES}


@pytest.fixture
def probe(runtime: Runtime) -> Runtime:
    with runtime.engine.begin() as conn:
        _PROBE.create(conn, checkfirst=True)
    return runtime


def _stored(rt: Runtime, prefix: str) -> list[tuple[Any, ...]]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(*[_PROBE.c[n] for n in ("id", *_NAMES)])
            .where(_PROBE.c.name.like(f"{prefix}%"))
            .order_by(_PROBE.c.id)
        ).all()
    return [tuple(r) for r in rows]


def test_insert_returning_gives_ids_in_row_order_and_stores_what_execute_stores(
    probe: Runtime,
) -> None:
    rt = probe
    with rt.engine.begin() as conn:
        conn.execute(insert(_PROBE), _rows("orm-", 7))
        ids = _INSERT_IDS.insert_returning(conn, _columns(_rows("bulk-", 7)))
        _INSERT.execute(conn, _columns(_rows("plain-", 7)))
    bulk = _stored(rt, "bulk-")
    assert ids == [r[0] for r in bulk]
    assert [r[1] for r in bulk] == [f"bulk-{i}" for i in range(7)]
    # The same values as SQLAlchemy's own insert stored, row by row.
    strip = [(r[1].split("-", 1)[1], *r[2:]) for r in bulk]
    for other in ("orm-", "plain-"):
        got = [(r[1].split("-", 1)[1], r[2], r[3], r[4], r[5]) for r in _stored(rt, other)]
        assert [(s[0], s[1], s[2], s[3], {**s[4], "tags": ["a", other]}) for s in strip] == got
    assert all(r[2].tzinfo is not None for r in bulk)


def test_insert_returning_raises_sqlalchemys_integrity_error(probe: Runtime) -> None:
    rt = probe
    with rt.engine.begin() as conn:
        _INSERT_IDS.insert_returning(conn, _columns(_rows("dup-", 2)))
    with pytest.raises(IntegrityError), rt.engine.begin() as conn:
        _INSERT_IDS.insert_returning(conn, _columns(_rows("dup-", 1)))
    assert len(_stored(rt, "dup-")) == 2


def test_columns_must_be_the_statement_names(probe: Runtime) -> None:
    with probe.engine.begin() as conn, pytest.raises(ValueError, match="columns"):
        _INSERT_IDS.insert_returning(conn, {"name": ["a"]})


@pytest.mark.parametrize("n", [1, 2, 3, 5, 17])
def test_list_query_gives_what_execute_gives_for_any_list_length(probe: Runtime, n: int) -> None:
    rt = probe
    rows = _rows("q-", 40)
    with rt.engine.begin() as conn:
        _INSERT.execute(conn, _columns(rows))
    since = rows[3]["at"]
    names = [f"q-{i}" for i in range(2, 2 + 3 * n)] + ["absent"]
    with rt.engine.connect() as conn:
        params = {"names": names, "since": since}
        got = _FIND.all(conn, params)
        want = conn.execute(_FIND._stmt, params).all()  # SQLAlchemy's own run
    assert got == [tuple(r) for r in want]
    assert got and all(name in names for name, _ in got)


def test_list_query_refuses_empty_lists_and_unknown_parameters(probe: Runtime) -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    with probe.engine.connect() as conn:
        with pytest.raises(ValueError, match="at least one"):
            _FIND.all(conn, {"names": [], "since": since})
        with pytest.raises(ValueError, match="parameters"):
            _FIND.all(conn, {"names": ["a"]})
