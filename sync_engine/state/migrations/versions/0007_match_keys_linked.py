"""match_keys: the systems a record was linked in when its keys were written (``linked``)

A record of system S cannot take a namesake that already has a record in S. A common company name has
thousands of namesakes, and checking each one's links was a random read of the links index per namesake:
74 % of a first sync's time near a million accounts. The column rules most of them out from the key's
own index entry. On SQLite the table becomes WITHOUT ROWID so that the column sits in the primary key's
B-tree (a rowid table would read each namesake's row, a random page again).

Existing keys get the systems their records are linked in now.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: " a b " for a record linked in a and b (how sync_engine.records.linked_text writes it); "" if none.
#: A name holding a space is not listed (" a b " would read as the system "a b"), and a list longer than
#: the column is left empty: a name left out only costs the old check of that namesake's links.
_BACKFILL = {
    "sqlite": (
        "COALESCE((SELECT CASE WHEN length(s) <= 253 THEN ' ' || s || ' ' END FROM"
        " (SELECT group_concat(system, ' ') AS s FROM (SELECT DISTINCT l.system FROM links l"
        " WHERE l.entity = match_keys.entity AND l.canonical_id = match_keys.canonical_id"
        " AND instr(l.system, ' ') = 0))), '')"
    ),
    "postgresql": (
        "COALESCE((SELECT CASE WHEN length(s) <= 253 THEN ' ' || s || ' ' END FROM"
        " (SELECT string_agg(DISTINCT l.system, ' ') AS s FROM links l"
        " WHERE l.entity = match_keys.entity AND l.canonical_id = match_keys.canonical_id"
        " AND strpos(l.system, ' ') = 0) AS agg), '')"
    ),
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "CREATE TABLE match_keys_new ("
            " entity VARCHAR(64) NOT NULL, field VARCHAR(64) NOT NULL, value VARCHAR(255) NOT NULL,"
            " canonical_id VARCHAR(64) NOT NULL, linked VARCHAR(255) DEFAULT '' NOT NULL,"
            " CONSTRAINT pk_match_keys PRIMARY KEY (entity, field, value, canonical_id)) WITHOUT ROWID"
        )
        op.execute(
            "INSERT INTO match_keys_new (entity, field, value, canonical_id, linked)"
            f" SELECT entity, field, value, canonical_id, {_BACKFILL['sqlite']} FROM match_keys"
        )
        op.drop_index("ix_match_keys_record", table_name="match_keys")
        op.execute("DROP TABLE match_keys")
        op.execute("ALTER TABLE match_keys_new RENAME TO match_keys")
    else:
        op.add_column("match_keys", sa.Column("linked", sa.String(255), nullable=False, server_default=""))
        op.execute(f"UPDATE match_keys SET linked = {_BACKFILL[dialect]}")
        return
    op.create_index("ix_match_keys_record", "match_keys", ["entity", "canonical_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TABLE match_keys_old ("
            " entity VARCHAR(64) NOT NULL, field VARCHAR(64) NOT NULL, value VARCHAR(255) NOT NULL,"
            " canonical_id VARCHAR(64) NOT NULL,"
            " CONSTRAINT pk_match_keys PRIMARY KEY (entity, field, value, canonical_id))"
        )
        op.execute(
            "INSERT INTO match_keys_old (entity, field, value, canonical_id)"
            " SELECT entity, field, value, canonical_id FROM match_keys"
        )
        op.drop_index("ix_match_keys_record", table_name="match_keys")
        op.execute("DROP TABLE match_keys")
        op.execute("ALTER TABLE match_keys_old RENAME TO match_keys")
        op.create_index("ix_match_keys_record", "match_keys", ["entity", "canonical_id"])
    else:
        op.drop_column("match_keys", "linked")
