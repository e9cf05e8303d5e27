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

use groundtruth_finding::calibration::{Calibration, Sample};
use groundtruth_finding::Finding;
use groundtruth_lake::LakeOptions;
use groundtruth_sim::Scenario;
use serde::Serialize;

use crate::calibrate::{Truth, NEUTRAL};
use crate::error::EvalError;
use crate::tracks::ratio;
use groundtruth_detect::run_all_closes;
use groundtruth_ingest::simulate_into;
use groundtruth_window::Schedule;

/// The behaviour detectors, in report order.
pub const DETECTORS: [&str; 5] = [
    "phone_farm",
    "bulk_check_in",
    "registration_farm",
    "record_churn",
    "report_inflation",
];

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
    /// Every finding of every scenario (all six detectors), labelled for
    /// calibration.
    #[serde(skip)]
    pub samples: Vec<Sample>,
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

/// A small deterministic generator (SplitMix64) for drawing worlds.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    fn f(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `[lo, hi]`.
    fn u(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % u64::from(hi - lo + 1)) as u32
    }
    fn coin(&mut self, p: f64) -> bool {
        self.f(0.0, 1.0) < p
    }
}

/// `n` worlds drawn from `seed`, every scenario parameter from a wide
/// range instead of a fixed matrix: population; farms of 5 to 60
/// colleagues with 1 to 3 accounts a phone, sessions of tens of seconds to
/// minutes, skipped phones and pauses, morning or evening sweeps, 0-50%
/// camouflage; bulk check-in operators; registration farms; churners;
/// inflating units with and without report texts (one or a few, in one or
/// two categories, from one spot or a neighbourhood, with or without a
/// position); check-in apps that send
/// the phone's fix or the post's registered coordinates; every honest
/// look-alike in varying numbers. `days` per world (2-7).
pub fn draw_worlds(n: u32, seed: u64, days: u32) -> Vec<Scenario> {
    let mut r = Draw(seed ^ 0x6772_6f75_6e64);
    (0..n)
        .map(|i| {
            let mut s = Scenario::default_week();
            s.name = format!("world-{seed}-{i}");
            s.seed = r.next() % 1_000_000;
            s.days = days.clamp(2, 7);
            s.population.officials = r.u(500, 2000);
            s.population.units_per_region = r.u(2, 6);
            s.honest.report_text = r.coin(0.5);
            s.honest.checkin_registered_coords = r.coin(0.5);
            s.honest.checkin_spread_min = r.f(3.0, 15.0);
            s.honest.reports_per_day = [0, r.u(2, 6)];
            let f = &mut s.fraud;
            f.phone_farm.farms = r.u(1, 3);
            f.phone_farm.phones = r.u(5, 60);
            f.phone_farm.accounts_per_phone = r.u(1, 3);
            let short = r.u(20, 90);
            f.phone_farm.session_s = [short, short + r.u(20, 240)];
            f.phone_farm.camouflage_share = r.f(0.0, 0.5);
            f.phone_farm.skip_share = r.f(0.0, 0.2);
            f.phone_farm.pause_share = r.f(0.0, 0.08);
            f.phone_farm.sweeps_per_day = r.u(1, 2);
            f.phone_farm.sweep_time = format!("{:02}:{:02}", r.u(6, 9), r.u(0, 59));
            f.phone_farm.racks = u32::from(f.phone_farm.farms >= 2 && r.coin(0.5));
            f.bulk_check_in.operators = r.u(1, 3);
            f.bulk_check_in.accounts = r.u(4, 20);
            f.bulk_check_in.step_s = r.u(5, 60);
            f.bulk_check_in.far_share = r.f(0.0, 0.5);
            f.registration_farm.registrations = r.u(15, 200);
            f.registration_farm.devices = r.u(2, 12);
            f.registration_farm.ips = r.u(1, 6);
            f.registration_farm.window_min = r.u(20, 120);
            f.registration_farm.days = vec![r.u(0, s.days.saturating_sub(2))];
            f.record_churn.workers = r.u(1, 3);
            f.report_inflation.workers = r.u(2, 6);
            f.report_inflation.bursts_per_day = r.u(1, 4);
            let b = r.u(4, 10);
            f.report_inflation.burst_size = [b, b + r.u(0, 12)];
            f.report_inflation.days_before = r.u(1, 3).min(s.days - 1).max(1);
            // Filler is not always same-spot copies of one text (issue 26):
            // one or two categories, a few texts with their figures
            // changed, spread over a neighbourhood, reports without a
            // position. (From a stream of the world's seed, so that the
            // draws above stay as they were for every world.)
            let mut q = Draw(s.seed ^ 0x7265_706f_7274);
            f.report_inflation.categories = q.u(1, 2);
            f.report_inflation.texts = q.u(1, 3);
            f.report_inflation.spot_spread_m = if q.coin(0.5) { 2.0 } else { q.f(50.0, 800.0) };
            f.report_inflation.located_share = if q.coin(0.7) { 1.0 } else { q.f(0.0, 0.8) };
            f.report_inflation.assessment_date =
                chrono::NaiveDate::parse_from_str(&s.start_date, "%Y-%m-%d")
                    .map(|d| (d + chrono::Days::new(s.days as u64 - 1)).to_string())
                    .unwrap_or_default();
            s.confounders.office_wifi_study = r.u(10, 80);
            s.confounders.family_shared_phone = r.u(1, 12);
            s.confounders.help_desk_workers = r.u(0, 3);
            s.confounders.bad_week = r.coin(0.5);
            s.confounders.bad_week_factor = r.f(2.0, 4.0);
            s.confounders.census_day = r.u(0, s.days - 1);
            s
        })
        .collect()
}

