//! The behaviour detectors' evaluation: account-level precision and recall
//! per detector over a matrix of simulated scenarios (seeds, sizes, farms of
//! 8 to 60 phones, 5% to 40% camouflage, every honest look-alike).
//! `groundtruth eval behaviour` prints it; a test in CI holds it to the
//! issue's bar.
//!
//! Positives of a detector are the accounts the simulator labels with its
//! name. A phone farm's operator is left out of `phone_farm`'s count either
//! way: their own account shows nothing faked (they fake the colleagues'),
//! so the finding names the farm's network and phones, not them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use groundtruth_finding::Finding;
use groundtruth_lake::LakeOptions;
use groundtruth_sim::Scenario;
use serde::Serialize;

use crate::closes::run_all_closes;
use crate::error::DetectError;
use crate::eval::{ratio, simulate_into};
use groundtruth_window::Schedule;

/// The behaviour detectors, in report order.
pub const DETECTORS: [&str; 5] = [
    "phone_farm",
    "bulk_check_in",
    "registration_farm",
    "record_churn",
    "report_inflation",
];

/// Simulator scenarios (account `scenario` column) counted as neither
/// positive nor negative for a detector.
const NEUTRAL: [(&str, &str); 1] = [("phone_farm", "farm_operator")];

/// One detector on one scenario (or over all).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Row {
    pub scenario: String,
    pub detector: String,
    pub positives: usize,
    pub flagged: usize,
    pub true_positives: usize,
    pub precision: f64,
    pub recall: f64,
    /// Wrongly flagged accounts by their simulator scenario (e.g. `office_wifi_study`).
    pub false_by_scenario: BTreeMap<String, usize>,
    /// Missed accounts by their simulator scenario.
    pub missed_by_scenario: BTreeMap<String, usize>,
    pub findings: usize,
}

/// One scenario's run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioRun {
    pub scenario: String,
    pub seed: u64,
    pub events: u64,
    pub accounts: u64,
    /// Windows judged (all groups).
    pub windows: usize,
    /// Seconds of all the windows' detection (SQL included), and per
    /// detector (its share of its group's SQL included).
    pub detect_s: f64,
    pub detector_s: BTreeMap<String, f64>,
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BehaviourEval {
    pub runs: Vec<ScenarioRun>,
    /// Per scenario and detector.
    pub rows: Vec<Row>,
    /// Per detector over all scenarios.
    pub totals: Vec<Row>,
}

/// The evaluation matrix: the default week varied in seed, size, farm size
/// and camouflage (where a scenario has several farms, one is an automated
/// rack whose phones run at once), look-alikes and fraud sizes. `days` shortens every
/// scenario (CI runs a quicker matrix).
pub fn matrix(days: u32) -> Vec<Scenario> {
    // (name, seed, officials, farms, phones, camouflage, sweeps, bulk ops,
    //  bulk accounts, reg farm (registrations, devices, ips, minutes),
    //  churners, inflating workers, office study staff, families)
    type Knobs = (
        &'static str,
        u64,
        u32,
        u32,
        u32,
        f64,
        u32,
        u32,
        u32,
        (u32, u32, u32, u32),
        u32,
        u32,
        u32,
        u32,
    );
    const M: [Knobs; 5] = [
        (
            "small-farm-light-camo",
            101,
            600,
            2,
            8,
            0.05,
            1,
            1,
            4,
            (30, 3, 2, 40),
            1,
            3,
            20,
            3,
        ),
        (
            "week-default",
            202,
            1200,
            1,
            30,
            0.3,
            1,
            1,
            12,
            (120, 6, 3, 90),
            1,
            5,
            30,
            2,
        ),
        (
            "big-farms-heavy-camo",
            303,
            2000,
            2,
            60,
            0.4,
            2,
            2,
            20,
            (200, 10, 6, 120),
            2,
            6,
            50,
            6,
        ),
        (
            "mid-farm-many-lookalikes",
            404,
            1500,
            3,
            15,
            0.2,
            1,
            2,
            6,
            (60, 12, 4, 60),
            2,
            4,
            60,
            10,
        ),
        (
            "tiny-groups",
            505,
            900,
            1,
            10,
            0.1,
            1,
            1,
            3,
            (15, 2, 1, 20),
            1,
            2,
            40,
            4,
        ),
    ];
    M.iter()
        .map(|k| {
            let mut s = Scenario::default_week();
            s.name = k.0.into();
            s.seed = k.1;
            s.days = days.clamp(2, 7);
            s.population.officials = k.2;
            let f = &mut s.fraud;
            f.phone_farm.farms = k.3;
            f.phone_farm.phones = k.4;
            f.phone_farm.camouflage_share = k.5;
            f.phone_farm.sweeps_per_day = k.6;
            // Where there are several farms, one is a rack run by a script.
            f.phone_farm.racks = u32::from(k.3 >= 2);
            f.bulk_check_in.operators = k.7;
            f.bulk_check_in.accounts = k.8;
            let (n, dev, ips, min) = k.9;
            f.registration_farm.registrations = n;
            f.registration_farm.devices = dev;
            f.registration_farm.ips = ips;
            f.registration_farm.window_min = min;
            f.registration_farm.days = vec![(k.1 as u32) % s.days.saturating_sub(1).max(1)];
            f.record_churn.workers = k.10;
            f.report_inflation.workers = k.11;
            // The assessment falls inside the run so inflation happens in it.
            f.report_inflation.days_before = 2.min(s.days - 1).max(1);
            f.report_inflation.assessment_date =
                chrono::NaiveDate::parse_from_str(&s.start_date, "%Y-%m-%d")
                    .map(|d| (d + chrono::Days::new(s.days as u64 - 1)).to_string())
                    .unwrap_or_default();
            s.confounders.office_wifi_study = k.12;
            s.confounders.family_shared_phone = k.13;
            s.confounders.help_desk_workers = 1 + (k.1 as u32 % 3);
            s.confounders.census_day = 1.min(s.days - 1);
            s
        })
        .collect()
}

