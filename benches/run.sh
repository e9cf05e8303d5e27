#!/usr/bin/env bash
# groundtruth's whole-system benchmark: every bench of benches/ in one run,
# each figure beside its baseline (decode-only, a plain rdkafka consumer,
# DuckDB), a table per bench, and one JSON report.
#
#   benches/run.sh                 full sizes, release build (about 1 h)
#   benches/run.sh --quick         small sizes (a few minutes once built)
#   benches/run.sh --only sql,api  some benches only
#   benches/run.sh --profile dev   the test build instead of a release build
#                                  (CI: checks the harness, figures are only
#                                  a trend)
#
# Sizes (full / quick) are set below through each bench's variables; set
# them yourself to override (e.g. BENCH_EVENTS=2000000 benches/run.sh
# --only live). Needs what tests/run.sh installs (tansu, PostgreSQL) plus
# wrk (Debian) for the API bench and the duckdb Python package for the SQL
# comparison (installed with pip when missing; without it DataFusion runs
# alone).
#
# Writes target/bench-report.json: the machine, the commit, the mode, and
# per bench its status, wall time and its own report (target/bench-*.json).
# Exits non-zero when a bench failed to run (timings never fail it).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in *":$CARGO_BIN:"*) ;; *) export PATH="$CARGO_BIN:$PATH" ;; esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/groundtruth/target}"

MODE=full
PROFILE=release
ONLY=micro,ingest,live,behaviour,sql,api
while [[ $# -gt 0 ]]; do
    case $1 in
    --quick) MODE=quick ;;
    --profile)
        PROFILE=${2:?--profile needs release or dev}
        shift
        ;;
    --profile=*) PROFILE=${1#--profile=} ;;
    --only)
        ONLY=${2:?--only needs a comma-separated list of benches}
        shift
        ;;
    --only=*) ONLY=${1#--only=} ;;
    -h | --help)
        sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "benches/run.sh: unknown argument '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done
case $PROFILE in release | dev) ;; *)
    echo "benches/run.sh: --profile must be release or dev, not '$PROFILE'" >&2
    exit 2
    ;;
esac
IFS=, read -r -a BENCHES <<<"$ONLY"
for b in "${BENCHES[@]}"; do
    [[ -f benches/benches/$b.rs ]] || {
        echo "benches/run.sh: no bench '$b' (benches/benches/*.rs: $(cd benches/benches && ls *.rs | sed 's/\.rs$//' | tr '\n' ' '))" >&2
        exit 2
    }
done

# size VAR FULL QUICK: the bench's variable, unless the caller set it.
size() {
    local var=$1 full=$2 quick=$3
    if [[ -z ${!var:-} ]]; then
        if [[ $MODE == quick ]]; then export "$var=$quick"; else export "$var=$full"; fi
    fi
}
size BENCH_EVENTS_INGEST 500000 50000
size BENCH_EVENTS_LIVE 1000000 100000
size GT_BENCH_SIZES 1000000,10000000 100000
size GT_BENCH_EVENTS 10000000 300000
size GT_BENCH_REPEATS 2 1
size BENCH_FINDINGS 1000000 5000
size BENCH_SECONDS 20 2
size BENCH_BACKENDS sqlite,postgres sqlite,postgres

# The tools the benches compare against, when missing.
if [[ ,$ONLY, == *,api,* ]] && ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian) for the API bench"
    sudo=()
    [[ $(id -u) -ne 0 ]] && sudo=(sudo -n)
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends wrk </dev/null ||
        echo "warning: cannot install wrk: the API bench will fail" >&2
fi
if [[ ,$ONLY, == *,sql,* ]] && ! python3 -c 'import duckdb' 2>/dev/null; then
    echo "installing the duckdb Python package for the SQL comparison"
    python3 -m pip install --quiet duckdb </dev/null ||
        echo "warning: no duckdb: the SQL bench runs DataFusion alone" >&2
fi

profile_args=()
[[ $PROFILE == dev ]] && profile_args=(--profile dev)
mkdir -p target/bench-logs
rm -f target/bench-*.json

now() { date +%s.%N; }
STATUS=()
failed=0
for b in "${BENCHES[@]}"; do
    printf '\n==> bench %s (%s, %s profile)\n' "$b" "$MODE" "$PROFILE"
    extra=()
    env_args=()
    case $b in
    micro) [[ $MODE == quick ]] && extra=(-- --quick) ;;
    ingest) env_args=(BENCH_EVENTS="$BENCH_EVENTS_INGEST") ;;
    live) env_args=(BENCH_EVENTS="$BENCH_EVENTS_LIVE") ;;
    esac
    t=$(now)
    env "${env_args[@]}" cargo bench --workspace "${profile_args[@]}" --bench "$b" "${extra[@]}" \
        2>&1 | tee "target/bench-logs/$b.log"
    rc=${PIPESTATUS[0]}
    took=$(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    STATUS+=("$b $rc $took")
    [[ $rc -eq 0 ]] || failed=1
done

python3 - "$MODE" "$PROFILE" "${STATUS[@]}" <<'EOF'
import json, os, platform, subprocess, sys, datetime

mode, profile, *rows = sys.argv[1:]

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return None

mem_kb = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
report = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "commit": sh("git", "rev-parse", "--short", "HEAD"),
    "mode": mode,
    "profile": profile,
    "machine": {"cpus": os.cpu_count(), "cpu": cpu, "memory_gb": round(mem_kb / 1048576, 1),
                "kernel": platform.release(), "rustc": sh("rustc", "--version")},
    "benches": {},
}
table = []
for row in rows:
    name, rc, took = row.split()
    path = f"target/bench-{name}.json"
    own = None
    if os.path.exists(path):
        with open(path) as f:
            own = json.load(f)
    status = "ok" if rc == "0" else f"failed (exit {rc})"
    report["benches"][name] = {"status": status, "wall_s": float(took), "log": f"target/bench-logs/{name}.log", "report": own}
    table.append((name, status, took, path if own is not None else "-"))
with open("target/bench-report.json", "w") as f:
    json.dump(report, f, indent=2)
print(f"\n==> benchmark summary ({mode}, {profile} profile, commit {report['commit']}, "
      f"{report['machine']['cpus']} cpus, {report['machine']['memory_gb']} GB)")
print("| bench | status | wall s | report |")
print("|---|---|---:|---|")
for r in table:
    print("| " + " | ".join(r) + " |")
print("\nwrote target/bench-report.json (each bench's table is in its section above and in target/bench-logs/)")
EOF
exit $failed