/// `scenario` with its patrols drawn from wide ranges too (from a stream of
/// the scenario's seed, so a world's behaviour side is left as it was): the
/// share of patrollers and their modes, fix intervals, GPS gaps, boats and
/// poor GPS, site surveys and train rides, and how many dogs (up to half of
/// them never running), straight lines, teleports and replays (shifted,
/// resampled, clock-shifted).
pub fn with_drawn_patrols(mut s: Scenario) -> Scenario {
    let mut t = Draw(s.seed ^ 0x7472_6163_6b73);
    s.population.patrol_share = t.f(0.25, 0.5);
    let (walk, bike) = (t.f(0.3, 0.8), t.f(0.05, 0.3));
    s.honest.mode_shares = [walk, bike, (1.0 - walk - bike).max(0.05)];
    let fix = t.f(2.0, 10.0);
    s.honest.fix_interval_s = [fix, fix + t.f(0.0, 10.0)];
    s.honest.gps_gap_prob = t.f(0.1, 0.5);
    s.honest.patrol_prob_weekday = t.f(0.5, 0.9);
    s.confounders.boat_patrollers = t.u(1, 8);
    s.confounders.poor_gps_patrollers = t.u(1, 10);
    let nh = &mut s.fraud.non_human_track;
    nh.dog_leg = t.u(3, 10);
    nh.straight_line = t.u(2, 8);
    nh.teleport = t.u(2, 8);
    nh.replay = t.u(3, 10);
    nh.fake_day_share = t.f(0.6, 1.0);
    nh.mock_flag_share = t.f(0.0, 0.5);
    // The look-alikes and variations an outside world has (issue 26):
    // site surveys, train rides, dogs that never run, careful replays.
    nh.slow_dog_share = t.f(0.0, 0.5);
    nh.replay_variants = true;
    s.confounders.site_surveyors = t.u(2, 10);
    s.confounders.train_riders = t.u(1, 6);
    s
}

/// `non_human_track` over several worlds: per fraud type the worst recall
/// and precision, and the largest share of honest patrols flagged.
#[derive(Debug, Clone, Serialize)]
pub struct TrackWorstCase {
    pub fraud_type: String,
    pub worlds: usize,
    pub patrols: usize,
    pub worst_recall: f64,
    pub worst_recall_world: String,
    pub worst_precision: f64,
    pub worst_precision_world: String,
}

