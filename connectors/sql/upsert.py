"""Dialect-native upsert statements for interface tables.

One statement per set of columns, run with executemany (psycopg pipelines it,
PyMySQL folds it into a multi-row INSERT). Columns an op does not mention are
*merged* while the staged row is still waiting (two partial updates before the
import job runs both reach the ERP) and *cleared* once the ERP has processed
the row (stale values from an earlier op are never imported again). Databases
without a native upsert use the generic path in :mod:`connectors.sql.writer`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Table, case, literal_column, null
from sqlalchemy.sql.dml import Insert

NATIVE_DIALECTS = ("postgresql", "sqlite", "mysql", "mariadb")


def native_upsert(
    dialect: str,
    table: Table,
    key: Sequence[Column],
    set_columns: Sequence[str],
    clear_when_final: Sequence[Column],
    status: Column,
    final_statuses: Sequence[Any],
) -> Insert:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` / ``ON DUPLICATE KEY UPDATE`` for the given columns.

    ``set_columns`` take the new values; ``clear_when_final`` become NULL when the
    existing row's status is final, else keep their value.
    """
    # Inline literals, not parameters: executemany cannot expand an IN list, and PyMySQL's
    # multi-row rewrite refuses placeholders after VALUES. Settings restrict status values to
    # letters, digits, '_' and '-' (or integers), so quoting them here is safe.
    is_final = status.in_([literal_column(_sql_literal(value)) for value in final_statuses])
    cleared = [(c.name, case((is_final, null()), else_=c)) for c in clear_when_final]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as my_insert

        stmt = my_insert(table)
        # MySQL evaluates assignments left to right against the *updated* row: the CASEs must
        # read the old status, so they go first and the status column goes last.
        ordered = sorted(set_columns, key=lambda name: name == status.name)
        return stmt.on_duplicate_key_update([*cleared, *((name, stmt.inserted[name]) for name in ordered)])
    else:
        raise ValueError(f"no native upsert for dialect {dialect!r}")
    stmt = insert(table)
    assignments: dict[str, Any] = {name: stmt.excluded[name] for name in set_columns}
    assignments.update(dict(cleared))
    return stmt.on_conflict_do_update(index_elements=list(key), set_=assignments)


def _sql_literal(value: str | int) -> str:
    return str(int(value)) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"
