"""Many rows in one statement, without SQLAlchemy's per-row parameter processing.

An AVL gateway sends thousands of GPS fixes a second. Through `Connection.execute(stmt,
[dict, ...])` SQLAlchemy builds every row's parameters anew (a dict walk, a type processor
call per value, a positional tuple): for a row of six numbers that cost more than SQLite
took to store it. A `BulkStatement` is compiled once per dialect; its rows are given column
by column, only the columns whose type needs it are converted (with the column type's own
bind processor, so what is stored is exactly what `execute` would store), and the rows go
to the driver's `executemany` as they are.

The call-intake writer runs a few small statements per cycle, hundreds of cycles a second:
`BulkStatement.insert_returning` and `ListQuery` (SELECTs with `IN` lists) spare those the
same per-execution work."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import Select


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
        return conn.exec_driver_sql(c.sql, self._rows(c, cols))

    def insert_returning(self, conn: Connection, columns: Mapping[str, Sequence[Any]]) -> list[Any]:
        """For an INSERT built with `.returning(col, sort_by_parameter_order=True)`: insert
        the rows and give each row's returned value, in row order.

        SQLite cannot batch an INSERT whose returned rows must come back in parameter order,
        so SQLAlchemy runs one statement per row there anyway, with its full per-row
        execution machinery; here each row is one call on the driver's cursor (errors are
        SQLAlchemy's all the same, an `IntegrityError` stays one). Other databases batch:
        their rows go through SQLAlchemy's own "insertmanyvalues"."""
        if set(columns) != set(self._names):
            raise ValueError(f"columns {sorted(columns)} are not {self._names}")
        dialect = conn.dialect
        if dialect.name != "sqlite":
            names = list(columns)
            dicts = [
                dict(zip(names, r, strict=True))
                for r in zip(*(columns[n] for n in names), strict=True)
            ]
            return list(conn.execute(self._stmt, dicts).scalars())
        c = self._for(dialect)
        cols = {
            name: _converted(c.processors[name], values) if name in c.processors else values
            for name, values in columns.items()
        }
        rows = self._rows(c, cols)
        out: list[Any] = []
        cursor = conn.connection.cursor()
        row: Any = None
        try:
            for row in rows:
                cursor.execute(c.sql, row)
                got = cursor.fetchone()
                if got is None:
                    raise RuntimeError(f"the insert returned nothing: {c.sql}")
                out.append(got[0])
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                c.sql, row, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        finally:
            cursor.close()
        return out

    def _rows(self, c: _Compiled, cols: Mapping[str, Sequence[Any]]) -> list[Any]:
        if set(cols) != set(self._names):
            raise ValueError(f"columns {sorted(cols)} are not {self._names}")
        if c.positional:
            return list(zip(*(cols[n] for n in c.order), strict=True))
        names = self._names
        return [
            dict(zip(names, r, strict=True)) for r in zip(*(cols[n] for n in names), strict=True)
        ]


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


