//! Buffers accepted events per partition and writes them durably.

use groundtruth_telemetry::{metric, InternalEvent};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use groundtruth_event::{
    date32_to_string, dead_letter_schema, event_schema, local_date, string_to_date32, DeadLetter,
    DeadLetterBatchBuilder, EventBatchBuilder, RawEvent,
};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::compact::{self, CompactStats};
use crate::dedup::{load_dead_letter_keys, position_key, EventKeys, KeySet};
use crate::error::{IoContext, LakeError};
use crate::files::{publish, write_parquet};
use crate::layout::{parquet_files, LakeLayout};
use crate::options::LakeOptions;

/// Outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    New,
    /// Already in the lake or in the buffer: dropped.
    Duplicate,
}

/// What one [`LakeWriter::flush`] did.
#[derive(Debug, Default, Clone)]
pub struct FlushStats {
    pub events: usize,
    pub dead_letters: usize,
    pub files: usize,
    pub bytes: u64,
    pub compaction: CompactStats,
}

/// The writer of a lake directory: its sole writer, or one member of
/// several (each with its own name, files and compactions).
pub struct LakeWriter {
    layout: LakeLayout,
    opts: LakeOptions,
    _lock: File,
    _member_lock: Option<File>,
    /// date → app_id → rows
    partitions: HashMap<i32, HashMap<String, EventBatchBuilder>>,
    dead: HashMap<i32, DeadLetterBatchBuilder>,
    event_ids: EventKeys,
    dead_keys: KeySet,
    buffered_events: usize,
    buffered_dead: usize,
    buffered_bytes: usize,
    file_prefix: String,
    seq: u64,
    /// Set when the stored keys of a day could not be read: the key sets
    /// may miss stored events, so the writer refuses to flush (a restart or
    /// [`resync`](Self::resync) reloads them).
    poisoned: Option<String>,
    /// Batches cut from the buffers by a flush and not yet written (a flush
    /// failed, e.g. on a full disk): the next flush writes them first, in
    /// order, so a failed flush can simply be retried.
    unwritten: std::collections::VecDeque<Unwritten>,
    /// Readers in this process hold it shared while they query; compaction
    /// (which replaces files) only runs when it can take it exclusively,
    /// and is otherwise put off to a later flush.
    gate: ReadGate,
    deferred: Vec<PathBuf>,
}

