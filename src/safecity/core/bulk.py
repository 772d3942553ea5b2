"""Many rows in one statement, without SQLAlchemy's per-row parameter processing.

An AVL gateway sends thousands of GPS fixes a second. Through `Connection.execute(stmt,
[dict, ...])` SQLAlchemy builds every row's parameters anew (a dict walk, a type processor
call per value, a positional tuple): for a row of six numbers that cost more than SQLite
took to store it. A `BulkStatement` is compiled once per dialect; its rows are given column
by column, only the columns whose type needs it are converted (with the column type's own
bind processor, so what is stored is exactly what `execute` would store), and the rows go
to the driver's `executemany` as they are."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.dml import UpdateBase


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...]  # parameter names in the order the SQL takes them
    processors: dict[str, Any]  # name -> the bind processor of its type, where it has one
    positional: bool


class BulkStatement:
    """An INSERT or UPDATE whose values are all `bindparam`s, run over many rows; `names`
    are those parameters, each row gives one value for each."""

    def __init__(self, stmt: UpdateBase, *, names: Sequence[str]) -> None:
        self._stmt = stmt
        self._names = tuple(names)
        self._lock = threading.Lock()
        # One compiled form per dialect object (an engine keeps its dialect; a test's
        # engines come and go, so they are not kept alive here).
        self._compiled: weakref.WeakKeyDictionary[Dialect, _Compiled] = weakref.WeakKeyDictionary()

    def _for(self, dialect: Dialect) -> _Compiled:
        with self._lock:
            got = self._compiled.get(dialect)
            if got is None:
                got = self._compile(dialect)
                self._compiled[dialect] = got
            return got

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._stmt.compile(dialect=dialect)
        binds = compiled.binds
        positional = compiled.positiontup is not None
        order = tuple(compiled.positiontup) if compiled.positiontup is not None else ()
        if positional and sorted(order) != sorted(self._names):
            raise ValueError(f"statement parameters {order} are not the names {self._names}")
        if not positional and set(binds) != set(self._names):
            raise ValueError(f"statement parameters {sorted(binds)} are not {self._names}")
        processors = {}
        for name in self._names:
            # The dialect's own form of the type (SQLite's DATETIME is a string format).
            proc = binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                processors[name] = proc
        return _Compiled(compiled.string, order, processors, positional)

    def execute(self, conn: Connection, columns: Mapping[str, Sequence[Any]]) -> CursorResult[Any]:
        """Run the statement once per row; `columns` maps each name to its values (all the
        same length, at least one row). Returns the driver's result (its rowcount)."""
        c = self._for(conn.dialect)
        cols = {
            name: _converted(c.processors[name], values) if name in c.processors else values
            for name, values in columns.items()
        }
        if set(cols) != set(self._names):
            raise ValueError(f"columns {sorted(cols)} are not {self._names}")
        rows: list[Any]
        if c.positional:
            rows = list(zip(*(cols[n] for n in c.order), strict=True))
        else:
            names = self._names
            rows = [
                dict(zip(names, r, strict=True))
                for r in zip(*(cols[n] for n in names), strict=True)
            ]
        return conn.exec_driver_sql(c.sql, rows)


def _converted(processor: Any, values: Sequence[Any]) -> list[Any]:
    """`processor` over `values`, once per distinct value: the values that need it are
    mostly times, and the fixes of one AVL batch mostly share one (the time it arrived)."""
    done: dict[Any, Any] = {}
    out = []
    for v in values:
        try:
            got = done[v]
        except KeyError:
            got = done[v] = processor(v)
        except TypeError:  # an unhashable value: convert it every time
            got = processor(v)
        out.append(got)
    return out
