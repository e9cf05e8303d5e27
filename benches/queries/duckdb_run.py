"""DuckDB over the same Parquet files: times each query in benches/queries.

usage: duckdb_run.py LAKE_EVENTS_GLOB QUERY_DIR REPEATS [PREFIX,PREFIX...]
Prints one JSON object: {"version", "queries": {name: {"best_s", "rows"}}}.
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
print(json.dumps({"version": duckdb.__version__, "queries": out}))
