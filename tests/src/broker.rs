//! [`Broker`]: a real tansu Kafka broker, one per test, on a free loopback
//! port, with in-memory storage, killed when dropped.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

use crate::process::{send_signal, wait_timeout, ChildGuard};
use crate::wire;

/// The tansu release the harness is written and tested against.
pub const TANSU_VERSION: &str = "0.6.0";

/// How to install tansu; shown when the binary cannot be found.
pub const TANSU_INSTALL_HINT: &str =
    "cargo install tansu --version 0.6.0 --locked --features dynostore,libsql \
     (or run tests/run.sh, which installs it; or set TANSU_BIN=/path/to/tansu)";

/// Storage URL passed to `tansu broker --storage-engine`: volatile,
/// per-process storage (needs tansu's `dynostore` feature). Topics and
/// offsets are lost when the broker process exits; use
/// [`Broker::pause`]/[`Broker::resume`] for outage drills, not a restart.
pub const STORAGE_ENGINE: &str = "memory://tansu/";

/// Storage URL of [`Broker::start_durable`]: a SQLite file in the broker's
/// working directory (needs tansu's `libsql` feature), kept across
/// [`Broker::stop`] and [`Broker::restart`].
pub const DURABLE_STORAGE_ENGINE: &str = "sqlite://tansu.db";

/// How long [`Broker::start`] waits for the broker to serve Kafka requests.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`Broker::create_topic`] waits for the topic to have leaders.
pub const TOPIC_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variables tansu reads as defaults for its flags; removed from
/// the broker's environment so a developer's shell cannot change the setup.
const TANSU_ENV: &[&str] = &[
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "DATA_LAKE",
];

/// Returns a TCP port on 127.0.0.1 that was free a moment ago (bound to
/// port 0, then released). Another process may grab it before it is used;
/// [`Broker::start`] retries with a new port when that happens.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot bind an ephemeral port on 127.0.0.1: {e}"))
}

/// Locates the tansu binary: `$TANSU_BIN`, else `tansu` on `$PATH`, else
/// `~/.cargo/bin/tansu`. The error says how to install it.
pub fn tansu_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("TANSU_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        if is_executable(&bin) {
            return Ok(bin);
        }
        bail!(
            "TANSU_BIN={} is not an executable file; install tansu with: {TANSU_INSTALL_HINT}",
            bin.display()
        );
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("tansu"));
    let in_cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin").join("tansu"));
    on_path
        .chain(in_cargo_home)
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            anyhow!(
                "tansu broker binary not found (looked at $TANSU_BIN, $PATH, ~/.cargo/bin). \
                 Install it with: {TANSU_INSTALL_HINT}"
            )
        })
}

/// Name prefix of broker working directories under the temp dir; the test
/// process id follows it.
const DIR_PREFIX: &str = "groundtruth-tansu-";

/// Removes broker directories left behind by test processes that no longer
/// exist (a SIGKILLed test cannot run `Drop`). Best effort.
fn sweep_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Why one start attempt failed.
enum Start {
    /// The process exited early (likely the port was taken): retry.
    Exited(anyhow::Error),
    /// Anything else: give up.
    Failed(anyhow::Error),
}

/// A running tansu broker on `127.0.0.1:<port>`, owned by one test.
///
/// Each broker has its own in-memory storage ([`STORAGE_ENGINE`]) and its own
/// working directory under the system temp dir holding `tansu.log` (stdout +
/// stderr). Dropping the `Broker` SIGKILLs and reaps the process, also when
/// the test panics (the log tail is then printed to stderr and the directory
/// kept); the process is also killed if the test process dies (see
/// [`crate::process`]).
///
/// ```no_run
/// let broker = groundtruth_tests::Broker::start()?;
/// broker.create_topic("events", 3)?;
/// let bootstrap = broker.bootstrap(); // "127.0.0.1:PORT" for rdkafka
/// broker.pause()?; // broker stops answering (SIGSTOP); connections stay open
/// broker.resume()?;
/// # let _ = bootstrap;
/// # anyhow::Ok(())
/// ```
#[derive(Debug)]
pub struct Broker {
    child: ChildGuard,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    storage: &'static str,
}

impl Broker {
    /// Finds tansu ([`tansu_bin`]), starts it on a free port and waits (up
    /// to [`START_TIMEOUT`]) until it answers a Kafka `ApiVersions` and
    /// `Metadata` request.
    pub fn start() -> Result<Broker> {
        Self::start_with(STORAGE_ENGINE)
    }

    /// As [`start`](Self::start), with durable storage
    /// ([`DURABLE_STORAGE_ENGINE`]): the broker can be [`stop`](Self::stop)ped
    /// and [`restart`](Self::restart)ed with its topics, messages and
    /// committed offsets.
    pub fn start_durable() -> Result<Broker> {
        Self::start_with(DURABLE_STORAGE_ENGINE).context(
            "starting tansu with SQLite storage (it needs tansu built with the `libsql` feature)",
        )
    }

