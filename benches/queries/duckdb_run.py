"""DuckDB over the same Parquet files: times each query in benches/queries.

usage: duckdb_run.py LAKE_EVENTS_GLOB QUERY_DIR REPEATS [PREFIX,PREFIX...]
                     [BASE_DIR SQL_DIR VIEW,VIEW...]
With BASE_DIR (one Parquet file per table the views read besides
`events`, e.g. the review store's, empty), SQL_DIR (groundtruth's sql/)
and views to time: the view definitions are created in DuckDB as they
are (each file in turn, those whose dependencies are missing again until
nothing changes) and each named view is timed as `SELECT * FROM view`.
Prints one JSON object: {"version", "queries": {name: {"best_s", "rows"}},
"views": {name: {"best_s", "rows"}}, "view_errors": {name: message}}.
"""
import json
import pathlib
import sys
import time

import duckdb

glob, qdir, repeats = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3])
prefixes = [p.strip() for p in (sys.argv[4] if len(sys.argv) > 4 else "").split(",") if p.strip()]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{glob}', union_by_name = true)")
out = {}
for q in sorted(qdir.glob("q*.sql")):
    if prefixes and not any(q.stem.startswith(p) for p in prefixes):
        continue
    sql = q.read_text()
    best, rows = None, 0
    for _ in range(repeats):
        t = time.perf_counter()
        rows = len(con.execute(sql).fetchall())
        s = time.perf_counter() - t
        best = s if best is None else min(best, s)
    out[q.stem] = {"best_s": best, "rows": rows}
views, view_errors = {}, {}
if len(sys.argv) > 7 and sys.argv[7]:
    base, sql_dir = pathlib.Path(sys.argv[5]), pathlib.Path(sys.argv[6])
    for f in sorted(base.glob("*.parquet")):
        con.execute(f"CREATE VIEW {f.stem} AS SELECT * FROM read_parquet('{f}')")
    # groundtruth's scalar function, as DuckDB SQL (crates/groundtruth-detect
    # views.rs: great-circle metres between two WGS84 points).
    con.execute(
        "CREATE MACRO haversine_m(lat1, lon1, lat2, lon2) AS "
        "2 * 6371008.8 * asin(sqrt(least(1.0, pow(sin(radians(lat2 - lat1) / 2), 2) "
        "+ cos(radians(lat1)) * cos(radians(lat2)) * pow(sin(radians(lon2 - lon1) / 2), 2))))"
    )
    # The views use arrow_cast only for a date's day number (Date32 as Int32).
    con.execute("CREATE MACRO arrow_cast(x, t) AS CAST(x - DATE '1970-01-01' AS INTEGER)")
    # `at` is a keyword in DuckDB: the one column named so, quoted.
    pending = {f.stem: f.read_text().replace(" author, at,", ' author, "at",')
               for f in sorted(sql_dir.glob("*.sql"))}
    errors = {}
    while pending:
        done = []
        for name, text in pending.items():
            try:
                con.execute(text)
                done.append(name)
            except duckdb.Error as e:
                errors[name] = str(e).splitlines()[0]
        if not done:
            break
        for name in done:
            pending.pop(name)
            errors.pop(name, None)
    for name in pending:
        print(f"DuckDB: view file {name}.sql: {errors.get(name)}", file=sys.stderr)
    for v in [v for v in sys.argv[7].split(",") if v]:
        if v in pending:
            view_errors[v] = errors.get(v, "not defined")
            continue
        best, rows = None, 0
        for _ in range(repeats):
            t = time.perf_counter()
            rows = len(con.execute(f"SELECT * FROM {v}").fetchall())
            s = time.perf_counter() - t
            best = s if best is None else min(best, s)
        views[v] = {"best_s": best, "rows": rows}
print(json.dumps({"version": duckdb.__version__, "queries": out, "views": views,
                  "view_errors": view_errors}))
