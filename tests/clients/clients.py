#!/usr/bin/env python3
"""The analysts' own clients against groundtruth's PostgreSQL wire protocol.

Each check uses a real client library the way an analyst would, unchanged:
psycopg 3 and psycopg 2 (parameters, server-side cursors, COPY TO STDOUT),
SQLAlchemy 2 (both drivers, the inspector), pandas.read_sql and Polars
(through connectorx and through SQLAlchemy). Run by tests/tests/sql.rs
against a server it starts, with:

    GT_PG_PORT   the wire protocol's port on 127.0.0.1
    GT_TOKEN     an analyst token (the password; any user name)
    GT_EVENTS    count(*) of events the token's scope holds
    GT_CHECKS    optional: comma-separated names of checks to run

Prints one JSON line per check ({"check", "ok", "error"}) and exits 1 if
any failed. Needs the packages of tests/clients/requirements.txt.
"""

import io
import json
import os
import sys
import traceback

HOST = "127.0.0.1"
PORT = int(os.environ["GT_PG_PORT"])
TOKEN = os.environ["GT_TOKEN"]
EVENTS = int(os.environ["GT_EVENTS"])
CONNINFO = dict(host=HOST, port=PORT, user="analyst", password=TOKEN,
                dbname="groundtruth", sslmode="disable")
URL = f"analyst:{TOKEN}@{HOST}:{PORT}/groundtruth?sslmode=disable"

CHECKS = []


def check(name):
    def register(f):
        CHECKS.append((name, f))
        return f
    return register


@check("psycopg3 query and parameters")
def psycopg3_query():
    import psycopg
    with psycopg.connect(**CONNINFO) as c:
        assert c.execute("SELECT count(*) FROM events").fetchone()[0] == EVENTS
        kinds = c.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall()
        assert sum(n for _, n in kinds) == EVENTS, kinds
        kind, n = kinds[0]
        got = c.execute("SELECT count(*) FROM events WHERE kind = %s", (kind,)).fetchone()[0]
        assert got == n, (kind, got, n)
        assert c.execute("SELECT current_database()").fetchone()[0] == "groundtruth"


@check("psycopg3 server-side cursor")
def psycopg3_named_cursor():
    import psycopg
    with psycopg.connect(**CONNINFO) as c:
        with c.cursor(name="gt_events") as cur:
            cur.execute("SELECT event_id FROM events")
            seen = 0
            while True:
                rows = cur.fetchmany(37)
                if not rows:
                    break
                seen += len(rows)
        assert seen == EVENTS, (seen, EVENTS)


@check("psycopg3 COPY TO STDOUT text")
def psycopg3_copy_text():
    import psycopg
    with psycopg.connect(**CONNINFO) as c:
        with c.cursor() as cur:
            with cur.copy("COPY (SELECT event_id, kind FROM events) TO STDOUT") as cp:
                rows = list(cp.rows())
        assert len(rows) == EVENTS, len(rows)
        assert all(len(r) == 2 and r[0] for r in rows), rows[:3]


@check("psycopg3 COPY TO STDOUT binary")
def psycopg3_copy_binary():
    import psycopg
    with psycopg.connect(**CONNINFO) as c:
        with c.cursor() as cur:
            sql = "COPY (SELECT kind, count(*) AS n FROM events GROUP BY kind) TO STDOUT (FORMAT BINARY)"
            with cur.copy(sql) as cp:
                cp.set_types(["text", "int8"])
                rows = list(cp.rows())
            # No rows: the signature and the trailer, nothing else.
            empty = "COPY (SELECT event_id FROM events WHERE false) TO STDOUT (FORMAT BINARY)"
            with cur.copy(empty) as cp:
                cp.set_types(["text"])
                none = list(cp.rows())
        assert sum(n for _, n in rows) == EVENTS, rows
        assert none == [], none


@check("psycopg2 query, parameters, named cursor, copy_expert")
def psycopg2_all():
    import psycopg2
    c = psycopg2.connect(**CONNINFO)
    try:
        cur = c.cursor()
        cur.execute("SELECT count(*) FROM events WHERE kind <> %s", ("no such kind",))
        assert cur.fetchone()[0] == EVENTS
        named = c.cursor(name="gt_named")
        named.itersize = 50
        named.execute("SELECT event_id FROM events")
        assert sum(1 for _ in named) == EVENTS
        named.close()
        buf = io.StringIO()
        cur.copy_expert("COPY (SELECT event_id FROM events) TO STDOUT WITH (FORMAT csv, HEADER)", buf)
        lines = buf.getvalue().splitlines()
        assert lines[0] == "event_id", lines[:2]
        assert len(lines) == EVENTS + 1, len(lines)
        buf = io.StringIO()
        cur.copy_expert("COPY (SELECT event_id FROM events WHERE false) TO STDOUT WITH (FORMAT csv, HEADER)", buf)
        assert buf.getvalue() == "event_id\n", repr(buf.getvalue())
    finally:
        c.close()


