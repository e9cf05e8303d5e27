//! Patrols from the `events` table, as the `track_steps` view defines them.

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use groundtruth_track::{Fix, Patrol};

use crate::error::DetectError;

const WHAT: &str = "patrol tracks (track_steps)";

/// Column `name` of a batch of `what`, cast to `to`; an error that names
/// the query and the column when it is missing or of another type.
pub fn col(
    b: &RecordBatch,
    what: &'static str,
    name: &'static str,
    to: &DataType,
) -> Result<ArrayRef, DetectError> {
    let c = b.column_by_name(name).ok_or_else(|| DetectError::Column {
        what,
        column: name,
        found: "nothing".into(),
    })?;
    if c.data_type() == to {
        return Ok(Arc::clone(c));
    }
    cast(c, to).map_err(|e| DetectError::Column {
        what,
        column: name,
        found: format!("{} ({e})", c.data_type()),
    })
}

/// Reads every patrol's fixes, with their steps, from the `events` in `ctx`.
///
/// The result is exactly what `sql/track_steps.sql` gives (the test
/// `loaded_patrols_equal_the_track_steps_view` holds the two together):
/// fixes of one patrol at the same instant are one (the first by
/// `event_id`), `dt_s` is the microsecond difference over 1e6 and `step_m`
/// the same `haversine_m`. The view's three window functions sort every
/// fix of a week by four string keys; a plain scan grouped here costs a
/// tenth of that, and a window runs this once per close.
pub async fn load_patrols(ctx: &SessionContext) -> Result<Vec<Patrol>, DetectError> {
    let q = |source| DetectError::Query { what: WHAT, source };
    let batches = ctx.sql(SCAN).await.map_err(q)?.collect().await.map_err(q)?;
    let cols = batches
        .iter()
        .map(FixColumns::of)
        .collect::<Result<Vec<_>, _>>()?;
    let views: Vec<FixView<'_>> = cols.iter().map(FixColumns::view).collect();
    // Rows of each patrol, keyed by (app, account, patrol).
    let mut by_patrol: HashMap<PatrolKey<'_>, Vec<FixRow<'_>>> = HashMap::new();
    for (bi, v) in views.iter().enumerate() {
        for r in 0..v.t.len() {
            by_patrol
                .entry((v.app.value(r), v.account.value(r), v.patrol.value(r)))
                .or_default()
                .push((v.t.value(r), v.event.value(r), bi as u32, r as u32));
        }
    }
    let mut keys: Vec<_> = by_patrol.into_iter().collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(keys.len());
    for ((app, account, patrol), mut rows) in keys {
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        rows.dedup_by_key(|r| r.0);
        let mut p = Patrol {
            app_id: app.to_string(),
            account_id: account.to_string(),
            patrol_id: patrol.to_string(),
            ..Patrol::default()
        };
        p.fixes.reserve(rows.len());
        let mut steps = Vec::with_capacity(rows.len());
        let mut prev: Option<(i64, f64, f64)> = None;
        for &(t_us, _, bi, r) in &rows {
            let (v, r) = (&views[bi as usize], r as usize);
            if !v.device.is_null(r) && !p.devices.iter().any(|d| d == v.device.value(r)) {
                p.devices.push(v.device.value(r).to_string());
            }
            if !v.integrity.is_null(r) && v.integrity.value(r) == "virtual" {
                p.emulator = true;
            }
            let (lat, lon) = (v.lat.value(r), v.lon.value(r));
            p.fixes.push(Fix {
                t_ms: t_us.div_euclid(1000),
                lat,
                lon,
                accuracy_m: (!v.accuracy.is_null(r)).then(|| v.accuracy.value(r)),
                mock: !v.mock.is_null(r) && v.mock.value(r),
                speed_mps: (!v.speed.is_null(r)).then(|| v.speed.value(r)),
            });
            steps.push(match prev {
                Some((pt, plat, plon)) => (
                    (t_us - pt) as f64 / 1e6,
                    groundtruth_sql::haversine_m(plat, plon, lat, lon),
                ),
                None => (0.0, 0.0),
            });
            prev = Some((t_us, lat, lon));
        }
        p.steps = Some(steps);
        out.push(p);
    }
    Ok(out)
}

/// (app_id, account_id, patrol_id).
type PatrolKey<'a> = (&'a str, &'a str, &'a str);

/// (t_us, event_id, batch, row) of one scanned fix.
type FixRow<'a> = (i64, &'a str, u32, u32);

/// The scan behind [`load_patrols`]: `track_steps.sql`'s `fixes` without
/// its window functions.
const SCAN: &str = "SELECT app_id, account_id, patrol_id, event_id, \
    CAST(ts AS BIGINT) AS t_us, lat, lon, accuracy_m, mock_location, device_id, integrity, \
    speed_mps AS device_speed_mps \
    FROM events \
    WHERE kind = 'track_point' AND patrol_id IS NOT NULL \
      AND lat IS NOT NULL AND lon IS NOT NULL";

