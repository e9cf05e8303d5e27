//! Micro-benchmarks (criterion) of four hot paths. Every input is simulated
//! once, before anything is timed; criterion reports the time of one pass
//! over the input and its throughput in elements per second.
//!
//! * `decode/decode`: `groundtruth_event::decode` of 4,096 NDJSON lines
//!   sampled evenly from the `pipelines/sim-small.toml` scenario (every kind
//!   of event, honest and fraudulent). Elements: events.
//! * `decode/decode_append`: the same, each event appended to an
//!   `EventBatchBuilder`, and the 4,096 rows finished into one Arrow batch
//!   (the ingest path without the lake). Elements: events.
//! * `track/features_judge`: per patrol of that scenario (its `track_point`
//!   events grouped by account and patrol, as `sql/track_steps.sql` does),
//!   projection, `features::compute` and `classify::judge`. Elements: fixes.
//! * `track/detect`: the whole `non_human_track` detector
//!   (`groundtruth_track::detect`: the above plus replay search and the
//!   linfa mode mixture) over the same patrols. Elements: fixes.
//! * `group/coactive`: `coactive::detect`, the coordinated-group discovery
//!   of `phone_farm` (slot buckets per network, pair similarity, union-find,
//!   static-phone check), over the `session_chain` and `device_profile` rows
//!   of the default week with two farms, one of them an automated rack (the
//!   week is simulated into a temporary lake and the views are read through
//!   DataFusion once, before timing). Elements: sessions.
//! * `group/phone_farm`: the whole `farm::detect` (serial chains, then
//!   coactive groups) over the same rows. Elements: sessions.
//! * `window/tumbling`, `window/sliding`, `window/session`: every event of
//!   the small scenario, in the simulator's order, pushed into
//!   `groundtruth_window::Windows` keyed by account (1 h tumbling; 1 h
//!   sliding by 15 min; sessions with a 30 min gap) with a partial aggregate
//!   (count, first and last time, kinds, distinct devices), `advance`d after
//!   every push so windows close as the watermark (6 h lateness, as in
//!   `pipelines/live.toml`) passes them, `finish`ed at the end. Elements:
//!   events.
//! * `window/schedule_due`: the live service's close decision per event:
//!   `Watermark::observe` and `Schedule::due` for the detectors' windows of
//!   `pipelines/live.toml`, progress advanced past each due close (the
//!   small scenario's two days make one close). Elements: events.
//!
//! Run all (about 20 s once built; `group/` first simulates and ingests a
//! week, about 5 s):
//!
//! ```text
//! cargo bench --workspace --bench micro -- --quick
//! ```
//!
//! A filter picks benches (`-- --quick window/`). Without `--quick` each
//! bench takes 10 samples over 2 s after a 1 s warm-up (`window/session`
//! over 4 s), about a minute in all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use groundtruth_behaviour::{coactive, farm};
use groundtruth_event::{decode, DayZone, DecodeOptions, EventBatchBuilder, Integrity};
use groundtruth_sim::{simulate, Scenario};
use groundtruth_track::{classify, features, point, Fix, Patrol, Projection};
use groundtruth_window::{
    DetectorWindow, Partial, Progress, Schedule, Watermark, WindowKind, WindowSpec, Windows,
};

const US: i64 = 1_000_000;

/// Lines in the decode benches.
const DECODE_LINES: usize = 4096;

/// `pipelines/live.toml`: `ingest.allowed_lateness_s`.
const LATENESS_US: i64 = 6 * 3600 * US;

/// Asia/Shanghai, the simulator's zone.
const UTC_OFFSET_S: i64 = 8 * 3600;

/// Every event of `pipelines/sim-small.toml`, one JSON line each, in the
/// simulator's order.
fn small_events() -> &'static [Vec<u8>] {
    static EVENTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let text = include_str!("../../pipelines/sim-small.toml");
        let scenario = Scenario::from_toml_str(text).expect("pipelines/sim-small.toml");
        let mut out: Vec<Vec<u8>> = Vec::new();
        simulate(&scenario, &mut out).expect("simulate sim-small");
        eprintln!("input: sim-small, {} events", out.len());
        out
    })
}