@check("SQLAlchemy with psycopg 3")
def sqlalchemy_psycopg3():
    from sqlalchemy import create_engine, text
    engine = create_engine("postgresql+psycopg://" + URL)
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM events")).scalar() == EVENTS
        n = c.execute(text("SELECT count(*) FROM events WHERE kind <> :k"), {"k": "none"}).scalar()
        assert n == EVENTS


@check("SQLAlchemy with psycopg2")
def sqlalchemy_psycopg2():
    from sqlalchemy import create_engine, text
    engine = create_engine("postgresql+psycopg2://" + URL)
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM events")).scalar() == EVENTS


@check("SQLAlchemy inspector: tables and views")
def sqlalchemy_inspector():
    from sqlalchemy import create_engine, inspect
    engine = create_engine("postgresql+psycopg://" + URL)
    insp = inspect(engine)
    tables = insp.get_table_names()
    assert "events" in tables, tables
    assert not any(t.startswith("review_") for t in tables), tables
    views = insp.get_view_names()
    assert "cases" in views and "account_days" in views, views
    assert insp.has_table("events") and not insp.has_table("review_cases")


@check("SQLAlchemy inspector: columns, keys, indexes")
def sqlalchemy_reflection():
    from sqlalchemy import create_engine, inspect
    for driver in ("psycopg", "psycopg2"):
        insp = inspect(create_engine(f"postgresql+{driver}://" + URL))
        cols = {c["name"]: c for c in insp.get_columns("events")}
        assert {"event_id", "ts", "event_date", "lat", "kind"} <= set(cols), cols
        assert str(cols["event_date"]["type"]) == "DATE", cols["event_date"]
        assert str(cols["lat"]["type"]) == "DOUBLE PRECISION", cols["lat"]
        assert cols["event_id"]["default"] is None
        view = [c["name"] for c in insp.get_columns("account_days")]
        assert "account_id" in view, view
        assert insp.get_pk_constraint("events")["constrained_columns"] == []
        assert insp.get_indexes("events") == []
        assert insp.get_foreign_keys("events") == []
        assert insp.get_unique_constraints("events") == []


@check("pandas.read_sql_table")
def pandas_read_sql_table():
    import pandas as pd
    from sqlalchemy import create_engine
    for driver in ("psycopg", "psycopg2"):
        engine = create_engine(f"postgresql+{driver}://" + URL)
        df = pd.read_sql_table("events", engine)
        assert len(df) == EVENTS, len(df)
        assert str(df["ts"].dtype).startswith("datetime64"), df.dtypes
        days = pd.read_sql_table("account_days", engine, columns=["account_id", "day"])
        assert list(days.columns) == ["account_id", "day"], days.columns


@check("information_schema as dashboards read it")
def information_schema_types():
    # Grafana's and Metabase's query builders pick time and number columns
    # by information_schema.columns.data_type.
    import psycopg
    with psycopg.connect(**CONNINFO) as c:
        rows = dict(c.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = %s", ("events",)).fetchall())
        assert rows["ts"] == "timestamp with time zone", rows
        assert rows["event_date"] == "date" and rows["lat"] == "double precision", rows
        assert rows["event_id"] == "text", rows
        udt = c.execute("SELECT udt_name FROM information_schema.columns "
                        "WHERE table_name = 'events' AND column_name = 'ts'").fetchone()[0]
        assert udt == "timestamptz", udt


@check("pandas.read_sql")
def pandas_read_sql():
    import pandas as pd
    from sqlalchemy import create_engine
    engine = create_engine("postgresql+psycopg://" + URL)
    df = pd.read_sql("SELECT kind, count(*) AS n FROM events GROUP BY kind", engine)
    assert int(df["n"].sum()) == EVENTS, df
    df = pd.read_sql_query("SELECT event_id, ts FROM events WHERE kind <> %(k)s", engine,
                           params={"k": "none"})
    assert len(df) == EVENTS and str(df["ts"].dtype).startswith("datetime64"), df.dtypes


@check("Polars through connectorx")
def polars_connectorx():
    import polars as pl
    df = pl.read_database_uri("SELECT kind, count(*) AS n FROM events GROUP BY kind",
                              "postgresql://" + URL)
    assert df["n"].sum() == EVENTS, df


@check("Polars through SQLAlchemy")
def polars_sqlalchemy():
    import polars as pl
    from sqlalchemy import create_engine
    engine = create_engine("postgresql+psycopg://" + URL)
    with engine.connect() as c:
        df = pl.read_database("SELECT event_id, ts FROM events", c)
    assert df.height == EVENTS, df


def main():
    only = {c for c in os.environ.get("GT_CHECKS", "").split(",") if c}
    failed = 0
    for name, f in CHECKS:
        if only and name not in only:
            continue
        try:
            f()
            print(json.dumps({"check": name, "ok": True}), flush=True)
        except Exception as e:  # every failure is reported, the rest still run
            failed += 1
            print(json.dumps({"check": name, "ok": False,
                              "error": f"{type(e).__name__}: {e}"[:2000],
                              "trace": traceback.format_exc()[-3000:]}), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
