//! Real human tracks (Microsoft Research GeoLife) as patrols, for the
//! false-accusation check: each person's fixes are cut into pieces of
//! continuous movement (gaps under 5 minutes) of 20-120 minutes, and each
//! piece is sent as `patrol_start`, `track_point`s and `patrol_end`.
//!
//! Reads the two files in `shared/data/`: `geolife_sample.txt.gz`
//! (`lat,lng,datetime,uid`, UTC) and `demodata_geolife.csv`
//! (`X;Y;fid;id;sequence;trajectory_id;tracker;t`, X = lon).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use groundtruth_finding::rfc3339_ms;
use serde_json::json;

use crate::error::EvalError;

/// Gaps of this many seconds or more end a piece.
pub const MAX_GAP_S: i64 = 300;
/// Pieces are cut at this length...
pub const MAX_PIECE_S: i64 = 120 * 60;
/// ...and dropped when shorter than this.
pub const MIN_PIECE_S: i64 = 20 * 60;

/// One fix of one person.
#[derive(Debug, Clone, Copy)]
struct Row {
    t_ms: i64,
    lat: f64,
    lon: f64,
}

fn parse_time(s: &str) -> Option<i64> {
    utc_ms(s.trim().trim_end_matches("+00"))
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) to epoch ms.
fn utc_ms(s: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

fn open(path: &Path) -> Result<Box<dyn BufRead>, EvalError> {
    let f = std::fs::File::open(path).map_err(|source| EvalError::Io {
        action: "open",
        path: path.to_path_buf(),
        source,
    })?;
    let r: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    Ok(Box::new(BufReader::new(r)))
}

fn bad(path: &Path, line: u64, message: impl Into<String>) -> EvalError {
    EvalError::Input {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// Reads every person's fixes from the files in `dir` that exist:
/// `(person, fixes)`.
fn read_people(dir: &Path) -> Result<Vec<(String, Vec<Row>)>, EvalError> {
    let mut people: std::collections::BTreeMap<String, Vec<Row>> = Default::default();
    let sample = dir.join("geolife_sample.txt.gz");
    if sample.exists() {
        for (i, line) in open(&sample)?.lines().enumerate() {
            let n = i as u64 + 1;
            let line = line.map_err(|e| bad(&sample, n, e.to_string()))?;
            if n == 1 || line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 4 {
                return Err(bad(&sample, n, "expected lat,lng,datetime,uid"));
            }
            let lat = f[0].parse().map_err(|_| bad(&sample, n, "bad lat"))?;
            let lon = f[1].parse().map_err(|_| bad(&sample, n, "bad lng"))?;
            let t_ms = parse_time(f[2]).ok_or_else(|| bad(&sample, n, "bad datetime"))?;
            people
                .entry(format!("u{}", f[3].trim()))
                .or_default()
                .push(Row { t_ms, lat, lon });
        }
    }
    let demo = dir.join("demodata_geolife.csv");
    if demo.exists() {
        for (i, line) in open(&demo)?.lines().enumerate() {
            let n = i as u64 + 1;
            let line = line.map_err(|e| bad(&demo, n, e.to_string()))?;
            if n == 1 || line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(';').collect();
            if f.len() != 8 {
                return Err(bad(
                    &demo,
                    n,
                    "expected X;Y;fid;id;sequence;trajectory_id;tracker;t",
                ));
            }
            let lon = f[0].parse().map_err(|_| bad(&demo, n, "bad X"))?;
            let lat = f[1].parse().map_err(|_| bad(&demo, n, "bad Y"))?;
            let t_ms = parse_time(f[7]).ok_or_else(|| bad(&demo, n, "bad t"))?;
            people
                .entry(format!("t{}", f[6].trim()))
                .or_default()
                .push(Row { t_ms, lat, lon });
        }
    }
    Ok(people.into_iter().collect())
}

/// Cuts one person's fixes into patrol-sized pieces.
fn pieces(mut rows: Vec<Row>) -> Vec<Vec<Row>> {
    rows.sort_by_key(|r| r.t_ms);
    rows.dedup_by_key(|r| r.t_ms);
    let mut out = Vec::new();
    let mut cur: Vec<Row> = Vec::new();
    let mut close = |cur: &mut Vec<Row>| {
        if let (Some(a), Some(b)) = (cur.first(), cur.last()) {
            if b.t_ms - a.t_ms >= MIN_PIECE_S * 1000 {
                out.push(std::mem::take(cur));
            }
        }
        cur.clear();
    };
    for r in rows {
        if let (Some(first), Some(last)) = (cur.first(), cur.last()) {
            if r.t_ms - last.t_ms >= MAX_GAP_S * 1000 || r.t_ms - first.t_ms > MAX_PIECE_S * 1000 {
                close(&mut cur);
            }
        }
        cur.push(r);
    }
    close(&mut cur);
    out
}

/// The GeoLife people in `dir` as contract events (NDJSON lines), and the
/// number of patrols.
pub fn patrol_events(dir: &Path) -> Result<(Vec<String>, usize), EvalError> {
    let people = read_people(dir)?;
    if people.is_empty() {
        return Err(EvalError::Io {
            action: "find GeoLife files in",
            path: PathBuf::from(dir),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "neither geolife_sample.txt.gz nor demodata_geolife.csv is there",
            ),
        });
    }
    let mut lines = Vec::new();
    let mut n = 0usize;
    for (person, rows) in people {
        let account = format!("geolife-{person}");
        let device = format!("geolife-dev-{person}");
        for (k, piece) in pieces(rows).into_iter().enumerate() {
            n += 1;
            let pid = format!("gl-{person}-{k:04}");
            let ev = |seq: usize, kind: &str, r: &Row| {
                let mut v = json!({
                    "event_id": format!("{pid}-{seq:06}"),
                    "ts": rfc3339_ms(r.t_ms),
                    "app_id": "geolife",
                    "account_id": account,
                    "device_id": device,
                    "kind": kind,
                    "module": "patrol",
                    "lat": r.lat,
                    "lon": r.lon,
                    "attrs": {"patrol_id": pid},
                });
                if kind != "track_point" {
                    v["session_id"] = json!(pid);
                }
                v.to_string()
            };
            let first = piece[0];
            let last = piece[piece.len() - 1];
            lines.push(ev(0, "patrol_start", &first));
            for (i, r) in piece.iter().enumerate() {
                lines.push(ev(i + 1, "track_point", r));
            }
            lines.push(ev(piece.len() + 1, "patrol_end", &last));
        }
    }
    Ok((lines, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_utc() {
        assert_eq!(utc_ms("1970-01-01 00:00:01"), Some(1000));
        assert_eq!(utc_ms("2008-10-23 05:53:05"), Some(1_224_741_185_000));
        assert_eq!(
            parse_time("2008-12-11 04:42:14+00"),
            Some(1_228_970_534_000)
        );
        assert_eq!(utc_ms("2008-10-23T05:53:05"), None);
    }

    #[test]
    fn pieces_cut_at_gaps_and_length() {
        let rows: Vec<Row> = (0..(3 * 3600 / 5))
            .map(|i| Row {
                t_ms: if i < 100 {
                    i * 5000
                } else {
                    i * 5000 + 600_000
                },
                lat: 0.0,
                lon: 0.0,
            })
            .collect();
        let p = pieces(rows);
        // 100 fixes (8 min) before the gap are too short; after it, 2h50m is
        // cut into a 2 h piece and a 50 min one.
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|x| {
            let d = x.last().unwrap().t_ms - x[0].t_ms;
            (MIN_PIECE_S * 1000..=MAX_PIECE_S * 1000).contains(&d)
        }));
    }
}
