//! Fixtures shared by the SQL tests (`slt`, `sql`): a lake built from an
//! NDJSON fixture, and a review store filled from a `.review.json` file.

use std::path::{Path, PathBuf};

use groundtruth_event::DecodeOptions;
use groundtruth_ingest::{ingest_files, FlushPolicy, Ingestor};
use groundtruth_lake::{LakeOptions, LakeWriter};
use groundtruth_store::{CaseQuery, Principal, ReviewStore, Scope, Verdict};
use groundtruth_tests::repo;

/// Builds the lake of one fixture file (once per process and fixture).
pub fn fixture_lake(fixture: &Path) -> PathBuf {
    static LAKES: std::sync::Mutex<Vec<(PathBuf, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut lakes = LAKES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, dir)) = lakes.iter().find(|(f, _)| f == fixture) {
        return dir.clone();
    }
    let dir = {
        let stem = fixture.file_stem().unwrap_or_default().to_string_lossy();
        let dir = std::env::temp_dir().join(format!("gt-slt-{stem}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lake = LakeWriter::open(&dir, LakeOptions::default()).expect("open fixture lake");
        let mut ing = Ingestor::new(
            lake,
            DecodeOptions::default(),
            FlushPolicy::default(),
            "file",
        );
        ingest_files(&mut ing, &[fixture.to_path_buf()], false).expect("ingest fixture");
        dir
    };
    lakes.push((fixture.to_path_buf(), dir.clone()));
    dir
}

/// Loads `tests/fixtures/NAME.review.json` into `store`: findings (each with
/// the end of the window that produced it) and inspectors' decisions (by an
/// account of the case).
pub async fn load_review(store: &ReviewStore, name: &str) -> Result<(), String> {
    let path = repo().join(format!("tests/fixtures/{name}.review.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for f in doc["findings"].as_array().into_iter().flatten() {
        let version =
            chrono::DateTime::parse_from_rfc3339(f["version"].as_str().unwrap_or_default())
                .map_err(|e| format!("{}: version: {e}", path.display()))?
                .timestamp_micros();
        let finding: groundtruth_finding::Finding = serde_json::from_value(f["finding"].clone())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        store
            .upsert_findings(version, &[finding])
            .await
            .map_err(|e| e.to_string())?;
    }
    for d in doc["decisions"].as_array().into_iter().flatten() {
        let q = CaseQuery {
            account: d["account"].as_str().map(String::from),
            limit: 1,
            ..Default::default()
        };
        let case = store
            .list_cases(&Scope::nationwide(), &q)
            .await
            .map_err(|e| e.to_string())?
            .items
            .pop()
            .ok_or_else(|| format!("{}: no case names {}", path.display(), d["account"]))?;
        let verdict =
            Verdict::parse(d["verdict"].as_str().unwrap_or_default()).map_err(|e| e.to_string())?;
        store
            .record_verdict(
                &Principal::system(),
                case.case_id,
                verdict,
                d["note"].as_str().unwrap_or_default(),
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Every string value (of 4 or more bytes) of `fixture`'s events outside
/// region `scope` that no event inside has: what no answer or error given
/// to a caller of `scope` may quote. (Not every test binary that includes
/// this file uses it.)
#[allow(dead_code)]
pub fn foreign_values(fixture: &Path, scope: &str) -> std::collections::BTreeSet<String> {
    let events: Vec<serde_json::Value> = std::fs::read_to_string(fixture)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let values = |inside: bool| -> std::collections::BTreeSet<String> {
        events
            .iter()
            .filter(|e| e["region"].as_str().unwrap_or("").starts_with(scope) == inside)
            .filter_map(|e| e.as_object())
            .flat_map(|e| e.values())
            .filter_map(|v| v.as_str())
            .filter(|s| s.len() >= 4)
            .map(String::from)
            .collect()
    };
    let inside = values(true);
    values(false).difference(&inside).cloned().collect()
}
