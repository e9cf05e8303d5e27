//! Stream equals batch at the core: any arrival order within the allowed
//! lateness closes the same windows with the same aggregates as the sorted
//! input; a restart from a checkpoint changes nothing; state is bounded.

use groundtruth_window::{Arrival, Closed, Partial, WindowKind, WindowSpec, Windows};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

const US: i64 = 1_000_000;

/// Test aggregate: count, sum and the multiset of values.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Agg {
    n: u64,
    sum: i64,
    values: Vec<i64>,
}

impl Partial for Agg {
    type Input = i64;
    fn add(&mut self, _t: i64, x: &i64) {
        self.n += 1;
        self.sum += x;
        self.values.push(*x);
        self.values.sort_unstable();
    }
    fn merge(&mut self, o: Agg) {
        self.n += o.n;
        self.sum += o.sum;
        self.values.extend(o.values);
        self.values.sort_unstable();
    }
}

fn specs() -> Vec<WindowSpec> {
    vec![
        WindowSpec {
            kind: WindowKind::Tumbling { size_s: 60 },
            utc_offset_s: 0,
        },
        WindowSpec {
            kind: WindowKind::Sliding {
                size_s: 120,
                slide_s: 30,
            },
            utc_offset_s: 28_800,
        },
        WindowSpec {
            kind: WindowKind::Session { gap_s: 20 },
            utc_offset_s: 0,
        },
    ]
}

type Ev = (u8, i64, i64); // key, t (s), value

fn run(spec: &WindowSpec, lateness_s: i64, evs: &[Ev]) -> Vec<Closed<u8, Agg>> {
    let mut w: Windows<u8, Agg> = Windows::new(spec.clone(), lateness_s * US);
    let mut out = Vec::new();
    for &(k, t, v) in evs {
        assert_eq!(w.push(k, t * US, &v), Arrival::OnTime);
        out.extend(w.advance());
    }
    out.extend(w.finish());
    out.sort_by_key(|c| (c.span, c.key));
    out
}

/// Events with arrival delays up to the lateness: arrival order = t + delay.
fn shuffled(evs: &[Ev], delays: &[i64]) -> Vec<Ev> {
    let mut v: Vec<(i64, usize, Ev)> = evs
        .iter()
        .enumerate()
        .map(|(i, e)| (e.1 + delays[i % delays.len()], i, *e))
        .collect();
    v.sort();
    v.into_iter().map(|x| x.2).collect()
}

fn events() -> impl Strategy<Value = Vec<Ev>> {
    proptest::collection::vec((0u8..3, 0i64..2_000, -50i64..50), 1..200).prop_map(|mut v| {
        v.sort_by_key(|e| e.1);
        v
    })
}

proptest! {
    #[test]
    fn any_order_within_lateness_closes_the_same_windows(
        evs in events(),
        delays in proptest::collection::vec(0i64..=90, 1..50),
    ) {
        for spec in specs() {
            let sorted = run(&spec, 90, &evs);
            let late = run(&spec, 90, &shuffled(&evs, &delays));
            prop_assert_eq!(&sorted, &late, "{:?}", spec.kind);
            // Every event lands in its windows once.
            let n: u64 = sorted.iter().map(|c| c.partial.n).sum();
            let per_event = match spec.kind {
                WindowKind::Sliding { size_s, slide_s } => (size_s / slide_s) as u64,
                _ => 1,
            };
            prop_assert_eq!(n, evs.len() as u64 * per_event);
        }
    }

    #[test]
    fn restart_from_checkpoint_equals_uninterrupted(
        evs in events(),
        cut in 0usize..200,
    ) {
        for spec in specs() {
            let whole = run(&spec, 30, &evs);
            let cut = cut.min(evs.len());
            let mut w: Windows<u8, Agg> = Windows::new(spec.clone(), 30 * US);
            let mut out = Vec::new();
            for &(k, t, v) in &evs[..cut] {
                w.push(k, t * US, &v);
                out.extend(w.advance());
            }
            let saved = w.checkpoint().unwrap();
            drop(w);
            let mut w: Windows<u8, Agg> = Windows::restore(&saved).unwrap();
            for &(k, t, v) in &evs[cut..] {
                w.push(k, t * US, &v);
                out.extend(w.advance());
            }
            out.extend(w.finish());
            out.sort_by_key(|c| (c.span, c.key));
            prop_assert_eq!(whole, out);
        }
    }
}

#[test]
fn state_is_bounded_and_late_events_are_counted() {
    let spec = WindowSpec {
        kind: WindowKind::Tumbling { size_s: 60 },
        utc_offset_s: 0,
    };
    let mut w: Windows<u8, Agg> = Windows::new(spec, 120 * US);
    let mut most = 0;
    // A day of events, one a second, three keys.
    for t in 0..86_400i64 {
        w.push((t % 3) as u8, t * US, &1);
        w.advance();
        most = most.max(w.open_windows());
    }
    // Open windows: those within lateness + one window, per key.
    assert!(most <= 3 * (120 / 60 + 2), "{most}");
    // An event two hours old is late: counted, not folded.
    assert!(matches!(w.push(0, 3_600 * US, &1), Arrival::Late { .. }));
    assert_eq!(w.late(), 1);
    w.finish();
    assert_eq!(w.open_windows(), 0);
}

#[test]
fn a_late_bridge_joins_two_sessions() {
    let spec = WindowSpec {
        kind: WindowKind::Session { gap_s: 10 },
        utc_offset_s: 0,
    };
    let mut w: Windows<&str, Agg> = Windows::new(spec, 100 * US);
    w.push("a", 0, &1);
    w.push("a", 15 * US, &2);
    assert_eq!(w.open_windows(), 2);
    w.push("a", 8 * US, &3); // within 10 s of both
    assert_eq!(w.open_windows(), 1);
    let c = w.finish();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].span.start_us, 0);
    assert_eq!(c[0].span.end_us, 25 * US);
    assert_eq!(c[0].partial.values, vec![1, 2, 3]);
}

#[test]
fn a_corrupt_checkpoint_is_a_clear_error() {
    let e = Windows::<u8, Agg>::restore(b"{not json").unwrap_err();
    assert!(e.to_string().contains("delete it to rebuild"), "{e}");
}