fn bench_decode(c: &mut Criterion) {
    let all = small_events();
    let step = (all.len() / DECODE_LINES).max(1);
    let lines: Vec<&[u8]> = all
        .iter()
        .step_by(step)
        .take(DECODE_LINES)
        .map(Vec::as_slice)
        .collect();
    let opts = DecodeOptions::default();
    assert!(
        lines.iter().all(|l| decode(l, &opts).is_ok()),
        "simulated events all decode"
    );
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    eprintln!(
        "input: decode, {} lines, {:.0} bytes a line",
        lines.len(),
        bytes as f64 / lines.len() as f64
    );

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut ok = 0usize;
            for line in &lines {
                if let Ok(e) = decode(black_box(line), &opts) {
                    ok += 1;
                    black_box(&e);
                }
            }
            ok
        })
    });
    let mut builder = EventBatchBuilder::with_capacity(DayZone::default(), lines.len());
    g.bench_function("decode_append", |b| {
        b.iter(|| {
            for line in &lines {
                if let Ok(e) = decode(black_box(line), &opts) {
                    builder.append(&e, line.len());
                }
            }
            builder.finish().expect("batch").num_rows()
        })
    });
    g.finish();
}

/// The small scenario's patrols, built from its `track_point` events.
fn patrols() -> Vec<Patrol> {
    let opts = DecodeOptions::default();
    let mut by: BTreeMap<(String, String), Patrol> = BTreeMap::new();
    for line in small_events() {
        let Ok(e) = decode(line, &opts) else { continue };
        if e.kind != groundtruth_event::EventKind::TrackPoint {
            continue;
        }
        let (Some(lat), Some(lon), Some(pid)) = (e.lat, e.lon, e.typed_attrs.patrol_id.as_ref())
        else {
            continue;
        };
        let p = by
            .entry((e.account_id.to_string(), pid.to_string()))
            .or_insert_with(|| Patrol {
                app_id: e.app_id.to_string(),
                account_id: e.account_id.to_string(),
                patrol_id: pid.to_string(),
                ..Patrol::default()
            });
        if let Some(d) = &e.device_id {
            if !p.devices.iter().any(|x| x == d) {
                p.devices.push(d.to_string());
            }
        }
        p.emulator |= e.integrity == Some(Integrity::Virtual);
        p.fixes.push(Fix {
            t_ms: e.ts_micros.div_euclid(1000),
            lat,
            lon,
            accuracy_m: e.accuracy_m,
            mock: e.mock_location.unwrap_or(false),
            speed_mps: e.speed_mps,
        });
    }
    by.into_values()
        .map(|mut p| {
            point::normalise(&mut p.fixes);
            p
        })
        .filter(|p| !p.fixes.is_empty())
        .collect()
}

fn bench_track(c: &mut Criterion) {
    let patrols = patrols();
    let fixes: usize = patrols.iter().map(|p| p.fixes.len()).sum();
    let flagged = groundtruth_track::detect(&patrols).findings.len();
    eprintln!(
        "input: track, {} patrols, {fixes} fixes, {flagged} flagged",
        patrols.len()
    );

    let mut g = c.benchmark_group("track");
    g.throughput(Throughput::Elements(fixes as u64));
    g.bench_function("features_judge", |b| {
        b.iter(|| {
            let mut verdicts = 0usize;
            for p in &patrols {
                let proj = Projection::near(p.fixes[0].lat);
                let pts = point::to_points(&p.fixes, proj);
                let f = features::compute(&p.fixes, &pts);
                verdicts += classify::judge(&f, p.emulator).len();
            }
            verdicts
        })
    });
    // Tens of milliseconds an iteration: one iteration a sample.
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("detect", |b| {
        b.iter(|| {
            groundtruth_track::detect(black_box(&patrols))
                .findings
                .len()
        })
    });
    g.finish();
}

