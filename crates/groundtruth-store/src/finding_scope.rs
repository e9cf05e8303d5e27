//! Where a finding belongs (its app and its accounts' units), read from
//! its evidence: what scoping and masking decide by.

use std::collections::BTreeMap;

use groundtruth_finding::Finding;
use serde_json::Value;

/// Where a finding belongs: its app and the units of its accounts, read
/// from its evidence (`app_id`, `scope.apps`, `scope.regions`; the
/// detection pipeline adds `scope` from the events).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FindingScope {
    pub app_id: String,
    /// Region code → accounts of the finding in it.
    pub regions: BTreeMap<String, i64>,
    /// Account → its region, where the pipeline wrote it.
    pub accounts: BTreeMap<String, String>,
}

impl FindingScope {
    pub fn of(f: &Finding) -> FindingScope {
        let scope = f.evidence.get("scope");
        let apps: Vec<&str> = scope
            .and_then(|s| s.get("apps"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let app_id = match f.evidence.get("app_id").and_then(Value::as_str) {
            Some(a) => a.to_string(),
            None => {
                let mut apps = apps;
                apps.sort_unstable();
                apps.dedup();
                apps.join(",")
            }
        };
        let mut regions = BTreeMap::new();
        match scope.and_then(|s| s.get("regions")) {
            Some(Value::Object(m)) => {
                for (r, n) in m {
                    if valid_region(r) {
                        regions.insert(r.clone(), n.as_i64().unwrap_or(1).max(1));
                    }
                }
            }
            Some(Value::Array(a)) => {
                for r in a.iter().filter_map(Value::as_str) {
                    if valid_region(r) {
                        regions.insert(r.to_string(), 1);
                    }
                }
            }
            _ => {}
        }
        let accounts = scope
            .and_then(|s| s.get("accounts"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(a, r)| {
                        let r = r.as_str().filter(|r| valid_region(r))?;
                        Some((a.clone(), r.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        FindingScope {
            app_id,
            regions,
            accounts,
        }
    }

    /// The region most of its accounts are in.
    pub(crate) fn primary(&self) -> String {
        self.regions
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(r, _)| r.clone())
            .unwrap_or_default()
    }
}

/// A region code as the contract writes it: six digits.
fn valid_region(r: &str) -> bool {
    r.len() == 6 && r.bytes().all(|b| b.is_ascii_digit())
}