class ListQuery:
    """A SELECT with `IN` lists (expanding `bindparam`s) that runs many times a second: each
    run's SQL comes ready from a cache, its parameters are converted by their types' own
    bind processors, and the rows come straight from the driver's cursor.

    Through `Connection.execute` every run generated the statement's cache key and rendered
    its lists anew, which cost the group-commit writer more than the queries themselves
    (a few of these per cycle). Lists are rendered for lengths rounded up to a power of two
    and padded with their last value (`IN` ignores repeats), so a handful of forms per
    dialect serve every length. Rows are the driver's tuples, without SQLAlchemy's result
    processing: SQLite gives times as ISO text and booleans as 0/1, PostgreSQL gives
    Python values; callers read them accordingly."""

    def __init__(
        self,
        stmt: Select[*tuple[Any, ...]],
        *,
        lists: Sequence[str],
        scalars: Sequence[str] = (),
    ):
        self._stmt = stmt
        self._lists = tuple(lists)
        self._scalars = tuple(scalars)
        self._lock = threading.Lock()
        self._compiled: weakref.WeakKeyDictionary[Dialect, dict[tuple[int, ...], _Query]] = (
            weakref.WeakKeyDictionary()
        )

    def _for(self, dialect: Dialect, sizes: tuple[int, ...]) -> _Query:
        with self._lock:
            forms = self._compiled.setdefault(dialect, {})
            got = forms.get(sizes)
            if got is None:
                got = forms[sizes] = self._compile(dialect, sizes)
            return got

    def _compile(self, dialect: Dialect, sizes: tuple[int, ...]) -> _Query:
        # Placeholder values only fix the lists' lengths; the SQL does not depend on them.
        values: dict[str, Any] = {
            name: [None] * n for name, n in zip(self._lists, sizes, strict=True)
        }
        values.update({name: None for name in self._scalars})
        compiled = self._stmt.params(values).compile(
            dialect=dialect, compile_kwargs={"render_postcompile": True}
        )

        def processed(name: str) -> Any:
            return compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)

        processors = {name: processed(name) for name in (*self._lists, *self._scalars)}
        expanded = {
            f"{name}_{i + 1}": (name, i)
            for name, n in zip(self._lists, sizes, strict=True)
            for i in range(n)
        }
        # Values the statement itself holds (a literal compared to: `category = 'prank'`).
        constants = {
            name: bind.effective_value
            if (proc := processed(name)) is None
            else proc(bind.effective_value)
            for name, bind in compiled.binds.items()
            if name not in processors
        }
        params = (
            list(compiled.positiontup)
            if compiled.positiontup is not None
            else [*expanded, *self._scalars, *constants]
        )
        sources: list[tuple[str, str, int]] = []  # (parameter, list or scalar name, index)
        for param in params:
            if param in expanded:
                sources.append((param, *expanded[param]))
            elif param in self._scalars:
                sources.append((param, param, -1))
            elif param in constants:
                sources.append((param, "", -1))
            else:
                raise ValueError(f"statement parameter {param!r} has no value")
        return _Query(
            compiled.string,
            sources,
            {k: v for k, v in processors.items() if v is not None},
            constants,
            positional=compiled.positiontup is not None,
        )

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The rows for `params` (each list non-empty)."""
        if set(params) != {*self._lists, *self._scalars}:
            raise ValueError(f"parameters {sorted(params)} are not {self._lists + self._scalars}")
        lists = {name: list(params[name]) for name in self._lists}
        if not all(lists.values()):
            raise ValueError("every list needs at least one value")
        sizes = tuple(1 << (len(v) - 1).bit_length() for v in lists.values())
        q = self._for(conn.dialect, sizes)
        values: dict[str, Any] = {}
        for (name, vs), n in zip(lists.items(), sizes, strict=True):
            vs += [vs[-1]] * (n - len(vs))
            proc = q.processors.get(name)
            values[name] = [proc(v) for v in vs] if proc is not None else vs
        for name in self._scalars:
            proc = q.processors.get(name)
            values[name] = proc(params[name]) if proc is not None else params[name]
        flat = [
            q.constants[param] if not name else values[name] if i < 0 else values[name][i]
            for param, name, i in q.sources
        ]
        driver_params: Any = (
            flat
            if q.positional
            else {param: v for (param, _, _), v in zip(q.sources, flat, strict=True)}
        )
        cursor = conn.connection.cursor()
        try:
            cursor.execute(q.sql, driver_params)
            return [tuple(r) for r in cursor.fetchall()]
        except conn.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                q.sql, driver_params, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
            ) from exc
        finally:
            cursor.close()


@dataclass(frozen=True)
class _Query:
    sql: str
    #: Each rendered parameter in SQL order: (its name, the list or scalar its value comes
    #: from, the list index or -1); an empty source name means one of `constants`.
    sources: list[tuple[str, str, int]]
    processors: dict[str, Any]
    constants: dict[str, Any]
    positional: bool