/// The `phone_farm` input of the default week with two farms, one an
/// automated rack, read through the SQL views.
fn farm_input() -> groundtruth_behaviour::Input {
    let mut scenario = Scenario::default_week();
    scenario.name = "bench-micro-farms".into();
    scenario.fraud.phone_farm.farms = 2;
    scenario.fraud.phone_farm.racks = 1;
    let tmp = tempfile::tempdir().expect("temporary directory");
    let lake = tmp.path().join("lake");
    let started = std::time::Instant::now();
    let summary = groundtruth_ingest::simulate_into(&scenario, &lake).expect("simulate the week");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let input = rt.block_on(async {
        let ctx = groundtruth_sql::open_session(&lake)
            .await
            .expect("open lake");
        groundtruth_sql::register_event_views(&ctx)
            .await
            .expect("register views");
        groundtruth_detect::behaviour::load_input_for(&ctx, &|d| d == farm::DETECTOR)
            .await
            .expect("load session_chain and device_profile")
    });
    eprintln!(
        "input: group, week of {} events, {} sessions, {} devices (setup {:.1} s)",
        summary.events,
        input.sessions.len(),
        input.devices.len(),
        started.elapsed().as_secs_f64()
    );
    input
}

fn bench_group(c: &mut Criterion) {
    let input = farm_input();
    let none = BTreeSet::new();
    let groups = coactive::detect(&input.sessions, &input.devices, &none).len();
    let farms = farm::detect(&input.sessions, &input.devices).len();
    eprintln!("input: group, {groups} coactive groups, {farms} phone_farm findings");

    let mut g = c.benchmark_group("group");
    g.throughput(Throughput::Elements(input.sessions.len() as u64));
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("coactive", |b| {
        b.iter(|| coactive::detect(black_box(&input.sessions), &input.devices, &none).len())
    });
    g.bench_function("phone_farm", |b| {
        b.iter(|| farm::detect(black_box(&input.sessions), &input.devices).len())
    });
    g.finish();
}

/// One event as the windows see it.
#[derive(Debug, Clone, Copy)]
struct WindowEvent {
    /// Interned account.
    account: u32,
    t_us: i64,
    input: Seen,
}

/// What an event adds to its windows' aggregates.
#[derive(Debug, Clone, Copy)]
struct Seen {
    kind: u8,
    /// Interned device (`u32::MAX`: none).
    device: u32,
}

/// A partial aggregate a detector might keep per account and window.
#[derive(Debug, Default, Clone)]
struct Activity {
    events: u32,
    first_us: i64,
    last_us: i64,
    /// Bit per event kind.
    kinds: u32,
    /// Distinct devices, sorted.
    devices: Vec<u32>,
}

impl Partial for Activity {
    type Input = Seen;

    fn add(&mut self, t_us: i64, s: &Seen) {
        if self.events == 0 {
            (self.first_us, self.last_us) = (t_us, t_us);
        } else {
            self.first_us = self.first_us.min(t_us);
            self.last_us = self.last_us.max(t_us);
        }
        self.events += 1;
        self.kinds |= 1 << s.kind;
        if s.device != u32::MAX {
            if let Err(i) = self.devices.binary_search(&s.device) {
                self.devices.insert(i, s.device);
            }
        }
    }

    fn merge(&mut self, o: Activity) {
        if o.events == 0 {
            return;
        }
        if self.events == 0 {
            *self = o;
            return;
        }
        self.events += o.events;
        self.first_us = self.first_us.min(o.first_us);
        self.last_us = self.last_us.max(o.last_us);
        self.kinds |= o.kinds;
        for d in o.devices {
            if let Err(i) = self.devices.binary_search(&d) {
                self.devices.insert(i, d);
            }
        }
    }
}

