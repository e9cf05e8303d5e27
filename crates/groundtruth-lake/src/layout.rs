//! Where things live in the lake directory.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, LakeError};

/// Paths of one lake.
#[derive(Debug, Clone)]
pub struct LakeLayout {
    root: PathBuf,
    /// The writer's member name when several writers share the lake (one
    /// per live-service instance): its temporary files, compaction intents
    /// and lock are its own.
    member: Option<String>,
}

impl LakeLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LakeLayout {
            root: root.into(),
            member: None,
        }
    }

    /// The layout as seen by writer `member` of a shared lake.
    pub fn for_member(root: impl Into<PathBuf>, member: Option<&str>) -> Self {
        LakeLayout {
            root: root.into(),
            member: member.map(str::to_string),
        }
    }

    pub fn member(&self) -> Option<&str> {
        self.member.as_deref()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn events_dir(&self) -> PathBuf {
        self.root.join("events")
    }

    pub fn dead_letters_dir(&self) -> PathBuf {
        self.root.join("dead_letters")
    }

    /// Half-written files (this writer's own when it is a member).
    pub fn tmp_dir(&self) -> PathBuf {
        match &self.member {
            Some(m) => self.root.join("_tmp").join(m),
            None => self.root.join("_tmp"),
        }
    }

    /// Compaction intents (this writer's own when it is a member).
    pub fn intents_dir(&self) -> PathBuf {
        match &self.member {
            Some(m) => self.root.join("_compactions").join(m),
            None => self.root.join("_compactions"),
        }
    }

    /// Held exclusively by a sole writer, shared by members.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("LOCK")
    }

    /// Held exclusively by one member: the same member cannot run twice.
    pub fn member_lock_file(&self) -> Option<PathBuf> {
        self.member
            .as_ref()
            .map(|m| self.root.join(format!("LOCK.{m}")))
    }

    /// Name prefix of the data files this writer creates (and the only
    /// files a member compacts).
    pub fn file_prefix(&self) -> String {
        match &self.member {
            Some(m) => format!("part-{m}-"),
            None => "part-".to_string(),
        }
    }

    /// Directory of one `(date, app_id)` partition.
    pub fn event_partition(&self, date: &str, app_id: &str) -> PathBuf {
        self.events_dir().join(date).join(escape_app_id(app_id))
    }

    pub fn dead_letter_partition(&self, date: &str) -> PathBuf {
        self.dead_letters_dir().join(date)
    }

    /// Creates the directories a writer needs.
    pub fn create_dirs(&self) -> Result<(), LakeError> {
        for d in [
            self.events_dir(),
            self.dead_letters_dir(),
            self.tmp_dir(),
            self.intents_dir(),
        ] {
            std::fs::create_dir_all(&d).ctx("create directory", &d)?;
        }
        Ok(())
    }
}

/// A member name must be a short plain token: it becomes part of file and
/// directory names.
pub fn valid_member(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Longest partition directory name [`escape_app_id`] makes, in bytes
/// (file systems allow 255; the rest of the path is ours and short).
pub const MAX_PARTITION_NAME: usize = 120;

/// Makes an `app_id` safe as one path component: ASCII letters, digits,
/// `-`, `_` and `.` are kept, every other byte becomes `%XX`; a leading dot
/// is escaped too, so `..` cannot climb out of the lake. A name that would
/// be longer than [`MAX_PARTITION_NAME`] (the contract allows 128
/// characters, which escape to up to 1,536 bytes) is cut at a whole escape
/// and ends in `~` and the xxh3 hash of the whole id: `~` is always escaped
/// otherwise, so a cut name never equals a plain one, and two ids sharing
/// the kept prefix differ in the hash. The real id is in the files.
pub fn escape_app_id(app_id: &str) -> String {
    let mut out = String::with_capacity(app_id.len());
    for (i, b) in app_id.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() <= MAX_PARTITION_NAME {
        return out;
    }
    let hash = format!("~{:016x}", xxhash_rust::xxh3::xxh3_64(app_id.as_bytes()));
    let mut cut = MAX_PARTITION_NAME - hash.len();
    // Never split a `%XX` escape.
    while let Some(p) = out[..cut].rfind('%').filter(|p| p + 3 > cut) {
        cut = p;
    }
    out.truncate(cut);
    out.push_str(&hash);
    out
}

/// Lists `*.parquet` files under `dir`, recursively, sorted.
pub(crate) fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, LakeError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).ctx("list directory", &d),
        };
        for entry in entries {
            let entry = entry.ctx("list directory", &d)?;
            let path = entry.path();
            let ft = entry.file_type().ctx("stat", &path)?;
            if ft.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// fsyncs a directory so a rename inside it survives a power cut.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LakeError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .ctx("fsync directory", dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_cannot_escape() {
        assert_eq!(escape_app_id("river-chief"), "river-chief");
        assert_eq!(escape_app_id("a/b"), "a%2Fb");
        assert_eq!(escape_app_id(".."), "%2E.");
        assert_eq!(escape_app_id("智慧"), "%E6%99%BA%E6%85%A7");
        assert_ne!(escape_app_id("a b"), escape_app_id("a_b"));
    }

    #[test]
    fn long_app_ids_are_cut_to_one_bounded_name_each() {
        // The contract allows 128 characters: 128 CJK characters escape to
        // 1,536 bytes, 100 `!` to 300.
        let cjk = "智".repeat(128);
        let bangs = "!".repeat(100);
        let mut seen = std::collections::HashSet::new();
        for id in [
            cjk.clone(),
            format!("{}慧", "智".repeat(127)),
            bangs.clone(),
            format!("{bangs}?"),
            "a".repeat(128),
            format!("{}b", "a".repeat(127)),
            "a".repeat(120),
        ] {
            let name = escape_app_id(&id);
            assert!(name.len() <= MAX_PARTITION_NAME, "{id}: {name}");
            assert!(!name.starts_with('.') && !name.contains('/'), "{name}");
            // The kept part is whole escapes.
            let kept = name.split('~').next().unwrap();
            assert!(
                kept.rfind('%').is_none_or(|p| p + 3 <= kept.len()),
                "{name}"
            );
            assert!(seen.insert(name.clone()), "two ids share {name}");
            assert_eq!(escape_app_id(&id), name, "the same id, the same name");
        }
        // A short id keeps its plain name (existing lakes stay as they are).
        assert_eq!(escape_app_id("a".repeat(120).as_str()), "a".repeat(120));
    }
}
