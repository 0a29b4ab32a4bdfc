"""DatabaseCache's tag index: a table ``<table>_tags`` of ``(tag, key)`` rows (its primary key is the
index), so ``invalidate(tags=[...])`` is one ``DELETE ... WHERE key IN (SELECT key FROM <table>_tags
WHERE tag IN (...))``, not a scan of every row.

A tagged entry's rows are written after its row (another statement: a crash between them leaves an
entry without index rows, which invalidate then misses; never a wrong value). Rows of entries removed
or expired otherwise stay until an invalidate of their tag deletes them; a key stored again without
that tag may then be removed too: a miss, never a wrong value. ``clear()`` empties the index.
Stores made before the index existed get the table at open; their earlier entries are not indexed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oxicache.backends._sql import index_name

if TYPE_CHECKING:
    from sqlalchemy import Table

__all__ = ["build_tags_table", "delete_tagged", "delete_tags", "insert_tag"]

MAX_TAG = 255


def build_tags_table(sa: Any, table: str, dialect: str) -> Table:
    options = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"} if dialect == "mysql" else {}
    tags: Table = sa.Table(
        index_name(table, "tags"),
        sa.MetaData(),
        sa.Column("tag", sa.String(MAX_TAG), primary_key=True),
        sa.Column("key", sa.String(32), primary_key=True),
        **options,
    )
    return tags


def insert_tag(sa: Any, tags: Table, dialect: str) -> Any:
    """Insert one ``(tag, key)`` row, doing nothing when it exists."""
    values = {"tag": sa.bindparam("tag"), "key": sa.bindparam("key")}
    if dialect == "mysql":
        return sa.insert(tags).values(values).prefix_with("IGNORE")
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(tags).values(values).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(tags).values(values).on_conflict_do_nothing()


def delete_tagged(sa: Any, table: Table, tags: Table, n: int) -> Any:
    """The one statement removing every entry with any of ``n`` tags (``t0`` .. ``t{n-1}``)."""
    names = [sa.bindparam(f"t{i}") for i in range(n)]
    return sa.delete(table).where(table.c.key.in_(sa.select(tags.c.key).where(tags.c.tag.in_(names))))


def delete_tags(sa: Any, tags: Table, n: int) -> Any:
    """The index rows of ``n`` tags, once their entries are gone."""
    return sa.delete(tags).where(tags.c.tag.in_([sa.bindparam(f"t{i}") for i in range(n)]))
