//! Child-process helpers: spawning children that cannot outlive the test
//! process, a [`ChildGuard`] that kills on drop, [`kill9`], and signals.
//!
//! # Why a dedicated spawner thread
//!
//! Dropping a guard kills the child when a test passes *or panics*, but not
//! when the test process itself is killed (e.g. nextest's `terminate-after`
//! sends SIGTERM/SIGKILL). To avoid orphans in that case too, every child
//! spawned through [`spawn_tied`] gets `PR_SET_PDEATHSIG = SIGKILL`.
//! Linux delivers that signal when the *thread* that forked the child exits,
//! not the process, so children are forked from one long-lived helper thread
//! that lives as long as the test process. A `Broker` may therefore be started
//! from any thread (a tokio blocking thread, a `static`, ...) safely.

// The only unsafe code in this crate: `prctl`/`getppid` in a pre-exec hook
// and `kill(2)` for SIGSTOP/SIGCONT. Each use carries a SAFETY comment.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Channel to the long-lived spawner thread (see module docs).
fn spawner() -> Result<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let lock = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("groundtruth-tests-spawner".into())
            .spawn(move || {
                // Lives until the process exits: the receiver never closes
                // because the sender is stored in a `static`.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the groundtruth-tests spawner thread");
        Mutex::new(tx)
    });
    let guard = lock
        .lock()
        .map_err(|_| anyhow::anyhow!("spawner mutex poisoned"))?;
    Ok(guard.clone())
}

/// Spawns `cmd` so that the child is SIGKILLed by the kernel if the test
/// process dies (Linux `PR_SET_PDEATHSIG`), in addition to whatever guard
/// the caller holds. Returns the raw [`Child`]; wrap it in a [`ChildGuard`]
/// (or use [`ChildGuard::spawn`]) so it is also killed on drop.
pub fn spawn_tied(mut cmd: Command) -> Result<Child> {
    let program = format!("{:?}", cmd.get_program());
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited before exec"));
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()?
        .send((cmd, reply_tx))
        .map_err(|_| anyhow::anyhow!("spawner thread is gone"))?;
    reply_rx
        .recv()
        .context("spawner thread dropped the request")?
        .with_context(|| format!("failed to spawn {program}"))
}

/// Sends `signal` to process `pid`.
pub fn send_signal(pid: u32, signal: libc::c_int) -> Result<()> {
    let pid_t = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid_t, signal) };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("kill({pid}, signal {signal}) failed"));
    }
    Ok(())
}

/// Kills `child` with SIGKILL (no chance to flush or clean up, like a power
/// cut or the OOM killer) and reaps it. Returns its exit status, which is
/// "killed by signal 9" unless the child had already exited on its own.
pub fn kill9(child: &mut Child) -> Result<ExitStatus> {
    if let Some(status) = child.try_wait().context("try_wait on child")? {
        return Ok(status); // already exited; nothing to kill
    }
    // std's Child::kill sends SIGKILL on Unix.
    child
        .kill()
        .with_context(|| format!("SIGKILL to pid {}", child.id()))?;
    child
        .wait()
        .with_context(|| format!("waiting for killed pid {}", child.id()))
}

/// Waits up to `timeout` for `child` to exit; `Ok(None)` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("try_wait on child")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// True when `status` says the process was killed by SIGKILL.
pub fn was_sigkilled(status: &ExitStatus) -> bool {
    status.signal() == Some(libc::SIGKILL)
}

/// Owns a child process and SIGKILLs + reaps it when dropped (also when the
/// test panics). Derefs to [`Child`] for `id()`, `stdout`, `try_wait()`...
///
/// ```no_run
/// use groundtruth_tests::{kill9, ChildGuard};
/// let mut cmd = std::process::Command::new("sleep");
/// cmd.arg("60");
/// let mut ingest = ChildGuard::spawn(cmd)?;
/// // ... let it work, then simulate a crash:
/// let status = ingest.kill9()?;
/// assert!(groundtruth_tests::was_sigkilled(&status));
/// # anyhow::Ok(())
/// ```
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Takes ownership of an already spawned child.
    pub fn new(child: Child) -> Self {
        Self { child: Some(child) }
    }

    /// Spawns `cmd` with [`spawn_tied`] (killed even if the test process is
    /// SIGKILLed) and guards it.
    pub fn spawn(cmd: Command) -> Result<Self> {
        Ok(Self::new(spawn_tied(cmd)?))
    }

    /// SIGKILLs and reaps the child now; see [`kill9`].
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        kill9(self.child_mut()?)
    }

    /// Waits up to `timeout` for a clean exit; `Ok(None)` if still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        wait_timeout(self.child_mut()?, timeout)
    }

    /// Releases the child without killing it.
    pub fn into_inner(mut self) -> Child {
        self.child
            .take()
            .expect("ChildGuard always holds a child until dropped")
    }

    fn child_mut(&mut self) -> Result<&mut Child> {
        match self.child.as_mut() {
            Some(c) => Ok(c),
            None => bail!("ChildGuard no longer holds a child"),
        }
    }
}

impl std::ops::Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.child
            .as_ref()
            .expect("ChildGuard always holds a child until dropped")
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("ChildGuard always holds a child until dropped")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Err(e) = kill9(child) {
                eprintln!("ChildGuard: could not kill pid {}: {e:#}", child.id());
            }
        }
    }
}
