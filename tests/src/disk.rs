//! A small disk to fill: a tmpfs mounted for a test, and a ballast file
//! that fills it (the disk-full drills).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

/// A tmpfs mounted at `dir` for the life of the value (a small disk to
/// fill). Mounting needs root (CAP_SYS_ADMIN), which the CI machine has.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `32m`) at `dir`, created if missing.
    pub fn mount(dir: &Path, size: &str) -> Result<Tmpfs> {
        std::fs::create_dir_all(dir)?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .context("run mount")?;
        ensure!(
            out.status.success(),
            "cannot mount a {size} tmpfs at {} for the disk-full drill (it needs root / CAP_SYS_ADMIN): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the file system holding `path` with a ballast file until it is
/// full; returns the bytes written.
pub fn fill_disk(path: &Path) -> Result<u64> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    let chunk = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // What the page cache still holds must hit the limit too.
    let _ = f.sync_all();
    Ok(n)
}