/// One scanned batch's columns, cast to the types read here.
struct FixColumns([ArrayRef; 12]);

/// Typed views of [`FixColumns`].
struct FixView<'a> {
    app: &'a StringArray,
    account: &'a StringArray,
    patrol: &'a StringArray,
    event: &'a StringArray,
    t: &'a Int64Array,
    lat: &'a Float64Array,
    lon: &'a Float64Array,
    accuracy: &'a Float64Array,
    mock: &'a BooleanArray,
    device: &'a StringArray,
    integrity: &'a StringArray,
    speed: &'a Float64Array,
}

impl FixColumns {
    fn of(b: &RecordBatch) -> Result<FixColumns, DetectError> {
        let (s, i, f) = (&DataType::Utf8, &DataType::Int64, &DataType::Float64);
        Ok(FixColumns([
            col(b, WHAT, "app_id", s)?,
            col(b, WHAT, "account_id", s)?,
            col(b, WHAT, "patrol_id", s)?,
            col(b, WHAT, "event_id", s)?,
            col(b, WHAT, "t_us", i)?,
            col(b, WHAT, "lat", f)?,
            col(b, WHAT, "lon", f)?,
            col(b, WHAT, "accuracy_m", f)?,
            col(b, WHAT, "mock_location", &DataType::Boolean)?,
            col(b, WHAT, "device_id", s)?,
            col(b, WHAT, "integrity", s)?,
            col(b, WHAT, "device_speed_mps", f)?,
        ]))
    }