/// The worst case of `evals` (one per world): per fraud type, then a row
/// `honest` whose "recall" is the largest share of honest patrols flagged.
pub fn track_worst_case(evals: &[crate::tracks::TrackEval]) -> Vec<TrackWorstCase> {
    let mut by_type: BTreeMap<String, TrackWorstCase> = BTreeMap::new();
    for e in evals {
        for t in &e.types {
            let w = by_type
                .entry(t.fraud_type.clone())
                .or_insert_with(|| TrackWorstCase {
                    fraud_type: t.fraud_type.clone(),
                    worlds: 0,
                    patrols: 0,
                    worst_recall: 1.0,
                    worst_recall_world: String::new(),
                    worst_precision: 1.0,
                    worst_precision_world: String::new(),
                });
            w.worlds += 1;
            w.patrols += t.patrols;
            if t.patrols > 0 && t.recall < w.worst_recall {
                w.worst_recall = t.recall;
                w.worst_recall_world = e.scenario.clone();
            }
            if t.precision < w.worst_precision {
                w.worst_precision = t.precision;
                w.worst_precision_world = e.scenario.clone();
            }
        }
    }
    let mut out: Vec<TrackWorstCase> = by_type.into_values().collect();
    let mut honest = TrackWorstCase {
        fraud_type: "honest (share flagged)".into(),
        worlds: evals.len(),
        patrols: 0,
        worst_recall: 0.0,
        worst_recall_world: String::new(),
        worst_precision: 1.0,
        worst_precision_world: String::new(),
    };
    for e in evals {
        let n: usize = e.honest.iter().map(|h| h.patrols).sum();
        let f: usize = e.honest.iter().map(|h| h.flagged).sum();
        honest.patrols += n;
        let share = ratio(f, n);
        if n > 0 && f > 0 && share > honest.worst_recall {
            honest.worst_recall = share;
            honest.worst_recall_world = e.scenario.clone();
        }
    }
    out.push(honest);
    out
}

/// [`track_worst_case`] as a Markdown table.
pub fn track_worst_case_table(rows: &[TrackWorstCase]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| fraud type | worlds | patrols | worst recall (honest: largest share flagged) | (world) | worst precision | (world) |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|---:|---|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.3} | {} | {:.3} | {} |",
            r.fraud_type,
            r.worlds,
            r.patrols,
            r.worst_recall,
            r.worst_recall_world,
            r.worst_precision,
            r.worst_precision_world
        );
    }
    s
}

/// Per detector over several worlds: the worst and the median of the
/// worlds' precision and recall (worlds where the detector had nothing to
/// find or flagged nothing count as 1 for the undefined figure).
#[derive(Debug, Clone, Serialize)]
pub struct WorstCase {
    pub detector: String,
    pub worlds: usize,
    pub worst_precision: f64,
    pub worst_precision_world: String,
    pub median_precision: f64,
    pub worst_recall: f64,
    pub worst_recall_world: String,
    pub median_recall: f64,
}

impl BehaviourEval {
    /// The worst case and the median per detector over the runs.
    pub fn worst_case(&self) -> Vec<WorstCase> {
        DETECTORS
            .iter()
            .map(|det| {
                let rows: Vec<&Row> = self.rows.iter().filter(|r| r.detector == *det).collect();
                let med = |mut v: Vec<f64>| {
                    v.sort_by(f64::total_cmp);
                    v.get(v.len() / 2).copied().unwrap_or(1.0)
                };
                let worst = |f: &dyn Fn(&Row) -> f64| {
                    rows.iter()
                        .min_by(|a, b| f(a).total_cmp(&f(b)))
                        .map_or((1.0, String::new()), |r| (f(r), r.scenario.clone()))
                };
                let (wp, wpw) = worst(&|r| r.precision);
                let (wr, wrw) = worst(&|r| r.recall);
                WorstCase {
                    detector: det.to_string(),
                    worlds: rows.len(),
                    worst_precision: wp,
                    worst_precision_world: wpw,
                    median_precision: med(rows.iter().map(|r| r.precision).collect()),
                    worst_recall: wr,
                    worst_recall_world: wrw,
                    median_recall: med(rows.iter().map(|r| r.recall).collect()),
                }
            })
            .collect()
    }

