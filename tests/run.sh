#!/usr/bin/env bash
# groundtruth's test command (see README): `tests/run.sh [NEXTEST ARGS...]`.
#
# Installs, only when missing, what the tests need:
#   * Debian packages to build rdkafka's bundled librdkafka (and zlib);
#   * PostgreSQL (Debian's server package): the review-store tests start
#     their own server on a free port as the `postgres` user;
#   * tansu 0.6.0 (features dynostore, libsql), the Kafka broker the
#     end-to-end tests start (in memory; SQLite for the broker-restart drill);
#   * cargo-nextest;
#   * the analysts' Python clients (psycopg 3 and 2, SQLAlchemy, pandas,
#     Polars, connectorx), pinned in tests/clients/requirements.txt;
#   * for the pages' browser tests: Debian's chromium, CJK fonts (the pages
#     are in Chinese), node + npm, and playwright-core (`npm ci` in tests/web,
#     pinned by its package-lock.json);
# then runs `cargo nextest run --workspace --no-fail-fast "$@"` and the doc
# tests (`cargo test --workspace --doc`). Exits non-zero if anything fails.
#
# Works unattended (CI=true, no stdin) as root on a fresh Debian machine with
# Rust. Compiled artifacts go to a persistent target dir so fresh clones reuse
# them: CARGO_TARGET_DIR, default ~/.cache/groundtruth/target.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

TANSU_VERSION=0.6.0
# dynostore: the in-memory storage most tests use; libsql: SQLite storage
# for the drill that stops and restarts the broker.
TANSU_FEATURES=dynostore,libsql
# Packages rdkafka-sys needs for its bundled librdkafka (./configure + make,
# C and C++ compilers) and libz-sys for zlib; pkg-config finds zlib.
# postgresql: the server the review API tests run against; postgresql-client:
# psql, the client the analysts' SQL tests sign in with. chromium,
# fonts-noto-cjk, nodejs, npm: the pages' end-to-end tests. wrk: the load
# generator of the API benchmark (benches/run.sh --quick runs last).
# openssl: the self-signed certificate of the wire protocol's TLS test.
APT_PACKAGES=(make gcc g++ libc6-dev pkg-config zlib1g-dev postgresql postgresql-client
    chromium fonts-noto-cjk wrk openssl)
# node and npm come with the machine's Node.js; Debian's only when missing.
command -v node >/dev/null || APT_PACKAGES+=(nodejs)
command -v npm >/dev/null || APT_PACKAGES+=(npm)

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in *":$CARGO_BIN:"*) ;; *) export PATH="$CARGO_BIN:$PATH" ;; esac

log() { printf '\n==> %s\n' "$*"; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

TIMINGS=()
# step NAME CMD...: runs CMD, prints and records how long it took, and
# returns its exit status (without tripping `set -e` in the caller).
step() {
    local name=$1 t rc=0
    shift
    log "$name"
    t=$(now)
    "$@" || rc=$?
    local took
    took=$(elapsed "$t")
    if [[ $rc -eq 0 ]]; then
        TIMINGS+=("$(printf '%-28s %10s  ok' "$name" "$took")")
    else
        TIMINGS+=("$(printf '%-28s %10s  FAILED (exit %d)' "$name" "$took" "$rc")")
    fi
    printf '<== %s: %s (exit %d)\n' "$name" "$took" "$rc"
    return "$rc"
}

summary() {
    log "timings"
    printf '  %s\n' "${TIMINGS[@]}"
}

install_apt_packages() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        echo "apt packages present: ${APT_PACKAGES[*]}"
        return 0
    fi
    echo "installing apt packages: ${missing[*]}"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null; then sudo=(sudo -n); else
            echo "error: need root (or sudo) to install: ${missing[*]}" >&2
            return 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    # (`|| return`: errexit is off inside functions called from `step ... ||`.)
    "${sudo[@]}" apt-get update -q </dev/null || return
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null || return
}

