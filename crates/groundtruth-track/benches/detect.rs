//! non_human_track speed on one core: patrols and fixes scored per second,
//! over the simulator's patrols (the evaluation scenario's mix of walkers,
//! cyclists, cars, boats, dogs, mock apps, teleports and replays), repeated
//! until there are at least `GT_BENCH_FIXES` fixes (default 1,000,000).
//!
//! `cargo bench -p groundtruth-track --bench detect`
//!
//! Times `detect()` alone (features, rules, replay search, mode mixture);
//! the SQL step (`sql/track_steps.sql`) is timed by `groundtruth eval tracks`.

use std::collections::BTreeMap;
use std::time::Instant;

use groundtruth_sim::{simulate, Scenario};
use groundtruth_track::{detect, point, Fix, Patrol};

fn main() {
    let want: usize = std::env::var("GT_BENCH_FIXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let text = include_str!("../../../pipelines/eval-tracks.toml");
    let base = Scenario::from_toml_str(text).expect("eval-tracks.toml");
    let mut patrols: Vec<Patrol> = Vec::new();
    let mut fixes = 0usize;
    let mut round = 0u64;
    while fixes < want {
        let mut sc = base.clone();
        sc.seed += round;
        round += 1;
        let mut out: Vec<Vec<u8>> = Vec::new();
        simulate(&sc, &mut out).expect("simulate");
        let mut by: BTreeMap<(String, String), Vec<Fix>> = BTreeMap::new();
        for line in &out {
            if !line.windows(13).any(|w| w == b"\"track_point\"") {
                continue;
            }
            let v: serde_json::Value = serde_json::from_slice(line).expect("json");
            let t = chrono_ms(v["ts"].as_str().unwrap_or_default());
            by.entry((
                v["account_id"].as_str().unwrap_or_default().to_string(),
                format!(
                    "{}-{round}",
                    v["attrs"]["patrol_id"].as_str().unwrap_or_default()
                ),
            ))
            .or_default()
            .push(Fix {
                t_ms: t,
                lat: v["lat"].as_f64().unwrap_or(0.0),
                lon: v["lon"].as_f64().unwrap_or(0.0),
                accuracy_m: v["accuracy_m"].as_f64(),
                mock: v["mock_location"].as_bool().unwrap_or(false),
                speed_mps: v["speed_mps"].as_f64(),
            });
        }
        for ((account_id, patrol_id), mut f) in by {
            point::normalise(&mut f);
            fixes += f.len();
            patrols.push(Patrol {
                app_id: "bench".into(),
                account_id,
                patrol_id,
                fixes: f,
                ..Patrol::default()
            });
        }
    }
    let started = Instant::now();
    let report = detect(&patrols);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "non_human_track: {} patrols, {} fixes in {:.2} s on one core: {:.0} patrols/s, {:.0} fixes/s; \
         {} flagged; replay search: {} indexed, {} candidates compared, {} replays",
        patrols.len(),
        fixes,
        secs,
        patrols.len() as f64 / secs,
        fixes as f64 / secs,
        report.findings.len(),
        report.replay_stats.indexed,
        report.replay_stats.candidates,
        report.replay_stats.matches
    );
}

/// `2026-11-09T09:55:22.459+08:00` to epoch ms (the simulator's format).
fn chrono_ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}