    fn start_with(storage: &'static str) -> Result<Broker> {
        let bin = tansu_bin()?;
        let mut last_err = None;
        // A port picked by free_port() can be taken before tansu binds it.
        // Only an early exit (e.g. "address in use") is retried.
        for _attempt in 0..3 {
            match Self::start_on(&bin, free_port(), storage) {
                Ok(b) => return Ok(b),
                Err(Start::Exited(e)) => last_err = Some(e),
                Err(Start::Failed(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("broker start not attempted")))
    }

    fn start_on(bin: &Path, port: u16, storage: &'static str) -> Result<Broker, Start> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        sweep_stale_dirs();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{}-{port}-{nanos:x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir)
            .with_context(|| format!("creating {}", dir.display()))
            .map_err(Start::Failed)?;
        let log = dir.join("tansu.log");
        let child = spawn_broker(bin, port, &dir, &log, storage).map_err(Start::Failed)?;
        let mut broker = Broker {
            child,
            port,
            dir,
            log,
            bin: bin.to_path_buf(),
            storage,
        };
        match broker.wait_ready(START_TIMEOUT) {
            Ok(()) => Ok(broker),
            Err(e) => {
                let e = e.context(broker.failure_report("tansu broker did not become ready"));
                if broker.is_running() {
                    Err(Start::Failed(e))
                } else {
                    Err(Start::Exited(e))
                }
            }
        }
    }

    /// Polls until the broker answers ApiVersions and Metadata, or fails
    /// early if the process exits.
    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let addr = self.addr();
        let mut last = anyhow!("no attempt made");
        loop {
            if let Some(status) = self.child.try_wait().context("checking tansu process")? {
                bail!("tansu exited during startup with {status}");
            }
            let probe = wire::api_versions(addr, Duration::from_secs(2))
                .and_then(|_| wire::metadata(addr, Duration::from_secs(2), &[]));
            match probe {
                Ok(_) => return Ok(()),
                Err(e) => last = e,
            }
            if Instant::now() >= deadline {
                return Err(last.context(format!("not ready after {timeout:?}")));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `"127.0.0.1:PORT"`, for rdkafka's `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `"tcp://127.0.0.1:PORT"`, the form tansu's own CLI takes.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// The broker's socket address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Path of the broker's combined stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `max_lines` lines of the broker log.
    pub fn log_tail(&self, max_lines: usize) -> String {
        match fs::read_to_string(&self.log) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(max_lines)..].join("\n")
            }
            Err(e) => format!("<cannot read {}: {e}>", self.log.display()),
        }
    }

    fn failure_report(&self, what: &str) -> String {
        let mut s = format!(
            "{what} (bin {}, port {}, log {}):",
            self.bin.display(),
            self.port,
            self.log.display()
        );
        let _ = write!(s, "\n--- tansu log tail ---\n{}", self.log_tail(30));
        s
    }

    /// Creates `name` with `partitions` partitions (via `tansu topic
    /// create`) and waits, up to [`TOPIC_TIMEOUT`], until metadata shows every
    /// partition with a leader, so producing to it will not stall.
    ///
    /// Topics must be created explicitly: tansu does not auto-create them,
    /// and a producer writing to a missing topic just waits.
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        anyhow::ensure!(partitions > 0, "a topic needs at least one partition");
        let mut cmd = Command::new(&self.bin);
        cmd.args(["topic", "create", name])
            .args(["--partitions", &partitions.to_string()])
            .args(["--broker", &self.url()])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in TANSU_ENV {
            cmd.env_remove(var);
        }
        let mut child = ChildGuard::spawn(cmd).context("spawning `tansu topic create`")?;
        let status = wait_timeout(&mut child, TOPIC_TIMEOUT)?;
        let output = child.into_inner().wait_with_output();
        let describe = |status: String| {
            let (stdout, stderr) = output
                .as_ref()
                .map(|o| {
                    (
                        String::from_utf8_lossy(&o.stdout).into_owned(),
                        String::from_utf8_lossy(&o.stderr).into_owned(),
                    )
                })
                .unwrap_or_default();
            self.failure_report(&format!(
                "`tansu topic create {name} --partitions {partitions}` {status}\n\
                 stdout: {stdout}\nstderr: {stderr}"
            ))
        };
        match status {
            None => bail!(describe(format!("timed out after {TOPIC_TIMEOUT:?}"))),
            Some(s) if !s.success() => bail!(describe(format!("failed with {s}"))),
            Some(_) => {}
        }
        self.wait_topic(name, partitions as usize, TOPIC_TIMEOUT)
    }