tansu_version_ok() {
    local bin=$1
    [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -qw "$TANSU_VERSION"
}

# Whether cargo's install record shows tansu built with every feature in
# TANSU_FEATURES (the durable-broker drill needs `libsql`).
tansu_features_ok() {
    local record="${CARGO_HOME:-$HOME/.cargo}/.crates2.json"
    [[ -f $record ]] || return 1
    python3 - "$record" "$TANSU_VERSION" "$TANSU_FEATURES" <<'EOF'
import json, sys
record, version, wanted = sys.argv[1], sys.argv[2], set(sys.argv[3].split(","))
installs = json.load(open(record)).get("installs", {})
ok = any(k.startswith(f"tansu {version} ") and wanted <= set(v.get("features", []))
         for k, v in installs.items())
sys.exit(0 if ok else 1)
EOF
}

install_tansu() {
    local bin=${TANSU_BIN:-}
    if [[ -n $bin ]] && tansu_version_ok "$bin"; then
        echo "using TANSU_BIN=$bin ($("$bin" --version))"
        return 0
    fi
    bin=$(command -v tansu || true)
    if [[ -n $bin ]] && tansu_version_ok "$bin" && tansu_features_ok; then
        echo "tansu present: $bin ($("$bin" --version), features $TANSU_FEATURES)"
        export TANSU_BIN=$bin
        return 0
    fi
    echo "installing tansu $TANSU_VERSION with features $TANSU_FEATURES (takes a while on first run)"
    # Own temporary target dir: keep tansu's build out of the project's.
    # Thin release build: no LTO, parallel codegen (tests need a broker, not
    # the last few percent of its speed).
    env -u CARGO_TARGET_DIR CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=false \
        cargo install tansu --version "$TANSU_VERSION" --force \
        --locked --features "$TANSU_FEATURES" </dev/null || return
    bin="$CARGO_BIN/tansu"
    tansu_version_ok "$bin" || {
        echo "error: $bin --version is not $TANSU_VERSION after install" >&2
        return 1
    }
    export TANSU_BIN=$bin
}

install_nextest() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest --version | head -n1
        return 0
    fi
    echo "installing cargo-nextest"
    env -u CARGO_TARGET_DIR cargo install cargo-nextest --locked </dev/null || return
    cargo nextest --version | head -n1
}

install_web_test_deps() {
    local want have
    want=$(cd tests/web && node -p "require('./package.json').dependencies['playwright-core']")
    have=$(cd tests/web && node -p "require('./node_modules/playwright-core/package.json').version" 2>/dev/null || true)
    if [[ -n $have && $have == "$want" ]]; then
        echo "tests/web: playwright-core $have present"
        return 0
    fi
    (cd tests/web && npm ci --no-audit --no-fund </dev/null) || return
}

# Whether every package pinned in tests/clients/requirements.txt is
# installed at its version.
python_clients_ok() {
    python3 - "$1" <<'EOF'
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    try:
        if version(name.split("[")[0]) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
}

install_python_clients() {
    local req=tests/clients/requirements.txt
    if python_clients_ok "$req"; then
        echo "python clients present: $(grep -v '^#' "$req" | tr '\n' ' ')"
        return 0
    fi
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        -r "$req" </dev/null || return
}

rc=0
step "apt packages" install_apt_packages || rc=$?
step "python clients" install_python_clients || rc=$?
step "npm (tests/web)" install_web_test_deps || rc=$?
step "tansu $TANSU_VERSION" install_tansu || rc=$?
step "cargo-nextest" install_nextest || rc=$?
if [[ $rc -ne 0 ]]; then
    summary
    echo "error: could not install the test tools" >&2
    exit "$rc"
fi
# install_tansu ran in this shell, so TANSU_BIN is exported for the tests.
echo "TANSU_BIN=$TANSU_BIN"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/groundtruth/target}"
mkdir -p "$CARGO_TARGET_DIR"
echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

# The end-to-end tests run the real `groundtruth` binary: nextest builds
# only test targets, so build the binaries first.
step "cargo build (binaries)" cargo build --workspace --bins || rc=$?
step "cargo nextest run" cargo nextest run --workspace --no-fail-fast "$@" || rc=$?
step "doc tests" cargo test --workspace --doc || rc=$?
# The whole-system benchmark at small sizes, on the test build: checks the
# harness end to end and leaves target/bench-report.json. Report only: its
# timings never fail the run, and neither does a bench that breaks (its
# status is in the report and the timings below). Skipped when the tests
# were filtered (arguments given) or GT_SKIP_BENCH=1.
if [[ $# -eq 0 && ${GT_SKIP_BENCH:-0} != 1 ]]; then
    step "benchmarks --quick (report only)" benches/run.sh --quick --profile dev || true
fi

summary
exit "$rc"