/// Shared by the lake writer and the readers of the same process: see
/// [`LakeWriter::read_gate`].
pub type ReadGate = std::sync::Arc<std::sync::RwLock<()>>;

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl LakeWriter {
    /// Opens (creating if needed) the lake at `dir`: takes its lock,
    /// finishes or rolls back interrupted compactions, removes half-written
    /// files and loads the keys already stored.
    pub fn open(dir: impl Into<PathBuf>, opts: LakeOptions) -> Result<LakeWriter, LakeError> {
        if let Some(m) = &opts.member {
            if !crate::layout::valid_member(m) {
                return Err(LakeError::Member { name: m.clone() });
            }
        }
        let layout = LakeLayout::for_member(dir, opts.member.as_deref());
        std::fs::create_dir_all(layout.root()).ctx("create directory", layout.root())?;
        // A sole writer holds LOCK exclusively; members hold it shared and
        // their own LOCK.<member> exclusively.
        let lock = lock_file(&layout, &layout.lock_file(), layout.member().is_some())?;
        let member_lock = match layout.member_lock_file() {
            Some(p) => Some(lock_file(&layout, &p, false)?),
            None => None,
        };
        layout.create_dirs()?;
        compact::recover(&layout)?;

        let started = Instant::now();
        let (event_ids, dead_keys) = load_keys(&layout, opts.dedup_days)?;
        tracing::info!(
            lake = %layout.root().display(),
            events = event_ids.len(),
            dead_letters = dead_keys.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "lake opened"
        );
        let file_prefix = format!(
            "{}{:016x}-{}",
            layout.file_prefix(),
            now_micros(),
            std::process::id()
        );
        Ok(LakeWriter {
            layout,
            opts,
            _lock: lock,
            _member_lock: member_lock,
            partitions: HashMap::new(),
            dead: HashMap::new(),
            event_ids,
            dead_keys,
            buffered_events: 0,
            buffered_dead: 0,
            buffered_bytes: 0,
            file_prefix,
            seq: 0,
            poisoned: None,
            unwritten: Default::default(),
            gate: ReadGate::default(),
            deferred: Vec::new(),
        })
    }

    /// Hold this shared (`read()`) while querying the lake from another
    /// thread: new files appear atomically, but compaction replaces small
    /// files by a merged one, and waits (to a later flush) while any
    /// reader holds the gate.
    pub fn read_gate(&self) -> ReadGate {
        self.gate.clone()
    }

    pub fn layout(&self) -> &LakeLayout {
        &self.layout
    }

    pub fn options(&self) -> &LakeOptions {
        &self.opts
    }

    /// Event ids held in memory for deduplication (the latest
    /// `dedup_days` days' events, stored or buffered).
    pub fn known_events(&self) -> usize {
        self.event_ids.len()
    }

    /// Drops everything buffered and reloads the keys from the lake on
    /// disk, so the writer holds exactly what is stored. For a member of a
    /// shared lake after a Kafka rebalance: the buffered rows are re-read
    /// from the committed offsets (by this writer or another), and the
    /// other members' files written since the open are deduplicated
    /// against. Clears an earlier failed flush (the caller re-reads
    /// everything not stored).
    pub fn resync(&mut self) -> Result<(), LakeError> {
        // A sole writer with nothing buffered and no failed flush already
        // holds exactly the stored keys (nobody else writes): no reload,
        // e.g. at its first Kafka assignment right after the open.
        if self.layout.member().is_none() && self.buffered_rows() == 0 && self.poisoned.is_none() {
            return Ok(());
        }
        self.partitions.clear();
        self.dead.clear();
        self.unwritten.clear();
        self.buffered_events = 0;
        self.buffered_dead = 0;
        self.buffered_bytes = 0;
        let (event_ids, dead_keys) = load_keys(&self.layout, self.opts.dedup_days)?;
        self.event_ids = event_ids;
        self.dead_keys = dead_keys;
        self.poisoned = None;
        tracing::info!(
            lake = %self.layout.root().display(),
            events = self.event_ids.len(),
            dead_letters = self.dead_keys.len(),
            "lake writer resynchronised with the stored files"
        );
        Ok(())
    }

    /// Events and dead letters waiting for [`flush`](Self::flush).
    pub fn buffered_rows(&self) -> usize {
        self.buffered_events + self.buffered_dead
    }

    /// Approximate bytes of source messages waiting for a flush.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Buffers an accepted event unless its `event_id` is already known.
    pub fn append_event(&mut self, e: &RawEvent<'_>, source_len: usize) -> Appended {
        let date = local_date(e.ts_micros, self.opts.zone);
        let layout = &self.layout;
        match self
            .event_ids
            .insert(date, KeySet::key(e.event_id.as_bytes()), |d| {
                load_day_ids(layout, d)
            }) {
            Ok(true) => {}
            Ok(false) => return Appended::Duplicate,
            Err(err) => {
                // The day's ids could not be read: keep the event, and
                // refuse to flush (a restart reloads and retries).
                self.poisoned = Some(format!(
                    "cannot read the stored event ids of {} to deduplicate: {err}",
                    date32_to_string(date)
                ));
            }
        }
        let apps = self.partitions.entry(date).or_default();
        let builder = match apps.get_mut(e.app_id.as_ref()) {
            Some(b) => b,
            None => apps
                .entry(e.app_id.to_string())
                .or_insert_with(|| EventBatchBuilder::new(self.opts.zone)),
        };
        builder.append(e, source_len);
        self.buffered_events += 1;
        self.buffered_bytes += source_len;
        Appended::New
    }

    /// Buffers a dead letter unless the same source position is already
    /// stored (a redelivered bad message).
    pub fn append_dead_letter(&mut self, d: &DeadLetter<'_>) -> Appended {
        let p = d.position;
        let key = position_key(p.kind(), p.source(), p.partition(), p.offset());
        if !self.dead_keys.insert(key) {
            return Appended::Duplicate;
        }
        let date = local_date(d.received_at_micros, self.opts.zone);
        self.dead
            .entry(date)
            .or_insert_with(|| DeadLetterBatchBuilder::new(self.opts.zone))
            .append(d);
        self.buffered_dead += 1;
        self.buffered_bytes += d.raw.len().min(groundtruth_event::DEAD_LETTER_RAW_PREFIX);
        Appended::New
    }

    /// Writes every buffered row to Parquet, durably (fsync of files and
    /// directories), then compacts the partitions it touched if they hold
    /// too many small files. When this returns `Ok`, everything appended so
    /// far survives a crash.
    pub fn flush(&mut self) -> Result<FlushStats, LakeError> {
        if let Some(why) = &self.poisoned {
            return Err(LakeError::Poisoned {
                path: self.layout.root().to_path_buf(),
                why: why.clone(),
            });
        }
        // Cut every buffer into a batch, queued behind any batch an earlier
        // flush could not write.
        for (date, apps) in std::mem::take(&mut self.partitions) {
            let day = date32_to_string(date);
            for (app, mut builder) in apps {
                if !builder.is_empty() {
                    let batch = builder.finish()?;
                    let dir = self.layout.event_partition(&day, &app);
                    self.unwritten.push_back(Unwritten {
                        dir,
                        batch,
                        dead: false,
                    });
                }
            }
        }
        for (date, mut builder) in std::mem::take(&mut self.dead) {
            if !builder.is_empty() {
                let batch = builder.finish()?;
                let dir = self.layout.dead_letter_partition(&date32_to_string(date));
                self.unwritten.push_back(Unwritten {
                    dir,
                    batch,
                    dead: true,
                });
            }
        }
        let mut stats = FlushStats::default();
        let mut touched = Vec::new();
        while let Some(u) = self.unwritten.pop_front() {
            let schema = if u.dead {
                dead_letter_schema()
            } else {
                event_schema()
            };
            match self.write_file(&u.dir, &u.batch, schema) {
                Ok(bytes) => {
                    let rows = u.batch.num_rows();
                    stats.bytes += bytes;
                    stats.files += 1;
                    if u.dead {
                        stats.dead_letters += rows;
                        self.buffered_dead -= rows;
                    } else {
                        stats.events += rows;
                        self.buffered_events -= rows;
                    }
                    touched.push(u.dir);
                }
                Err(e) => {
                    // Keep it and what follows for the next flush; compact
                    // what was written then.
                    self.unwritten.push_front(u);
                    self.deferred.append(&mut touched);
                    return Err(e);
                }
            }
        }
        self.buffered_bytes = 0;
        touched.append(&mut self.deferred);
        touched.sort();
        touched.dedup();
        let gate = self.gate.clone();
        let exclusive = match gate.try_write() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if exclusive.is_none() {
            // A reader is querying: compact these partitions next time.
            self.deferred = touched;
            self.event_ids.evict();
            return Ok(stats);
        }
        for dir in touched {
            match self.compact_partition(&dir) {
                Ok(c) => stats.compaction.add(&c),
                Err(e) => {
                    // The flush itself succeeded: the rows are stored in
                    // small files. Undo the half-done merge and try again
                    // at a later flush.
                    CompactionFailed {
                        dir: &dir,
                        error: &e,
                    }
                    .emit();
                    if let Err(e) = compact::recover(&self.layout) {
                        CompactionFailed {
                            dir: &dir,
                            error: &e,
                        }
                        .emit();
                    }
                    self.deferred.push(dir);
                }
            }
        }
        self.event_ids.evict();
        Ok(stats)
    }

    /// Compacts every partition of the lake that holds small files.
    pub fn compact_all(&mut self) -> Result<CompactStats, LakeError> {
        let mut total = CompactStats::default();
        for root in [self.layout.events_dir(), self.layout.dead_letters_dir()] {
            let mut dirs: Vec<PathBuf> = parquet_files(&root)?
                .into_iter()
                .filter_map(|f| f.parent().map(Path::to_path_buf))
                .collect();
            dirs.dedup();
            for dir in dirs {
                let c = self.compact_partition_min(&dir, 2)?;
                total.add(&c);
            }
        }
        Ok(total)
    }

    fn compact_partition(&mut self, dir: &Path) -> Result<CompactStats, LakeError> {
        self.compact_partition_min(dir, self.opts.compact_min_files)
    }

    fn compact_partition_min(
        &mut self,
        dir: &Path,
        min_files: usize,
    ) -> Result<CompactStats, LakeError> {
        let name = self.next_file_name();
        compact::compact_dir(
            &self.layout,
            dir,
            &self.opts,
            min_files,
            &name,
            self.writer_props(),
        )
    }

    fn next_file_name(&mut self) -> String {
        self.seq += 1;
        format!("{}-{:08}.parquet", self.file_prefix, self.seq)
    }

    fn writer_props(&self) -> WriterProperties {
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(self.opts.row_group_rows))
            .build()
    }

    /// Writes `batch` as a new file in `dir` atomically; returns its size.
    fn write_file(
        &mut self,
        dir: &Path,
        batch: &RecordBatch,
        schema: SchemaRef,
    ) -> Result<u64, LakeError> {
        let name = self.next_file_name();
        let tmp = self.layout.tmp_dir().join(format!("{name}.tmp"));
        let props = self.writer_props();
        let written = write_parquet(&tmp, schema, std::iter::once(Ok(batch.clone())), props)
            .and_then(|()| publish(&tmp, dir, &name));
        let dest = dir.join(&name);
        match written {
            Ok(bytes) => Ok(bytes),
            // Moved into place, only the directory's fsync failed: the rows
            // are in the lake (written again they would be there twice).
            Err(e) if dest.exists() => {
                tracing::warn!(file = %dest.display(), error = %e, "stored a lake file but could not sync its directory");
                Ok(std::fs::metadata(&dest).map_or(0, |m| m.len()))
            }
            Err(e) => {
                // Free what the partial file took (a full disk).
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// Takes `path` as a lock file: shared or exclusive.
fn lock_file(layout: &LakeLayout, path: &Path, shared: bool) -> Result<File, LakeError> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ctx("open", path)?;
    let got = if shared {
        lock.try_lock_shared()
    } else {
        lock.try_lock()
    };
    match got {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(LakeError::Locked {
            path: layout.root().to_path_buf(),
            lock: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(e).ctx("lock", path),
    }
}

/// The keys the lake on disk holds: the latest days' event ids and every
/// dead letter's position.
fn load_keys(layout: &LakeLayout, dedup_days: i32) -> Result<(EventKeys, KeySet), LakeError> {
    let mut event_ids = EventKeys::new(dedup_days);
    let dates = stored_dates(layout)?;
    for d in event_ids.days_to_load(&dates) {
        let ids = load_day_ids(layout, d)?;
        event_ids.load_day(d, ids);
    }
    let dead_keys = relisting(|| {
        let mut keys = KeySet::default();
        for f in parquet_files(&layout.dead_letters_dir())? {
            load_dead_letter_keys(&mut keys, &f)?;
        }
        Ok(keys)
    })?;
    Ok((event_ids, dead_keys))
}

/// The local dates (days since 1970) that have an events partition.
fn stored_dates(layout: &LakeLayout) -> Result<Vec<i32>, LakeError> {
    let dir = layout.events_dir();
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).ctx("list", &dir),
    };
    for entry in entries {
        let entry = entry.ctx("list", &dir)?;
        let name = entry.file_name();
        if let Some(d) = name.to_str().and_then(string_to_date32) {
            out.push(d);
        }
    }
    Ok(out)
}

/// The event ids stored for one local date (every app).
fn load_day_ids(layout: &LakeLayout, date: i32) -> Result<KeySet, LakeError> {
    let dir = layout.events_dir().join(date32_to_string(date));
    relisting(|| {
        let mut ids = KeySet::default();
        if dir.is_dir() {
            for f in parquet_files(&dir)? {
                ids.load_string_column(&f, "event_id")?;
            }
        }
        Ok(ids)
    })
}

/// Runs `load` (which lists files and reads them) again when a listed file
/// is gone: another member of a shared lake compacted it meanwhile, and a
/// new listing finds the merged file.
fn relisting<T>(mut load: impl FnMut() -> Result<T, LakeError>) -> Result<T, LakeError> {
    let mut attempt = 0;
    loop {
        match load() {
            Err(LakeError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound
                    && attempt < crate::VANISHED_RETRIES =>
            {
                std::thread::sleep(crate::vanished_delay(attempt));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A batch a flush cut from the buffers and has not written yet.
struct Unwritten {
    dir: PathBuf,
    batch: RecordBatch,
    dead: bool,
}

/// Compacting a partition failed after a flush stored its rows; the merge
/// was undone and is tried again at a later flush.
struct CompactionFailed<'a> {
    dir: &'a Path,
    error: &'a LakeError,
}

impl InternalEvent for CompactionFailed<'_> {
    fn emit(self) {
        tracing::warn!(partition = %self.dir.display(), error = %self.error, "lake compaction failed; the small files stay until a later flush merges them");
        metrics::counter!(metric::LAKE_COMPACTION_FAILURES.name).increment(1);
    }
}
