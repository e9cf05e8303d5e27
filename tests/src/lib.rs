//! Test support for groundtruth's end-to-end tests.
//!
//! * [`Broker`]: a real [tansu](https://crates.io/crates/tansu) Kafka broker
//!   per test (in-memory storage, free loopback port, killed on drop), with
//!   [`Broker::create_topic`], [`Broker::pause`] / [`Broker::resume`] for
//!   outage drills.
//! * [`ChildGuard`], [`kill9`]: run `groundtruth ingest` (or anything) as a
//!   child process that is killed when the test ends, and SIGKILL it
//!   mid-stream to test crash recovery.
//! * [`Postgres`]: a real PostgreSQL server (Debian's package) on a free
//!   port, a fresh database per test.
//! * [`free_port`]: a free TCP port on 127.0.0.1.
//! * [`wire`]: a tiny dependency-free Kafka protocol probe (ApiVersions,
//!   Metadata) used for readiness checks.
//!
//! tansu must be installed: `tests/run.sh` does it, or
//! `cargo install tansu --version 0.6.0 --locked --features dynostore`;
//! `$TANSU_BIN` overrides where it is looked up.

pub mod broker;
pub mod disk;
pub mod http;
pub mod postgres;
pub mod process;
pub mod wire;

pub use broker::{free_port, tansu_bin, wait_out_session, Broker, STORAGE_ENGINE, TANSU_VERSION};
pub use disk::{fill_disk, Tmpfs};
pub use postgres::Postgres;
pub use process::{kill9, send_signal, spawn_tied, was_sigkilled, ChildGuard};

/// The `groundtruth` binary built beside the running test
/// (`target/<profile>/groundtruth`; `$GROUNDTRUTH_BIN` overrides).
/// `tests/run.sh` builds it before the tests.
pub fn groundtruth_bin() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("GROUNDTRUTH_BIN") {
        return std::path::PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> → target/<profile>/groundtruth
    exe.parent()
        .and_then(std::path::Path::parent)
        .map(|d| d.join("groundtruth"))
        .unwrap_or_else(|| std::path::PathBuf::from("groundtruth"))
}

/// The repository root. Read from `CARGO_MANIFEST_DIR` at run time (cargo
/// and nextest set it for tests): the compile-time value baked into this
/// library can belong to another checkout sharing the build cache.
/// Every file under `dir` (recursively) whose extension is `ext`, sorted.
pub fn files_under(dir: &std::path::Path, ext: &str) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, ext: &str, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, ext, out);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, ext, &mut out);
    out.sort();
    out
}

pub fn repo() -> std::path::PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.join("..")
}

/// Runs `groundtruth ARGS` as a user would (warnings only in the log, no
/// config file from the environment) and collects its output.
pub fn run_groundtruth(args: &[&str]) -> std::io::Result<std::process::Output> {
    std::process::Command::new(groundtruth_bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("GROUNDTRUTH_CONFIG")
        .output()
}

/// Peak resident memory of this process so far (VmHWM), MB; 0 where
/// `/proc` is missing.
pub fn peak_rss_mb() -> f64 {
    proc_status_mb("VmHWM:")
}

/// This process's resident memory now, MB.
pub fn rss_mb() -> f64 {
    proc_status_mb("VmRSS:")
}

/// CPU time (user and system) this process has used, seconds; 0 where
/// `/proc` is missing.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // utime and stime: fields 14 and 15, counted after the command name's
    // closing parenthesis (it may hold spaces), in clock ticks of 1/100 s.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

/// A `kB` line of `/proc/self/status`, in MB (0 when unreadable).
fn proc_status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `psql` (Debian's postgresql-client, installed by `tests/run.sh`) signed
/// in to the wire protocol on 127.0.0.1:`port` with `token` as password:
/// no psqlrc, unaligned tuples only, no TLS. Add `-c SQL` or `-f FILE`.
pub fn psql(port: u16, token: &str) -> std::process::Command {
    let mut c = std::process::Command::new("psql");
    c.args([
        "-X",
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-p",
    ])
    .arg(port.to_string())
    .args(["-U", "analyst", "-d", "groundtruth"])
    .env("PGPASSWORD", token)
    .env("PGSSLMODE", "disable")
    .env("PGCONNECT_TIMEOUT", "10");
    c
}
