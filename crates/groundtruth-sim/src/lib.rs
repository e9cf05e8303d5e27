//! `groundtruth-sim`: a reproducible, labelled simulator of activity in
//! Chinese government apps (study/points, attendance, river and forest
//! patrols, registries, grid reports, resident services), with honest
//! routines, honest look-alikes of fraud ("confounders") and injectable fraud
//! scenarios.
//!
//! Every event written is a contract event (`shared/contract/events.schema.json`).
//! The same seed and scenario give byte-identical output. Events are emitted
//! in event-time order; memory is bounded by one simulated day.
//!
//! ```no_run
//! use groundtruth_sim::{simulate, Scenario, VecSink};
//! let sc = Scenario::from_toml_str(include_str!("../../../pipelines/sim-small.toml")).unwrap();
//! let mut sink = VecSink::default();
//! let summary = simulate(&sc, &mut sink).unwrap();
//! summary.labels.write_accounts_csv(std::io::stdout()).unwrap();
//! ```

mod day;
mod event;
mod geo;
mod scenario;
mod text;
mod track;
mod world;

use chrono::Datelike;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use geo::haversine_m;
pub use scenario::{
    default_regions, BulkCheckIn, Confounders, Fraud, Honest, NonHumanTrack, PhoneFarm, Population,
    RecordChurn, RegionSpec, RegistrationFarm, ReportInflation, Scenario,
};

/// Errors of the simulator. Each message says what failed, on what, and what to do.
#[derive(thiserror::Error, Debug)]
pub enum SimError {
    /// The scenario text is not valid TOML for a [`Scenario`] (syntax error, wrong type, unknown key).
    #[error("scenario TOML could not be read: {0}; fix the file (the keys and defaults are documented on groundtruth_sim::Scenario)")]
    ScenarioSyntax(String),
    /// The scenario parsed but some parameters are out of range; all problems are listed.
    #[error("scenario is invalid ({} problem{}): {}; fix these parameters and run again", .problems.len(), if .problems.len() == 1 { "" } else { "s" }, .problems.join("; "))]
    InvalidScenario { problems: Vec<String> },
    /// Writing to an output failed.
    #[error("writing simulated events failed: {0}; check that the output is writable and the disk is not full")]
    Io(#[from] std::io::Error),
    /// A sink refused an event (e.g. a Kafka producer error).
    #[error("the event sink refused event for account {key}: {message}; check the sink (broker, topic) and retry")]
    Sink { key: String, message: String },
}

/// Receives the simulated events, in order.
pub trait SimSink {
    /// One event: `key` = account_id (Kafka message key), `json` = one contract
    /// event as a single JSON line without trailing newline.
    fn event(&mut self, key: &str, json: &[u8]) -> Result<(), SimError>;
}

/// Collects events in memory (for tests).
#[derive(Debug, Default, Clone)]
pub struct VecSink(pub Vec<(String, Vec<u8>)>);

impl SimSink for VecSink {
    fn event(&mut self, key: &str, json: &[u8]) -> Result<(), SimError> {
        self.0.push((key.to_string(), json.to_vec()));
        Ok(())
    }
}

impl SimSink for Vec<Vec<u8>> {
    fn event(&mut self, _key: &str, json: &[u8]) -> Result<(), SimError> {
        self.push(json.to_vec());
        Ok(())
    }
}

/// Writes NDJSON (`json\n` per event) to any writer. Wrap files in a `BufWriter`.
#[derive(Debug)]
pub struct NdjsonSink<W: std::io::Write>(pub W);

impl<W: std::io::Write> NdjsonSink<W> {
    pub fn new(w: W) -> Self {
        NdjsonSink(w)
    }
    pub fn into_inner(self) -> W {
        self.0
    }
}

impl<W: std::io::Write> SimSink for NdjsonSink<W> {
    fn event(&mut self, _key: &str, json: &[u8]) -> Result<(), SimError> {
        self.0.write_all(json)?;
        self.0.write_all(b"\n")?;
        Ok(())
    }
}

/// Counts events without keeping them (for throughput measurements).
#[derive(Debug, Default, Clone, Copy)]
pub struct CountSink {
    pub events: u64,
    pub bytes: u64,
}

impl SimSink for CountSink {
    fn event(&mut self, _key: &str, json: &[u8]) -> Result<(), SimError> {
        self.events += 1;
        self.bytes += json.len() as u64 + 1;
        Ok(())
    }
}

/// Ground truth of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLabel {
    pub account_id: String,
    /// `honest` or the detector name of the fraud the account takes part in.
    pub label: String,
    /// The sub-case, e.g. `routine`, `office_wifi_study`, `farm_account`.
    pub scenario: String,
}

/// Ground truth of one patrol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatrolLabel {
    pub patrol_id: String,
    pub account_id: String,
    /// `human` or `non_human_track`.
    pub label: String,
    /// `walk`, `bike`, `car`, `boat`, `poor_gps`, `dog_leg`, `straight_line`, `teleport`, `replay`.
    pub scenario: String,
}

