//! Patrols from the `track_steps` view.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use groundtruth_track::{Fix, Patrol};

use crate::error::DetectError;

const WHAT: &str = "patrol tracks (track_steps)";

const QUERY: &str = "SELECT app_id, account_id, patrol_id, t_us, lat, lon, accuracy_m, \
    mock_location, device_id, integrity, dt_s, step_m \
    FROM track_steps ORDER BY app_id, account_id, patrol_id, seq";

pub(crate) fn col(
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

/// Reads every patrol's fixes (with SQL-computed steps) from `ctx`.
pub async fn load_patrols(ctx: &SessionContext) -> Result<Vec<Patrol>, DetectError> {
    let q = |source| DetectError::Query { what: WHAT, source };
    let batches = ctx
        .sql(QUERY)
        .await
        .map_err(q)?
        .collect()
        .await
        .map_err(q)?;
    let mut out: Vec<Patrol> = Vec::new();
    for b in &batches {
        let app = col(b, WHAT, "app_id", &DataType::Utf8)?;
        let acc_id = col(b, WHAT, "account_id", &DataType::Utf8)?;
        let pid = col(b, WHAT, "patrol_id", &DataType::Utf8)?;
        let dev = col(b, WHAT, "device_id", &DataType::Utf8)?;
        let integ = col(b, WHAT, "integrity", &DataType::Utf8)?;
        let t = col(b, WHAT, "t_us", &DataType::Int64)?;
        let lat = col(b, WHAT, "lat", &DataType::Float64)?;
        let lon = col(b, WHAT, "lon", &DataType::Float64)?;
        let acc = col(b, WHAT, "accuracy_m", &DataType::Float64)?;
        let mock = col(b, WHAT, "mock_location", &DataType::Boolean)?;
        let dt = col(b, WHAT, "dt_s", &DataType::Float64)?;
        let step = col(b, WHAT, "step_m", &DataType::Float64)?;
        let (app, acc_id, pid, dev, integ) = (
            app.as_string::<i32>(),
            acc_id.as_string::<i32>(),
            pid.as_string::<i32>(),
            dev.as_string::<i32>(),
            integ.as_string::<i32>(),
        );
        let t = t.as_primitive::<Int64Type>();
        let (lat, lon, acc) = (
            lat.as_primitive::<Float64Type>(),
            lon.as_primitive::<Float64Type>(),
            acc.as_primitive::<Float64Type>(),
        );
        let mock = mock.as_boolean();
        let (dt, step) = (
            dt.as_primitive::<Float64Type>(),
            step.as_primitive::<Float64Type>(),
        );
        for r in 0..b.num_rows() {
            let same = out.last().is_some_and(|p: &Patrol| {
                p.patrol_id == pid.value(r)
                    && p.account_id == acc_id.value(r)
                    && p.app_id == app.value(r)
            });
            if !same {
                out.push(Patrol {
                    app_id: app.value(r).to_string(),
                    account_id: acc_id.value(r).to_string(),
                    patrol_id: pid.value(r).to_string(),
                    steps: Some(Vec::new()),
                    ..Patrol::default()
                });
            }
            let p = out.last_mut().expect("pushed above");
            if !dev.is_null(r) && !p.devices.iter().any(|d| d == dev.value(r)) {
                p.devices.push(dev.value(r).to_string());
            }
            if !integ.is_null(r) && integ.value(r) == "virtual" {
                p.emulator = true;
            }
            p.fixes.push(Fix {
                t_ms: t.value(r).div_euclid(1000),
                lat: lat.value(r),
                lon: lon.value(r),
                accuracy_m: (!acc.is_null(r)).then(|| acc.value(r)),
                mock: !mock.is_null(r) && mock.value(r),
            });
            if let Some(s) = p.steps.as_mut() {
                s.push((dt.value(r), step.value(r)));
            }
        }
    }
    Ok(out)
}
