//! A real PostgreSQL server per test process: `initdb` into a temporary
//! directory, `postgres` on a free loopback port (no durability settings:
//! tests want speed), killed when dropped. Each test takes a fresh database
//! from [`Postgres::database`].
//!
//! The server comes from Debian's `postgresql` package (`tests/run.sh`
//! installs it); `$PG_BIN` names another `bin/` directory. PostgreSQL
//! refuses to run as root, so under root the server runs as the `postgres`
//! user the package creates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::ChildGuard;

/// A running server.
pub struct Postgres {
    _child: ChildGuard,
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    user: Option<&'static str>,
}

/// The `bin/` directory of the newest installed PostgreSQL.
pub fn pg_bin() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("PG_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (/usr/lib/postgresql is missing): run tests/run.sh, or apt-get install postgresql, or set PG_BIN")?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .context("no PostgreSQL server binary under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false)
}

impl Postgres {
    /// Starts a server (about a second).
    pub fn start() -> Result<Postgres> {
        let bin = pg_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("groundtruth-pg-")
            .tempdir()
            .context("cannot create a directory for PostgreSQL")?;
        let user = is_root().then_some("postgres");
        if let Some(u) = user {
            let ok = Command::new("chown")
                .args(["-R", &format!("{u}:{u}")])
                .arg(dir.path())
                .status()
                .context("chown")?
                .success();
            if !ok {
                bail!(
                    "cannot give {} to the `{u}` user (is the postgresql package installed?)",
                    dir.path().display()
                );
            }
        }
        let data = dir.path().join("data");
        let out = command(&bin, "initdb", user)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "gt",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ])
            .output()
            .context("cannot run initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port = crate::free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log"))?;
        // The server runs as `user` directly (not under runuser), so the
        // guard's signals reach the postmaster itself.
        let mut cmd = Command::new(bin.join("postgres"));
        if let Some(u) = user {
            let (uid, gid) = ids(u)?;
            std::os::unix::process::CommandExt::uid(&mut cmd, uid);
            std::os::unix::process::CommandExt::gid(&mut cmd, gid);
        }
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=128MB",
            ])
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = ChildGuard::spawn(cmd)?;
        let pg = Postgres {
            _child: child,
            dir,
            port,
            bin,
            user,
        };
        let started = Instant::now();
        loop {
            let ready = Command::new(pg.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "gt",
                    "-d",
                    "postgres",
                ])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ready {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "PostgreSQL did not accept connections within 30 s:\n{}",
                    pg.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(pg)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new, empty database; returns its URL.
    pub fn database(&self) -> Result<String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://gt@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs one SQL command with `psql`.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "gt",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ])
            .output()
            .context("cannot run psql")?;
        if !out.status.success() {
            bail!(
                "psql `{sql}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn runs_as(&self) -> Option<&'static str> {
        self.user
    }
}

/// The uid and gid of a user.
fn ids(user: &str) -> Result<(u32, u32)> {
    let get = |flag: &str| -> Result<u32> {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .context("id")?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .with_context(|| format!("no user `{user}` (install the postgresql package)"))
    };
    Ok((get("-u")?, get("-g")?))
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate shutdown: the postmaster stops its backends and exits;
        // the guard's SIGKILL follows if it has not within 5 s.
        let pid = self._child.id();
        let _ = crate::process::send_signal(pid, libc::SIGQUIT);
        let _ = self._child.wait_timeout(Duration::from_secs(5));
    }
}

/// `bin/NAME`, run as `user` when given (under root).
fn command(bin: &Path, name: &str, user: Option<&str>) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(bin.join(name));
            c
        }
        None => Command::new(bin.join(name)),
    }
}
