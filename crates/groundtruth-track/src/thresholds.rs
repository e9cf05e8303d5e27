//! Every threshold of the detector, with where it comes from. None is fitted
//! to a data file: they are physical limits, published figures for people and
//! dogs, or properties of phone GPS. The population of patrols enters only
//! through the mode mixture model ([`crate::modes`]).

/// Accuracy assumed when a track reports none: the worst of typical phone
/// GPS (5-30 m outdoors; Zandbergen & Barbeau 2011; worse among tall
/// buildings). Without a reported accuracy nobody can say the noise was
/// small, so small-scale movement must not count against the person.
pub const DEFAULT_ACCURACY_M: f64 = 30.0;

/// Fastest plausible ground or water travel: 100 m/s = 360 km/h, above
/// China's fastest scheduled trains (350 km/h). A step faster than this is
/// a jump, not movement.
pub const MAX_GROUND_MPS: f64 = 100.0;

/// Longest a phone reports wrong positions before it catches up with where
/// its owner really is (lost satellites under a bridge or in a tunnel, a
/// fall-back to cell positions), seconds. A jump back to where the track
/// could be at its own pace from a fix this recent is such a catch-up.
pub const GLITCH_MAX_S: f64 = 900.0;

/// A stretch of wrong fixes moves faster than its owner: a step at more
/// than this many times the track's 95th-percentile pace elsewhere (cell or
/// Wi-Fi positions hopping between towers) ...
pub const DRIFT_PACE_FACTOR: f64 = 2.0;

/// ... and longer than this, so that a fix's scatter at a stop is not read
/// as drift (twice the worst phone GPS error outdoors).
pub const DRIFT_MIN_M: f64 = 60.0;

/// A reported accuracy worse than this was not a satellite fix (phone GPS
/// is 5-30 m outdoors, up to ~50 m among tall buildings; Wi-Fi and cell
/// positions report 100 m to kilometres): 100 m, or three times the
/// track's own median accuracy for a phone that is always poor.
pub fn degraded_accuracy_m(acc_med: Option<f64>) -> f64 {
    acc_med.map_or(100.0, |m| (3.0 * m).max(100.0))
}

/// A jump must also be longer than positioning error can explain. When both
/// fixes report their accuracy: 500 m, or ten times the worse accuracy if
/// that is larger. When either does not, the fix may have come from the
/// phone's network (cell tower) fallback, which is off by up to ~3 km in
/// towns: 3 km.
pub fn jump_min_m(acc_a: Option<f64>, acc_b: Option<f64>) -> f64 {
    match (acc_a, acc_b) {
        (Some(a), Some(b)) => (10.0 * a.max(b)).max(500.0),
        _ => UNKNOWN_ACCURACY_JUMP_M,
    }
}

/// See [`jump_min_m`].
pub const UNKNOWN_ACCURACY_JUMP_M: f64 = 3000.0;

/// Fix intervals longer than this are signal gaps, not steps (phones drop
/// fixes under trees, bridges, in buildings).
pub const GAP_S: f64 = 60.0;

/// Stay-point radius: 25 m or 1.5 times the reported accuracy.
pub fn stop_radius(acc_med: f64) -> f64 {
    (1.5 * acc_med).max(25.0)
}

/// Minimum stay: 30 s, and long enough that someone walking at 1 m/s (the
/// slow end of human walking, Bohannon 1997: 1.2-1.5 m/s comfortable) would
/// have crossed the stay circle.
pub fn stop_min_s(radius_m: f64) -> f64 {
    (2.0 * radius_m / 1.0).max(30.0)
}

/// Step of the rediscretised path for turning angles and sinuosity: 10 m or
/// the median accuracy, so that GPS noise does not read as turning
/// (Benhamou 2004 recommends a step above the measurement error).
pub fn rediscretise_m(acc_med: f64) -> f64 {
    acc_med.max(10.0)
}

/// Length of the stretches whose straightness tells a mover heading
/// somewhere from one that meanders: 50 m (about 40 s of walking, beyond
/// the few metres phone GPS wanders), or five rediscretised steps when the
/// accuracy is worse.
pub fn course_window_m(q: f64) -> f64 {
    (5.0 * q).max(50.0)
}

/// A stretch at least this straight (distance over path) is a straight run.
pub const STRAIGHT_RUN: f64 = 0.9;

