//! NDJSON files (plain or gzip), one event per line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use flate2::read::MultiGzDecoder;
use groundtruth_event::{Reject, RejectCode, SourcePosition, DEAD_LETTER_RAW_PREFIX};
use indicatif::{ProgressBar, ProgressStyle};

use crate::counts::IngestCounts;
use crate::error::IngestError;
use crate::ingestor::Ingestor;

/// What a file ingest did.
#[derive(Debug, Default, Clone)]
pub struct FileIngestStats {
    pub files: usize,
    pub lines: u64,
    pub blank_lines: u64,
    pub counts: IngestCounts,
    pub seconds: f64,
}

/// Counts bytes read from the underlying file (for progress on `.gz`).
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn is_gzip(path: &Path) -> Result<bool, IngestError> {
    let mut magic = [0u8; 2];
    let mut f = File::open(path).map_err(|source| IngestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let n = f.read(&mut magic).map_err(|source| IngestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

/// Calls `f(line_number, kept_bytes, full_length)` for every line of
/// `reader`. At most `max` bytes of a line are kept in memory; the rest is
/// skipped but counted, so a huge line costs no more than `max` bytes.
pub(crate) fn for_each_line(
    mut reader: impl BufRead,
    max: usize,
    mut f: impl FnMut(u64, &[u8], usize) -> Result<(), IngestError>,
) -> std::io::Result<Result<u64, IngestError>> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut len = 0usize;
    let mut line_no = 0u64;
    let mut pending = false;
    loop {
        let avail = reader.fill_buf()?;
        if avail.is_empty() {
            if pending {
                line_no += 1;
                if let Err(e) = f(line_no, trim_cr(&buf), trimmed_len(&buf, len)) {
                    return Ok(Err(e));
                }
            }
            return Ok(Ok(line_no));
        }
        let (chunk, consumed, end) = match memchr::memchr(b'\n', avail) {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        len += chunk.len();
        pending = true;
        reader.consume(consumed);
        if end {
            line_no += 1;
            if let Err(e) = f(line_no, trim_cr(&buf), trimmed_len(&buf, len)) {
                return Ok(Err(e));
            }
            buf.clear();
            len = 0;
            pending = false;
        }
    }
}

fn trim_cr(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r").unwrap_or(b)
}

fn trimmed_len(buf: &[u8], len: usize) -> usize {
    if buf.len() == len && buf.ends_with(b"\r") {
        len - 1
    } else {
        len
    }
}

/// Ingests NDJSON files (plain or gzip, detected by content) into the
/// ingestor's lake, flushing by size and once at the end. Shows a progress
/// bar on a terminal when `progress` is set.
pub fn ingest_files(
    ing: &mut Ingestor,
    paths: &[PathBuf],
    progress: bool,
) -> Result<FileIngestStats, IngestError> {
    let started = Instant::now();
    let before = ing.totals();
    let total_bytes: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = if progress {
        let b = ProgressBar::new(total_bytes);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut stats = FileIngestStats::default();
    let max = ing.decode_options().max_event_bytes;
    let mut done_bytes = 0u64;
    for path in paths {
        let read_err = |source| IngestError::Read {
            path: path.clone(),
            source,
        };
        bar.set_message(path.display().to_string());
        let counter = Arc::new(AtomicU64::new(0));
        let file = File::open(path).map_err(read_err)?;
        let counting = Counting {
            inner: file,
            read: counter.clone(),
        };
        let reader: Box<dyn BufRead> = if is_gzip(path)? {
            Box::new(BufReader::with_capacity(
                1 << 20,
                MultiGzDecoder::new(counting),
            ))
        } else {
            Box::new(BufReader::with_capacity(1 << 20, counting))
        };
        let display = path.display().to_string();
        let mut blank = 0u64;
        let result = for_each_line(reader, max, |line, kept, full_len| {
            if kept.iter().all(u8::is_ascii_whitespace) && full_len == kept.len() {
                blank += 1;
                return Ok(());
            }
            let position = || SourcePosition::File {
                path: display.clone(),
                line,
            };
            if full_len > max {
                let reject = Reject {
                    code: RejectCode::TooLarge,
                    field: None,
                    detail: format!(
                        "line is {full_len} bytes, over the limit of {max} bytes (ingest.max_event_bytes); the first {} bytes are kept",
                        kept.len().min(DEAD_LETTER_RAW_PREFIX)
                    ),
                };
                ing.reject(kept, full_len, &position(), &reject);
            } else {
                ing.accept(kept, position);
            }
            if line % 4096 == 0 {
                bar.set_position(done_bytes + counter.load(Ordering::Relaxed));
            }
            if ing.over_size() {
                ing.flush()?;
            }
            Ok(())
        })
        .map_err(read_err)?;
        let lines = result?;
        done_bytes += counter.load(Ordering::Relaxed);
        bar.set_position(done_bytes);
        stats.files += 1;
        stats.lines += lines;
        stats.blank_lines += blank;
    }
    ing.flush()?;
    bar.finish_and_clear();
    stats.counts = ing.totals().since(&before);
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(u64, Vec<u8>, usize)> {
        let mut out = Vec::new();
        for_each_line(BufReader::with_capacity(7, input), max, |n, kept, len| {
            out.push((n, kept.to_vec(), len));
            Ok(())
        })
        .unwrap()
        .unwrap();
        out
    }

    #[test]
    fn splits_lines_across_buffer_refills() {
        let got = lines(b"alpha\r\nbeta-gamma-delta\n\nlast", 100);
        assert_eq!(
            got,
            vec![
                (1, b"alpha".to_vec(), 5),
                (2, b"beta-gamma-delta".to_vec(), 16),
                (3, b"".to_vec(), 0),
                (4, b"last".to_vec(), 4),
            ]
        );
    }

    #[test]
    fn long_lines_keep_a_prefix_and_their_length() {
        let mut input = vec![b'x'; 1000];
        input.extend_from_slice(b"\nok\n");
        let got = lines(&input, 10);
        assert_eq!(got[0], (1, vec![b'x'; 10], 1000));
        assert_eq!(got[1], (2, b"ok".to_vec(), 2));
        assert_eq!(got.len(), 2);
    }
}