    /// Waits until `name` exists with `partitions` partitions, all led.
    pub fn wait_topic(&self, name: &str, partitions: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = wire::metadata(self.addr(), Duration::from_secs(5), &[name]);
            match &seen {
                Ok(topics)
                    if topics
                        .iter()
                        .any(|t| t.name == name && t.is_usable(partitions)) =>
                {
                    return Ok(())
                }
                _ if Instant::now() >= deadline => {
                    bail!(self.failure_report(&format!(
                        "topic {name} not usable with {partitions} partitions after \
                         {timeout:?}; last metadata: {seen:?}"
                    )))
                }
                _ => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Lists topic names (Metadata request for all topics).
    pub fn topics(&self) -> Result<Vec<String>> {
        Ok(wire::metadata(self.addr(), Duration::from_secs(5), &[])?
            .into_iter()
            .map(|t| t.name)
            .collect())
    }

    /// Freezes the broker with SIGSTOP: it stops answering but keeps its
    /// data and its TCP connections stay open (clients see timeouts, not
    /// connection refused). In-memory tansu loses all topics if restarted,
    /// so this is the way to simulate an outage.
    pub fn pause(&self) -> Result<()> {
        send_signal(self.pid(), libc::SIGSTOP).context("pausing tansu (SIGSTOP)")
    }

    /// Resumes a [`pause`](Self::pause)d broker with SIGCONT.
    pub fn resume(&self) -> Result<()> {
        send_signal(self.pid(), libc::SIGCONT).context("resuming tansu (SIGCONT)")
    }

    /// True while the broker process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the broker process (SIGTERM, then SIGKILL after 10 s): its
    /// port refuses connections. Only a [`start_durable`](Self::start_durable)
    /// broker keeps its data for [`restart`](Self::restart).
    pub fn stop(&mut self) -> Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        send_signal(self.pid(), libc::SIGTERM).context("stopping tansu (SIGTERM)")?;
        if wait_timeout(&mut self.child, Duration::from_secs(10))?.is_none() {
            self.child.kill9().context("killing tansu after SIGTERM")?;
        }
        Ok(())
    }

    /// Starts the broker again on the same port, working directory and
    /// storage, and waits until it answers. The log continues in the same
    /// file.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.child = spawn_broker(&self.bin, self.port, &self.dir, &self.log, self.storage)?;
            match self.wait_ready(START_TIMEOUT) {
                Ok(()) => return Ok(()),
                // The old listener's port may not be free yet.
                Err(_) if !self.is_running() && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => bail!(e.context(self.failure_report("tansu did not come back"))),
            }
        }
    }
}

/// The consumers' `kafka.session_timeout_ms` by default.
pub const SESSION_TIMEOUT: Duration = Duration::from_millis(6_000);

/// Sleeps until a group member killed at `killed` has surely expired, so
/// that a replacement joins a group without it.
///
/// tansu 0.6.0 expires members lazily, on other members' requests: a
/// member that joins while the killed one is still the group's leader is
/// told to rejoin until the leader expires, and when that expiry happens
/// on its heartbeat just before its own (follower) SyncGroup, tansu takes
/// that empty SyncGroup as the leader's and forms the group with no
/// assignment at all: the replacement then reads nothing, for good (seen
/// in CI: "Kafka partitions assigned partitions=0" and no rebalance).
/// Kafka's coordinator waits for the leader's SyncGroup instead. The
/// restart path under test is the same either way.
pub fn wait_out_session(killed: std::time::Instant) {
    let until = killed + SESSION_TIMEOUT + Duration::from_secs(2);
    if let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        std::thread::sleep(left);
    }
}

/// Spawns `tansu broker` on `127.0.0.1:port` with `storage`, in `dir`,
/// appending its output to `log`.
fn spawn_broker(
    bin: &Path,
    port: u16,
    dir: &Path,
    log: &Path,
    storage: &str,
) -> Result<ChildGuard> {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone().context("duplicating log file handle")?;
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(bin);
    cmd.arg("broker")
        .args(["--listener-url", &url])
        .args(["--advertised-listener-url", &url])
        .args(["--storage-engine", storage])
        // tansu loads a `.env` from its working directory: use our own.
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for var in TANSU_ENV {
        cmd.env_remove(var);
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    ChildGuard::spawn(cmd).with_context(|| format!("spawning {} broker", bin.display()))
}

impl Drop for Broker {
    fn drop(&mut self) {
        // SIGKILL works on a SIGSTOPped process too.
        if let Err(e) = self.child.kill9() {
            eprintln!("Broker: could not kill tansu pid {}: {e:#}", self.pid());
        }
        if thread::panicking() {
            eprintln!(
                "{}\n(kept {})",
                self.failure_report("test panicked with this broker running"),
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