/// A burst is faster than this: above a person's brisk walk and patrol jog
/// (walking 1.2-1.5 m/s, jogging 2.5-3.3 m/s), the low end of a dog's run
/// (dogs trot 2-4 m/s and sprint 4-10 m/s).
pub const BURST_MPS: f64 = 3.5;
/// ...and slower than this: dogs sprint 4-10 m/s (issue figures; only
/// racing breeds reach 15); faster short runs are vehicles or GPS glitches.
pub const BURST_MAX_MPS: f64 = 10.0;
/// ...and lasts at most this long (a dog's dash back to its owner or after
/// a smell; a person running for minutes is a jogger, not a burst).
pub const BURST_MAX_S: f64 = 60.0;
/// Steps below this are slow (a walk); bursts sit between slow stretches.
pub const SLOW_MPS: f64 = 2.0;

/// A burst must cover more ground than GPS noise: 30 m or three accuracies.
pub fn burst_min_m(acc_med: f64) -> f64 {
    (3.0 * acc_med).max(30.0)
}

/// A return home is coming within `r_in` of the most visited spot after
/// having been beyond `r_out`: well outside the GPS error either way.
pub fn home_radii(acc_med: f64) -> (f64, f64) {
    let r_in = acc_med.max(25.0);
    (r_in, 2.0 * r_in + 20.0)
}

// ---- classification rules (see `crate::classify`) ----

/// The OS marked this share of the fixes as mock locations.
pub const MOCK_SHARE: f64 = 0.2;

/// Machine-constant speed: real movement measured by phone GPS varies by
/// well over 10% fix to fix (GPS error alone adds metres per fix), so a
/// median absolute deviation under 3% of the median speed...
pub const SYNTHETIC_SPEED_MAD: f64 = 0.03;
/// ...together with fixes lying on straight lines to within 0.5 m (phone
/// GPS error is 2-10 m and moves metres between fixes) is drawn, not walked.
pub const SYNTHETIC_JITTER_M: f64 = 0.5;
/// Moving steps needed before judging constancy.
pub const SYNTHETIC_MIN_STEPS: usize = 20;

/// Animal-like movement is judged at the 10-100 m scale, so only on tracks
/// whose phone reports its accuracy on most fixes, with a median no worse
/// than this. Without it, GPS noise among buildings (tens of metres,
/// wandering) draws exactly such small, winding, back-and-forth tracks, and
/// nobody may be accused on noise.
pub const ANIMAL_MAX_ACCURACY_M: f64 = 20.0;
/// Animal-like: at least this many sprint bursts (a dog dashes after a smell
/// and back to its owner; a person surveying a small plot winds, stops,
/// changes pace and crosses the same spots too, but does not sprint)...
pub const ANIMAL_MIN_BURSTS: usize = 2;
/// Animal-like without dashes (a dog that never runs: it sniffs, walks and
/// turns at a walker's pace): the same confinement and winding, and it
/// meanders at every scale a person keeps a course. Over 50 m stretches
/// ([`course_window_m`]) it gets less than this share as far as it walks.
/// A person heading anywhere, on a route or across a small site, keeps
/// 0.9 and more between turns; a correlated random walk whose heading
/// drifts a few tens of degrees every 10 m gets about 0.6-0.8.
pub const ANIMAL_MAX_COURSE_STRAIGHTNESS: f64 = 0.85;
/// ...and it turns at most steps, not in a few sharp turns: the median
/// turn per rediscretised step is at least this. A person's path is
/// straight steps (GPS noise: a few degrees) with sharp turns at the ends
/// of a transect or a street, so the median stays near 10 degrees even
/// where the mean is high; a foraging dog's heading drifts 15-40 degrees
/// a step.
pub const ANIMAL_MIN_TURN_MEDIAN_DEG: f64 = 15.0;
/// ...and less than this share of its path lies on straight runs
/// ([`STRAIGHT_RUN`] over [`course_window_m`]). A person's path is mostly
/// such runs even on a plot (a transect, the way to the next point); each
/// of the three signs alone has honest exceptions (GPS noise raises the
/// median turn, short transects lower the stretches' straightness), the
/// three together describe meandering.
pub const ANIMAL_MAX_STRAIGHT_SHARE: f64 = 0.7;
/// Meandering is judged at the 10 m step, so only where the phone's median
/// accuracy is within that step. A fix's error is a sizeable share of the
/// accuracy and wanders fix to fix, so with worse accuracy a slow person
/// zig-zagging between points a few dozen metres apart draws the same
/// drifting, turning path (measured: honest site surveys with 11-14 m
/// accuracy in drawn worlds did); dashes, tens of metres at a run's speed,
/// stand out of that noise and keep [`ANIMAL_MAX_ACCURACY_M`].
pub const ANIMAL_MEANDER_MAX_ACCURACY_M: f64 = 10.0;
/// Walked length of the stretches `paced_straightness` is measured over:
/// 50 m, about 40 s of walking. The phone's own speed (Doppler, free of
/// the positions' wander) says how far the mover walked; a person heading
/// somewhere keeps a line that far, a sniffing dog's heading decorrelates
/// within metres (0.3-0.6 of the way). No rule accuses on it: a person
/// visiting points 15-20 m apart on a small plot turns as often and gets
/// as little of the way (honest site surveys of drawn worlds, seed 2, went
/// down to 0.54), and telling straight legs between sharp turns from
/// continuous turning needs positions good to a few metres, which is what
/// the meandering rule ([`ANIMAL_MEANDER_MAX_ACCURACY_M`]) asks. It is
/// shown to the inspector beside the other figures.
pub const PACED_WINDOW_M: f64 = 50.0;
/// A reported speed under this is standing still: the slowest walking is
/// about 0.6 m/s (a stroll, Bohannon 1997 measures 1.2-1.5 m/s comfortable),
/// and a still phone's Doppler noise is a few tenths of a metre a second.
pub const PACED_MIN_MPS: f64 = 0.5;
/// It is measured only when most steps (this share) have a reported speed
/// at both ends...
pub const PACED_MIN_REPORTED_SHARE: f64 = 0.8;
/// ...and over at least this many stretches (a median of a handful says
/// little).
pub const PACED_MIN_STRETCHES: usize = 20;
/// (Raises the score, not required: fix-to-fix speed deviating by this share
/// of the median; people keep a steady pace, 10-20% on a route, more when
/// they stop and go on a site; a dog switches between sniffing, walking,
/// trotting and dashing.)
pub const ANIMAL_ERRATIC_SPEED_MAD: f64 = 0.3;
/// (Raises the score from this many returns to one spot: a dog runs out and
/// back to its owner; a patrol passes any spot at most a few times.)
pub const ANIMAL_MIN_RETURNS: usize = 3;
/// ...within a small area: the radius of gyration under this share of the
/// distance covered. A patrol walks a route: one out-and-back of length L
/// covers 2L with a radius of gyration of about 0.29 L (ratio ~0.14); a dog
/// running to and from its owner covers the same few dozen metres again and
/// again.
pub const ANIMAL_MAX_RG_OVER_PATH: f64 = 0.05;
/// ...winding: turning at least this much per rediscretised step on
/// average (roads and rivers make vehicles and boats turn under 10 degrees;
/// people on foot turn 10-20 degrees here; a foraging dog 25-40).
pub const ANIMAL_MIN_TURN_DEG: f64 = 20.0;