    /// [`Self::worst_case`] as a Markdown table.
    pub fn worst_case_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| detector | worlds | worst precision | (world) | median precision | worst recall | (world) | median recall |"
        );
        let _ = writeln!(s, "|---|---:|---:|---|---:|---:|---|---:|");
        for w in self.worst_case() {
            let _ = writeln!(
                s,
                "| {} | {} | {:.3} | {} | {:.3} | {:.3} | {} | {:.3} |",
                w.detector,
                w.worlds,
                w.worst_precision,
                w.worst_precision_world,
                w.median_precision,
                w.worst_recall,
                w.worst_recall_world,
                w.median_recall
            );
        }
        s
    }
}

/// Runs every scenario and scores each detector, its scores calibrated by
/// `calibration`. `scratch`: an empty directory.
pub async fn evaluate_behaviour(
    scenarios: &[Scenario],
    schedule: &Schedule,
    calibration: &Calibration,
    scratch: &Path,
) -> Result<BehaviourEval, EvalError> {
    let mut runs = Vec::new();
    let mut rows = Vec::new();
    let mut samples = Vec::new();
    for (i, sc) in scenarios.iter().enumerate() {
        let dir = scratch.join(format!("lake-{i}"));
        let summary = simulate_into(sc, &dir)?;
        let (set, closes) = run_all_closes(
            &dir,
            schedule,
            LakeOptions::default().zone,
            calibration,
            &groundtruth_detect::CloseCache::default(),
        )
        .await?;
        let findings = set.into_findings();
        samples.extend(Truth::of_sim(&summary.labels).samples(&findings));
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
    Ok(BehaviourEval {
        runs,
        rows,
        totals,
        samples,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_worlds_are_valid_varied_and_reproducible() {
        let a = draw_worlds(30, 9, 3);
        let b = draw_worlds(30, 9, 3);
        assert_eq!(a, b, "the same seed draws the same worlds");
        assert_ne!(draw_worlds(30, 10, 3), a);
        for s in &a {
            s.validate().unwrap();
            assert_eq!(s.days, 3);
            let pf = &s.fraud.phone_farm;
            assert!((5..=60).contains(&pf.phones) && (1..=3).contains(&pf.accounts_per_phone));
            assert!(pf.session_s[0] <= pf.session_s[1]);
        }
        // The ranges are used, not one corner of them.
        let phones: BTreeSet<u32> = a.iter().map(|s| s.fraud.phone_farm.phones).collect();
        assert!(phones.len() > 10, "{phones:?}");
        for flag in [
            |s: &Scenario| s.honest.report_text,
            |s: &Scenario| s.honest.checkin_registered_coords,
            |s: &Scenario| s.confounders.bad_week,
        ] {
            let on = a.iter().filter(|s| flag(s)).count();
            assert!(on > 3 && on < 27, "{on} of 30");
        }
        let per_phone: BTreeSet<u32> = a
            .iter()
            .map(|s| s.fraud.phone_farm.accounts_per_phone)
            .collect();
        assert_eq!(per_phone, BTreeSet::from([1, 2, 3]));
        // Patrols drawn on top leave the behaviour side as it was.
        for s in &a {
            let p = with_drawn_patrols(s.clone());
            p.validate().unwrap();
            assert_eq!(p.fraud.phone_farm, s.fraud.phone_farm);
            assert_eq!(p.fraud.report_inflation, s.fraud.report_inflation);
            let nh = &p.fraud.non_human_track;
            assert!((3..=10).contains(&nh.dog_leg) && (3..=10).contains(&nh.replay));
            assert!(p.honest.fix_interval_s[0] <= p.honest.fix_interval_s[1]);
        }
    }
}