/// All labels of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    pub accounts: Vec<AccountLabel>,
    pub patrols: Vec<PatrolLabel>,
}

fn csv_field(w: &mut impl std::io::Write, s: &str) -> std::io::Result<()> {
    if s.contains([',', '"', '\n', '\r']) {
        write!(w, "\"{}\"", s.replace('"', "\"\""))
    } else {
        w.write_all(s.as_bytes())
    }
}

impl Labels {
    /// `account_id` -> (label, scenario).
    pub fn account_map(&self) -> std::collections::HashMap<&str, (&str, &str)> {
        self.accounts
            .iter()
            .map(|a| {
                (
                    a.account_id.as_str(),
                    (a.label.as_str(), a.scenario.as_str()),
                )
            })
            .collect()
    }

    /// `account_id,label,scenario` with a header line.
    pub fn write_accounts_csv(&self, mut w: impl std::io::Write) -> std::io::Result<()> {
        writeln!(w, "account_id,label,scenario")?;
        for a in &self.accounts {
            csv_field(&mut w, &a.account_id)?;
            w.write_all(b",")?;
            csv_field(&mut w, &a.label)?;
            w.write_all(b",")?;
            csv_field(&mut w, &a.scenario)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    }

    /// `patrol_id,account_id,label,scenario` with a header line.
    pub fn write_patrols_csv(&self, mut w: impl std::io::Write) -> std::io::Result<()> {
        writeln!(w, "patrol_id,account_id,label,scenario")?;
        for p in &self.patrols {
            csv_field(&mut w, &p.patrol_id)?;
            w.write_all(b",")?;
            csv_field(&mut w, &p.account_id)?;
            w.write_all(b",")?;
            csv_field(&mut w, &p.label)?;
            w.write_all(b",")?;
            csv_field(&mut w, &p.scenario)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct SimSummary {
    pub events: u64,
    /// Accounts that appear in at least one event (= rows of `labels.accounts`).
    pub accounts: u64,
    pub patrols: u64,
    pub labels: Labels,
}

/// Runs the scenario, sending every event to `sink` in event-time order, and
/// returns the ground-truth labels.
pub fn simulate(scenario: &Scenario, sink: &mut dyn SimSink) -> Result<SimSummary, SimError> {
    scenario.validate()?;
    let start =
        scenario::parse_date(&scenario.start_date).ok_or_else(|| SimError::InvalidScenario {
            problems: vec![format!(
                "start_date {:?} is not YYYY-MM-DD",
                scenario.start_date
            )],
        })?;
    let mut pop_rng = ChaCha8Rng::seed_from_u64(scenario.seed);
    pop_rng.set_stream(u64::MAX);
    let mut w = world::World::build(scenario, &mut pop_rng);

    let epoch_days = start.num_days_from_ce() as i64 - 719_163;
    let day_strs: Vec<String> = (0..scenario.days as i64 + 2)
        .map(|k| {
            (start + chrono::Duration::days(k))
                .format("%Y%m%d")
                .to_string()
        })
        .collect();

    let mut buf = Vec::with_capacity(1024);
    let mut n: u64 = 0;
    let mut carry: Vec<event::Ev> = Vec::new();
    let mut emit = |w: &mut world::World,
                    evs: &[event::Ev],
                    n: &mut u64,
                    buf: &mut Vec<u8>|
     -> Result<(), SimError> {
        for e in evs {
            w.encode(e, *n, &day_strs, buf);
            *n += 1;
            let acct = &mut w.accounts[e.account as usize];
            acct.seen = true;
            sink.event(&acct.id, buf)?;
        }
        Ok(())
    };
    for dayi in 0..scenario.days {
        let date = start + chrono::Duration::days(dayi as i64);
        let d0 = ((epoch_days + dayi as i64) * 86_400 - 8 * 3600) * 1000;
        let mut evs = std::mem::take(&mut carry);
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
        rng.set_stream(dayi as u64);
        {
            let mut d = day::Day {
                sc: scenario,
                day: dayi,
                d0,
                weekday: date.weekday().number_from_monday() <= 5,
                evs: &mut evs,
            };
            day::generate(&mut w, &mut d, &mut rng);
        }
        evs.sort_unstable_by_key(|e| (e.ts, e.seq));
        let end = d0 + 86_400_000;
        let split = evs.partition_point(|e| e.ts < end);
        carry = evs.split_off(split);
        emit(&mut w, &evs, &mut n, &mut buf)?;
    }
    emit(&mut w, &carry, &mut n, &mut buf)?;

    let accounts: Vec<AccountLabel> = w
        .accounts
        .iter()
        .filter(|a| a.seen)
        .map(|a| AccountLabel {
            account_id: a.id.clone(),
            label: a.label.to_string(),
            scenario: a.scenario.to_string(),
        })
        .collect();
    Ok(SimSummary {
        events: n,
        accounts: accounts.len() as u64,
        patrols: w.patrols.len() as u64,
        labels: Labels {
            accounts,
            patrols: std::mem::take(&mut w.patrols),
        },
    })
}
