//! Where a finding belongs: the apps and units (6-digit division codes)
//! of its accounts, read from the window's events and added to its
//! evidence as `scope` (`{"apps": [...], "regions": {"450102": 28, ...},
//! "accounts": {"<account>": "450102", ...}}`: accounts per unit, and each
//! account's unit). The review store files cases by it, filters every
//! inspector's view by region with it, and hides the accounts and evidence
//! of a case's other regions from an inspector whose scope does not cover
//! them.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use datafusion::prelude::{col, lit, SessionContext};
use groundtruth_finding::Finding;
use serde_json::{json, Value};

use crate::error::DetectError;
use crate::tracks;

const WHAT: &str = "the apps and regions of the findings' accounts";

/// Adds `evidence.scope` to every finding, from the events in `ctx`.
pub async fn annotate(ctx: &SessionContext, findings: &mut [Finding]) -> Result<(), DetectError> {
    if findings.is_empty() {
        return Ok(());
    }
    let accounts: BTreeSet<&str> = findings
        .iter()
        .flat_map(|f| f.accounts.iter().map(String::as_str))
        .collect();
    let q = |source| DetectError::Query { what: WHAT, source };
    let list = accounts.iter().map(|a| lit(*a)).collect();
    let batches = ctx
        .table("events")
        .await
        .map_err(q)?
        .filter(col("account_id").in_list(list, false))
        .map_err(q)?
        .aggregate(
            vec![col("account_id"), col("app_id"), col("region")],
            vec![],
        )
        .map_err(q)?
        .collect()
        .await
        .map_err(q)?;
    // account → [(app, region)]
    let mut seen: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
    for b in &batches {
        let acc = tracks::col(b, WHAT, "account_id", &DataType::Utf8)?;
        let app = tracks::col(b, WHAT, "app_id", &DataType::Utf8)?;
        let reg = tracks::col(b, WHAT, "region", &DataType::Utf8)?;
        let (acc, app, reg) = (
            acc.as_string::<i32>(),
            app.as_string::<i32>(),
            reg.as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            seen.entry(acc.value(i).to_string()).or_default().push((
                app.value(i).to_string(),
                (!reg.is_null(i)).then(|| reg.value(i).to_string()),
            ));
        }
    }
    for f in findings.iter_mut() {
        let own_app = f
            .evidence
            .get("app_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut apps = BTreeSet::new();
        let mut regions: BTreeMap<String, u64> = BTreeMap::new();
        let mut units: BTreeMap<&str, String> = BTreeMap::new();
        for a in &f.accounts {
            let mut mine = BTreeSet::new();
            for (app, region) in seen.get(a).map(Vec::as_slice).unwrap_or(&[]) {
                if own_app.as_ref().is_some_and(|o| o != app) {
                    continue;
                }
                apps.insert(app.clone());
                if let Some(r) = region {
                    mine.insert(r.clone());
                }
            }
            if let Some(first) = mine.first() {
                units.insert(a.as_str(), first.clone());
            }
            for r in mine {
                *regions.entry(r).or_default() += 1;
            }
        }
        let scope = json!({"apps": apps, "regions": regions, "accounts": units});
        f.evidence.insert("scope".into(), scope);
    }
    Ok(())
}
