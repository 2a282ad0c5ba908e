"""Many rows in one INSERT whose text does not depend on how many rows there are.

A multi-row `VALUES` (what SQLAlchemy's "insertmanyvalues" sends for an executemany with
RETURNING) has a placeholder per value, so its text changes with the row count. psycopg
rewrites every statement's placeholders in Python and caches that only for short texts: for a
scoring batch's ~350 score rows that rewrite alone cost ~10 ms of worker CPU per statement.
On PostgreSQL the rows therefore travel as one array per column, unpacked by `unnest`: the
statement has one placeholder per column, is converted once, and the server prepares it.
SQLite keeps the executemany.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.expression import ColumnElement

# (table column, the statement's `excluded` pseudo-table) -> the value an ON CONFLICT sets
Update = Callable[[Any, Any], ColumnElement[Any]]


def insert_rows(
    connection: Connection,
    model: type[DeclarativeBase],
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
    update: Mapping[str, Update] | None = None,
    returning: Sequence[Any] = (),
) -> list[Row[Any]]:
    """Insert `rows` (dicts with the same keys) into `model`'s table; the RETURNING rows.

    A row whose `conflict` columns match a stored row is skipped, or, with `update`, updates
    it: `update[column](stored_column, excluded)`. Keys must be unique among `rows` when
    updating (as ON CONFLICT DO UPDATE needs). Rows are sent in their order, so writers that
    sort them take row locks in the same order.
    """
    if not rows:
        return []
    table: Any = model.__table__
    columns = list(rows[0])
    if connection.dialect.name == "postgresql":
        arrays = [
            bindparam(
                f"{name}_values",
                [row[name] for row in rows],
                type_=postgresql.ARRAY(table.c[name].type),
            )
            for name in columns
        ]
        unnested = func.unnest(*arrays).table_valued(*columns).render_derived("given")
        source = select(*(unnested.c[name] for name in columns))
        statement: Any = postgresql.insert(model).from_select(columns, source)
        parameters: Any = None
    else:
        statement = sqlite.insert(model)
        parameters = list(rows)
    if update:
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=list(conflict),
            set_={name: make(table.c[name], excluded) for name, make in update.items()},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(conflict))
    if returning:
        statement = statement.returning(*returning)
    elif parameters is not None:
        # RETURNING makes SQLAlchemy send SQLite's rows as multi-row INSERTs rather than one
        # statement per row ("insertmanyvalues"); its rows are not wanted
        statement = statement.returning(table.c[conflict[0]])
    result = connection.execute(statement, parameters)
    return list(result.all()) if returning else []