fn window_events() -> Vec<WindowEvent> {
    let opts = DecodeOptions::default();
    let mut accounts: HashMap<String, u32> = HashMap::new();
    let mut devices: HashMap<String, u32> = HashMap::new();
    let mut out = Vec::new();
    for line in small_events() {
        let Ok(e) = decode(line, &opts) else { continue };
        let n = accounts.len() as u32;
        let account = *accounts.entry(e.account_id.to_string()).or_insert(n);
        let device = match &e.device_id {
            Some(d) => {
                let n = devices.len() as u32;
                *devices.entry(d.to_string()).or_insert(n)
            }
            None => u32::MAX,
        };
        out.push(WindowEvent {
            account,
            t_us: e.ts_micros,
            input: Seen {
                kind: e.kind as u8,
                device,
            },
        });
    }
    out
}

/// Pushes every event, closing windows as the watermark passes them.
fn run_windows(spec: &WindowSpec, events: &[WindowEvent]) -> (usize, u64) {
    let mut w: Windows<u32, Activity> = Windows::new(spec.clone(), LATENESS_US);
    let mut closed = 0usize;
    for e in events {
        w.push(e.account, e.t_us, &e.input);
        closed += w.advance().len();
    }
    closed += w.finish().len();
    (closed, w.late())
}

fn live_schedule() -> Schedule {
    let day = 86_400;
    let week = DetectorWindow {
        size_s: day,
        lookback_s: 6 * day,
        delay_s: 3600,
    };
    let windows: BTreeMap<String, DetectorWindow> = [
        ("non_human_track", week),
        ("phone_farm", week),
        ("bulk_check_in", week),
        ("record_churn", week),
        ("report_inflation", week),
        (
            "registration_farm",
            DetectorWindow {
                delay_s: 25 * 3600,
                ..week
            },
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Schedule::new(&windows, UTC_OFFSET_S)
}

/// Observes every event and takes the closes that are due, as the live
/// service does after each poll.
fn run_schedule(schedule: &Schedule, events: &[WindowEvent]) -> usize {
    let mut wm = Watermark::new(LATENESS_US);
    let mut progress = Progress::new();
    let (mut first, mut closes) = (i64::MAX, 0usize);
    for e in events {
        wm.observe(e.t_us);
        first = first.min(e.t_us);
        let (Some(w), Some(last)) = (wm.current(), wm.max_event()) else {
            continue;
        };
        for c in schedule.due(&progress, first, last, w) {
            progress.insert(schedule.groups[c.group].name.clone(), c.span.end_us);
            closes += 1;
        }
    }
    closes
}

fn bench_window(c: &mut Criterion) {
    let events = window_events();
    let specs = [
        ("tumbling", WindowKind::Tumbling { size_s: 3600 }),
        (
            "sliding",
            WindowKind::Sliding {
                size_s: 3600,
                slide_s: 900,
            },
        ),
        ("session", WindowKind::Session { gap_s: 1800 }),
    ];
    let mut g = c.benchmark_group("window");
    g.throughput(Throughput::Elements(events.len() as u64));
    let schedule = live_schedule();
    eprintln!(
        "input: window/schedule_due, {} groups, {} closes",
        schedule.groups.len(),
        run_schedule(&schedule, &events)
    );
    g.bench_function("schedule_due", |b| {
        b.iter(|| run_schedule(&schedule, black_box(&events)))
    });
    for (name, kind) in specs {
        if let WindowKind::Session { .. } = kind {
            // A third of a second an iteration (`advance` visits every
            // key's open sessions): ten one-iteration samples.
            g.sampling_mode(SamplingMode::Flat);
            g.measurement_time(Duration::from_secs(4));
        }
        let spec = WindowSpec {
            kind,
            utc_offset_s: UTC_OFFSET_S,
        };
        let (closed, late) = run_windows(&spec, &events);
        eprintln!(
            "input: window/{name}, {} events, {closed} windows closed, {late} late",
            events.len()
        );
        g.bench_function(name, |b| b.iter(|| run_windows(&spec, black_box(&events))));
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = micro;
    config = config();
    targets = bench_decode, bench_track, bench_group, bench_window
}
criterion_main!(micro);
