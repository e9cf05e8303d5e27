//! The simulator as an in-process source.

use groundtruth_event::SourcePosition;
use groundtruth_sim::{simulate, Scenario, SimError, SimSink, SimSummary};

use crate::error::IngestError;
use crate::ingestor::Ingestor;

/// A [`SimSink`] that feeds an [`Ingestor`].
pub struct LakeSink<'a> {
    ing: &'a mut Ingestor,
    seq: u64,
    error: Option<IngestError>,
}

impl<'a> LakeSink<'a> {
    pub fn new(ing: &'a mut Ingestor) -> Self {
        LakeSink {
            ing,
            seq: 0,
            error: None,
        }
    }
}

impl SimSink for LakeSink<'_> {
    fn event(&mut self, _key: &str, json: &[u8]) -> Result<(), SimError> {
        self.seq += 1;
        let seq = self.seq;
        self.ing.accept(json, || SourcePosition::Simulator { seq });
        if self.ing.over_size() {
            if let Err(e) = self.ing.flush() {
                let msg = e.to_string();
                self.error = Some(e);
                return Err(SimError::Sink {
                    key: "lake".into(),
                    message: msg,
                });
            }
        }
        Ok(())
    }
}

/// Runs `scenario` straight into the lake; returns the simulator's summary
/// (with its labels).
pub fn ingest_simulation(
    ing: &mut Ingestor,
    scenario: &Scenario,
) -> Result<SimSummary, IngestError> {
    let mut sink = LakeSink::new(ing);
    let result = simulate(scenario, &mut sink);
    if let Some(e) = sink.error.take() {
        return Err(e);
    }
    let summary = result?;
    ing.flush()?;
    Ok(summary)
}
