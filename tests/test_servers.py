"""The database servers from scripts/db-servers.sh really work: connect, DDL, DML, through SQLAlchemy.

Skipped when OXICACHE_PG_URL / OXICACHE_MYSQL_URL are unset; failed instead under
OXICACHE_REQUIRE_SERVERS=1 (CI). See tests/servers.py.
"""

import uuid

import pytest
from servers import MYSQL_URL_ENV, PG_URL_ENV, make_engine, require_server


@pytest.mark.parametrize("url_env", [PG_URL_ENV, MYSQL_URL_ENV], ids=["postgresql", "mariadb"])
def test_server_round_trip(url_env):
    url = require_server(url_env)
    import sqlalchemy as sa

    engine = make_engine(url)
    metadata = sa.MetaData()
    # A fresh name per run: a table left behind by an interrupted run never collides.
    table = sa.Table(
        f"oxicache_probe_{uuid.uuid4().hex[:12]}",
        metadata,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("hits", sa.BigInteger, nullable=False, default=0),
    )
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            metadata.create_all(conn)
            conn.execute(
                table.insert(),
                [
                    {"key": "a", "value": b"\x00\x01\xff", "hits": 2**40},
                    {"key": "b", "value": b"", "hits": 0},
                ],
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.key)).all()
            assert [tuple(r) for r in rows] == [("a", b"\x00\x01\xff", 2**40), ("b", b"", 0)]
    finally:
        with engine.begin() as conn:
            metadata.drop_all(conn)
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table(table.name)
        engine.dispose()