/// Runs every scenario and scores each detector. `scratch`: an empty directory.
pub async fn evaluate_behaviour(
    scenarios: &[Scenario],
    schedule: &Schedule,
    scratch: &Path,
) -> Result<BehaviourEval, DetectError> {
    let mut runs = Vec::new();
    let mut rows = Vec::new();
    for (i, sc) in scenarios.iter().enumerate() {
        let dir = scratch.join(format!("lake-{i}"));
        let summary = simulate_into(sc, &dir)?;
        let (set, closes) = run_all_closes(&dir, schedule, LakeOptions::default().zone).await?;
        let findings = set.into_findings();
        rows.extend(score_accounts(
            &sc.name,
            &DETECTORS,
            &summary.labels,
            &findings,
        ));
        let mut detector_s: BTreeMap<String, f64> = BTreeMap::new();
        for c in &closes {
            for (d, s) in &c.detector_s {
                if DETECTORS.contains(&d.as_str()) {
                    *detector_s.entry(d.clone()).or_default() += s;
                }
            }
        }
        runs.push(ScenarioRun {
            scenario: sc.name.clone(),
            seed: sc.seed,
            events: summary.events,
            accounts: summary.accounts,
            windows: closes.iter().filter(|c| !c.empty).count(),
            detect_s: closes.iter().map(|c| c.seconds).sum(),
            detector_s,
        });
        // Free the scenario's lake before the next one.
        let _ = std::fs::remove_dir_all(&dir);
    }
    let totals = DETECTORS
        .iter()
        .map(|det| {
            let mut t = Row {
                scenario: "all".into(),
                detector: det.to_string(),
                ..Row::default()
            };
            for r in rows.iter().filter(|r| r.detector == *det) {
                t.positives += r.positives;
                t.flagged += r.flagged;
                t.true_positives += r.true_positives;
                t.findings += r.findings;
                for (k, v) in &r.false_by_scenario {
                    *t.false_by_scenario.entry(k.clone()).or_default() += v;
                }
                for (k, v) in &r.missed_by_scenario {
                    *t.missed_by_scenario.entry(k.clone()).or_default() += v;
                }
            }
            t.precision = ratio(t.true_positives, t.flagged);
            t.recall = ratio(t.true_positives, t.positives);
            t
        })
        .collect();
    Ok(BehaviourEval { runs, rows, totals })
}

/// Account-level figures of each of `detectors` on one labelled run.
pub fn score_accounts(
    scenario: &str,
    detectors: &[&str],
    labels: &groundtruth_sim::Labels,
    findings: &[Finding],
) -> Vec<Row> {
    let labels = labels.account_map();
    detectors
        .iter()
        .map(|det| {
            let mine: Vec<&Finding> = findings.iter().filter(|f| f.detector == *det).collect();
            let flagged: BTreeSet<&str> = mine
                .iter()
                .flat_map(|f| f.accounts.iter().map(String::as_str))
                .collect();
            score(scenario, det, &labels, &flagged, mine.len())
        })
        .collect()
}

fn score(
    scenario: &str,
    det: &str,
    labels: &std::collections::HashMap<&str, (&str, &str)>,
    flagged: &BTreeSet<&str>,
    findings: usize,
) -> Row {
    let neutral = |s: &str| NEUTRAL.contains(&(det, s));
    let positives: BTreeSet<&str> = labels
        .iter()
        .filter(|(_, (l, s))| *l == det && !neutral(s))
        .map(|(a, _)| *a)
        .collect();
    let counted: BTreeSet<&str> = flagged
        .iter()
        .copied()
        .filter(|a| !labels.get(a).is_some_and(|(_, s)| neutral(s)))
        .collect();
    let tp = counted.intersection(&positives).count();
    let mut false_by_scenario: BTreeMap<String, usize> = BTreeMap::new();
    for a in counted.difference(&positives) {
        let s = labels.get(a).map_or("unlabelled", |(_, s)| *s);
        *false_by_scenario.entry(s.to_string()).or_default() += 1;
    }
    let mut missed_by_scenario: BTreeMap<String, usize> = BTreeMap::new();
    for a in positives.difference(&counted) {
        let s = labels.get(a).map_or("unlabelled", |(_, s)| *s);
        *missed_by_scenario.entry(s.to_string()).or_default() += 1;
    }
    Row {
        scenario: scenario.into(),
        detector: det.into(),
        positives: positives.len(),
        flagged: counted.len(),
        true_positives: tp,
        precision: ratio(tp, counted.len()),
        recall: ratio(tp, positives.len()),
        false_by_scenario,
        missed_by_scenario,
        findings,
    }
}

fn counts(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl BehaviourEval {
    /// The evaluation as Markdown tables.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| scenario | seed | events | accounts | windows | detection s |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        for r in &self.runs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.2} |",
                r.scenario, r.seed, r.events, r.accounts, r.windows, r.detect_s
            );
        }
        let _ = writeln!(
            s,
            "\n| scenario | detector | positives | flagged | true | precision | recall | false (by scenario) | missed (by scenario) |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---|---|");
        for r in self.rows.iter().chain(&self.totals) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {} | {} |",
                r.scenario,
                r.detector,
                r.positives,
                r.flagged,
                r.true_positives,
                r.precision,
                r.recall,
                counts(&r.false_by_scenario),
                counts(&r.missed_by_scenario)
            );
        }
        s
    }
}
