//! A new lake filled at once, for offline runs and tests: from a
//! simulation ([`simulate_into`]) or from NDJSON lines ([`ingest_lines`]),
//! with default options.

use std::path::Path;

use groundtruth_event::{DecodeOptions, SourcePosition};
use groundtruth_lake::{LakeOptions, LakeWriter};

use crate::{FlushPolicy, IngestError, Ingestor};

/// Simulates `scenario` into a new lake at `dir`; returns the labels.
#[cfg(feature = "simulator")]
pub fn simulate_into(
    scenario: &groundtruth_sim::Scenario,
    dir: &Path,
) -> Result<groundtruth_sim::SimSummary, IngestError> {
    let mut ing = new_lake_ingestor(dir, "simulator")?;
    crate::ingest_simulation(&mut ing, scenario)
}

/// An ingestor with default options into a new lake at `dir`, its input
/// counted as `source` ("file", "simulator").
fn new_lake_ingestor(dir: &Path, source: &'static str) -> Result<Ingestor, IngestError> {
    let lake = LakeWriter::open(dir, LakeOptions::default())?;
    Ok(Ingestor::new(
        lake,
        DecodeOptions::default(),
        FlushPolicy::default(),
        source,
    ))
}

/// Ingests NDJSON `lines` (positions named after `source`) into a new lake
/// at `dir`, as a file would be.
pub fn ingest_lines(dir: &Path, source: &str, lines: &[String]) -> Result<(), IngestError> {
    let mut ing = new_lake_ingestor(dir, "file")?;
    for (i, l) in lines.iter().enumerate() {
        ing.accept(l.as_bytes(), || SourcePosition::File {
            path: source.into(),
            line: i as u64 + 1,
        });
        if ing.over_size() {
            ing.flush()?;
        }
    }
    ing.flush()?;
    Ok(())
}