/// Replays: two fixes of independent recordings of the same walk differ by
/// at least the GPS error (metres). After removing a constant offset, a
/// patrol whose fixes lie within this of an earlier patrol's, on average
/// over its whole length, was copied.
pub const REPLAY_RESIDUAL_M: f64 = 2.0;
/// ...and where the patrol reports its accuracy, within this share of its
/// median accuracy (not under [`REPLAY_RESIDUAL_MIN_M`]): two independent
/// recordings of one route differ by about the GPS error, less where the
/// route is a road that holds both to one line. Measured in drawn worlds:
/// two honest cars on one road with 5 m phones differed by 1.8-2.0 m after
/// removing the offset (0.37 of the accuracy), under the 2 m bound; a
/// copy differs by centimetres (interpolation and rounding: at most
/// 0.05 m over 600 replays of drawn worlds and the validation world's 11).
pub const REPLAY_RESIDUAL_SHARE: f64 = 0.2;
/// See [`REPLAY_RESIDUAL_SHARE`]: a copy resampled along a winding path
/// may differ by decimetres.
pub const REPLAY_RESIDUAL_MIN_M: f64 = 0.5;

/// The mean residual under which a patrol with median accuracy `acc`
/// replays another.
pub fn replay_residual_m(acc: Option<f64>) -> f64 {
    acc.map_or(REPLAY_RESIDUAL_M, |a| {
        (REPLAY_RESIDUAL_SHARE * a).clamp(REPLAY_RESIDUAL_MIN_M, REPLAY_RESIDUAL_M)
    })
}
/// Share of the patrol's fixes that must match the earlier patrol that closely.
pub const REPLAY_MIN_COVER: f64 = 0.8;
/// Grid cell of the replay index, metres.
pub const REPLAY_CELL_M: f64 = 50.0;
/// Share of a patrol's cells that must be shared with an earlier patrol for
/// it to be a candidate.
pub const REPLAY_MIN_SHARED: f64 = 0.6;
/// Patrols shorter than this (moving path) are not searched for replays:
/// two short tracks around one spot say nothing.
pub const REPLAY_MIN_PATH_M: f64 = 300.0;