    fn view(&self) -> FixView<'_> {
        let c = &self.0;
        FixView {
            app: c[0].as_string::<i32>(),
            account: c[1].as_string::<i32>(),
            patrol: c[2].as_string::<i32>(),
            event: c[3].as_string::<i32>(),
            t: c[4].as_primitive::<Int64Type>(),
            lat: c[5].as_primitive::<Float64Type>(),
            lon: c[6].as_primitive::<Float64Type>(),
            accuracy: c[7].as_primitive::<Float64Type>(),
            mock: c[8].as_boolean(),
            device: c[9].as_string::<i32>(),
            integrity: c[10].as_string::<i32>(),
            speed: c[11].as_primitive::<Float64Type>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use groundtruth_sql::open_session;
    use proptest::prelude::*;

    use super::*;

    /// The patrols as the `track_steps` view gives them: the definition
    /// [`load_patrols`] must reproduce.
    async fn patrols_of_the_view(ctx: &SessionContext) -> Vec<Patrol> {
        let batches = ctx
            .sql(
                "SELECT app_id, account_id, patrol_id, t_us, lat, lon, accuracy_m, \
                 mock_location, device_id, integrity, dt_s, step_m, device_speed_mps \
                 FROM track_steps ORDER BY app_id, account_id, patrol_id, seq",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut out: Vec<Patrol> = Vec::new();
        for b in &batches {
            let s = |n| col(b, WHAT, n, &DataType::Utf8).unwrap();
            let f = |n| col(b, WHAT, n, &DataType::Float64).unwrap();
            let (app, acc, pid, dev, integ) = (
                s("app_id"),
                s("account_id"),
                s("patrol_id"),
                s("device_id"),
                s("integrity"),
            );
            let (app, acc, pid, dev, integ) = (
                app.as_string::<i32>(),
                acc.as_string::<i32>(),
                pid.as_string::<i32>(),
                dev.as_string::<i32>(),
                integ.as_string::<i32>(),
            );
            let t = col(b, WHAT, "t_us", &DataType::Int64).unwrap();
            let t = t.as_primitive::<Int64Type>();
            let (lat, lon, accm, dt, step, speed) = (
                f("lat"),
                f("lon"),
                f("accuracy_m"),
                f("dt_s"),
                f("step_m"),
                f("device_speed_mps"),
            );
            let mock = col(b, WHAT, "mock_location", &DataType::Boolean).unwrap();
            let p64 = |a: &ArrayRef| a.as_primitive::<Float64Type>().clone();
            let (lat, lon, accm, dt, step, speed) = (
                p64(&lat),
                p64(&lon),
                p64(&accm),
                p64(&dt),
                p64(&step),
                p64(&speed),
            );
            for r in 0..b.num_rows() {
                let same = out.last().is_some_and(|p| {
                    (
                        p.app_id.as_str(),
                        p.account_id.as_str(),
                        p.patrol_id.as_str(),
                    ) == (app.value(r), acc.value(r), pid.value(r))
                });
                if !same {
                    out.push(Patrol {
                        app_id: app.value(r).into(),
                        account_id: acc.value(r).into(),
                        patrol_id: pid.value(r).into(),
                        steps: Some(Vec::new()),
                        ..Patrol::default()
                    });
                }
                let p = out.last_mut().unwrap();
                if !dev.is_null(r) && !p.devices.iter().any(|d| d == dev.value(r)) {
                    p.devices.push(dev.value(r).into());
                }
                p.emulator |= !integ.is_null(r) && integ.value(r) == "virtual";
                p.fixes.push(Fix {
                    t_ms: t.value(r).div_euclid(1000),
                    lat: lat.value(r),
                    lon: lon.value(r),
                    accuracy_m: (!accm.is_null(r)).then(|| accm.value(r)),
                    mock: mock.as_boolean().value(r),
                    speed_mps: (!speed.is_null(r)).then(|| speed.value(r)),
                });
                p.steps.as_mut().unwrap().push((dt.value(r), step.value(r)));
            }
        }
        out
    }

    async fn both(dir: &Path) -> (Vec<Patrol>, Vec<Patrol>) {
        let ctx = open_session(dir).await.unwrap();
        groundtruth_sql::register_event_views(&ctx).await.unwrap();
        (
            load_patrols(&ctx).await.unwrap(),
            patrols_of_the_view(&ctx).await,
        )
    }

    /// One fix: (app, account, patrol, µs offset, lat, lon, accuracy,
    /// mock, device, integrity).
    type FixSpec = (
        usize,
        usize,
        usize,
        i64,
        f64,
        f64,
        Option<f64>,
        Option<bool>,
        Option<usize>,
        Option<usize>,
    );

    fn fix_spec() -> impl Strategy<Value = FixSpec> {
        (
            0..2usize,
            0..2usize,
            0..3usize,
            // Few distinct instants so that fixes share one; µs apart.
            prop_oneof![0..40i64, 0..3_600_000_000i64],
            22.80..22.82f64,
            108.30..108.32f64,
            proptest::option::of(0.0..50.0f64),
            proptest::option::of(any::<bool>()),
            proptest::option::of(0..2usize),
            proptest::option::of(0..2usize),
        )
    }

    fn lines_of(fixes: &[FixSpec], order: &[usize]) -> Vec<String> {
        const T0: i64 = 1_793_000_000_000_000; // 2026-10-27, µs
        order
            .iter()
            .map(|&i| {
                let (app, acc, pid, dt, lat, lon, accuracy, mock, dev, integ) = fixes[i];
                let ts = chrono::DateTime::from_timestamp_micros(T0 + dt * 37)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                let (app, acc, pid) = (
                    ["river-chief", "forest"][app],
                    ["u1", "u10"][acc],
                    ["p1", "p10", "p2"][pid],
                );
                let mut v = serde_json::json!({
                    // Ids out of step with the order of time and of input.
                    "event_id": format!("e{:04}", (i * 7919) % 10_007),
                    "ts": ts,
                    "app_id": app,
                    "account_id": acc,
                    "kind": "track_point",
                    "lat": lat,
                    "lon": lon,
                    "attrs": {"patrol_id": pid},
                });
                if let Some(a) = accuracy {
                    v["accuracy_m"] = a.into();
                }
                if let Some(m) = mock {
                    v["mock_location"] = m.into();
                }
                if let Some(d) = dev {
                    v["device_id"] = ["d1", "d2"][d].into();
                }
                if let Some(g) = integ {
                    v["integrity"] = ["virtual", "strong"][g].into();
                }
                // The device's speed on two fixes in three.
                if i % 3 != 0 {
                    v["speed_mps"] = ((i % 17) as f64 * 0.25).into();
                }
                v.to_string()
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn loaded_patrols_equal_the_track_steps_view(
            (fixes, order) in proptest::collection::vec(fix_spec(), 1..80)
                .prop_flat_map(|f| {
                    let n = f.len();
                    (Just(f), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
                })
        ) {
            let dir = tempfile::tempdir().unwrap();
            groundtruth_ingest::ingest_lines(dir.path(), "test", &lines_of(&fixes, &order)).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (loaded, view) = rt.block_on(both(dir.path()));
            prop_assert!(!loaded.is_empty());
            prop_assert_eq!(loaded, view);
        }
    }

    #[tokio::test]
    async fn loaded_patrols_equal_the_view_over_a_simulated_lake() {
        let sc = groundtruth_sim::Scenario::from_toml_str(include_str!(
            "../../../pipelines/sim-small.toml"
        ))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        groundtruth_ingest::simulate_into(&sc, dir.path()).unwrap();
        let (loaded, view) = both(dir.path()).await;
        assert!(loaded.len() > 10, "{} patrols", loaded.len());
        assert_eq!(loaded, view);
    }
}
