//! What a caller sees of a case that reaches beyond their scope.
//!
//! A case is filed in every region its accounts are in, so an inspector of
//! one city sees a case whose accounts are mostly in another. They may
//! read it and add notes (a verdict needs a scope covering every region,
//! see `cases.rs`), but the other regions' data stays there: the case's
//! accounts outside the scope (or of no known region) are left out of
//! its account lists, and a finding that reaches outside the scope keeps
//! only its accounts inside it, loses its devices and patrols, and has
//! its evidence and reason withheld (they quote the other regions'
//! accounts, places and times). What was hidden is said:
//! [`OutsideScope`] on the case, `evidence.withheld` on the finding.

use std::collections::{BTreeMap, BTreeSet};

use groundtruth_finding::Finding;
use serde_json::{json, Map, Value};
use sqlx::Row;

use crate::access::Scope;
use crate::error::{db, StoreError};
use crate::finding_scope::FindingScope;
use crate::model::{CaseSummary, OutsideScope};
use crate::ReviewStore;

/// The regions of `regions` that `scope` does not cover.
fn outside<'a>(scope: &Scope, regions: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    regions
        .into_iter()
        .filter(|r| !scope.covers(r))
        .cloned()
        .collect()
}

impl ReviewStore {
    /// `case` as `scope` sees it (unchanged when the scope covers all its
    /// regions).
    pub(crate) async fn mask_case(
        &self,
        scope: &Scope,
        case: &mut CaseSummary,
    ) -> Result<(), StoreError> {
        let regions = outside(scope, &case.regions);
        if regions.is_empty() {
            return Ok(());
        }
        let inside: BTreeSet<String> = sqlx::query(
            "SELECT account_id FROM case_accounts WHERE case_id = $1 AND region LIKE $2",
        )
        .bind(case.case_id)
        .bind(scope.like_pattern())
        .fetch_all(&self.read)
        .await
        .map_err(db("read a case's accounts by region"))?
        .iter()
        .map(|r| r.try_get::<String, _>("account_id"))
        .collect::<Result<_, _>>()
        .map_err(db("read a case's accounts by region"))?;
        case.accounts.retain(|a| inside.contains(a));
        case.outside_scope = Some(OutsideScope {
            regions,
            hidden_accounts: (case.n_accounts - inside.len() as i64).max(0),
        });
        Ok(())
    }

    /// Every case of `cases` as `scope` sees it.
    pub(crate) async fn mask_cases(
        &self,
        scope: &Scope,
        cases: &mut [CaseSummary],
    ) -> Result<(), StoreError> {
        for c in cases {
            self.mask_case(scope, c).await?;
        }
        Ok(())
    }
}

/// `f` as `scope` sees it (unchanged when the scope covers every region of
/// its accounts).
pub(crate) fn mask_finding(scope: &Scope, f: &mut Finding) {
    let fs = FindingScope::of(f);
    let regions = outside(scope, fs.regions.keys());
    if regions.is_empty() {
        return;
    }
    let before = f.accounts.len();
    f.accounts
        .retain(|a| fs.accounts.get(a).is_some_and(|r| scope.covers(r)));
    let hidden = before - f.accounts.len();
    f.devices.clear();
    f.patrol_ids.clear();
    f.reason = format!(
        "withheld: this finding reaches regions outside your scope ({}); an inspector whose scope covers them sees its evidence",
        regions.join(", ")
    );
    let inside: BTreeMap<&String, &i64> =
        fs.regions.iter().filter(|(r, _)| scope.covers(r)).collect();
    let mut evidence = Map::new();
    if let Some(app) = f.evidence.get("app_id") {
        evidence.insert("app_id".into(), app.clone());
    }
    evidence.insert(
        "scope".into(),
        json!({"regions": inside, "accounts": f.accounts.iter().map(|a| (a, &fs.accounts[a])).collect::<BTreeMap<_, _>>()}),
    );
    evidence.insert(
        "withheld".into(),
        json!({"regions": regions, "hidden_accounts": hidden}),
    );
    f.evidence = evidence;
}

/// Whether `f`'s evidence was withheld by [`mask_finding`].
pub fn is_withheld(f: &Finding) -> bool {
    f.evidence.get("withheld").is_some_and(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding() -> Finding {
        serde_json::from_value(json!({
            "finding_id": "f1",
            "detector": "bulk_check_in",
            "accounts": ["a1", "a2", "b1", "c1"],
            "devices": ["d1"],
            "patrol_ids": ["p1"],
            "window_start": "2026-11-01T00:00:00Z",
            "window_end": "2026-11-02T00:00:00Z",
            "score": 0.9,
            "reason": "4 accounts checked in at 22.81N 108.32E within 7 s",
            "evidence": {
                "app_id": "grid",
                "points": [[22.81, 108.32]],
                "scope": {
                    "apps": ["grid"],
                    "regions": {"450102": 2, "450302": 1},
                    "accounts": {"a1": "450102", "a2": "450102", "b1": "450302"}
                }
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_finding_inside_the_scope_is_whole() {
        let mut f = finding();
        mask_finding(&Scope::parse("45").unwrap(), &mut f);
        assert_eq!(f, finding());
        mask_finding(&Scope::nationwide(), &mut f);
        assert_eq!(f, finding());
    }

    #[test]
    fn a_finding_reaching_outside_keeps_only_the_scopes_accounts() {
        let mut f = finding();
        mask_finding(&Scope::parse("4501").unwrap(), &mut f);
        assert_eq!(f.accounts, vec!["a1", "a2"]);
        assert!(f.devices.is_empty() && f.patrol_ids.is_empty());
        assert!(is_withheld(&f));
        assert_eq!(
            f.evidence["withheld"],
            json!({"regions": ["450302"], "hidden_accounts": 2})
        );
        let shown = serde_json::to_string(&f).unwrap();
        for foreign in ["b1", "c1", "450302\":", "22.81", "108.32", "d1", "p1"] {
            assert!(!shown.contains(foreign), "{foreign} in {shown}");
        }
        assert!(f.reason.contains("450302"), "{}", f.reason);
        // The other city sees its own account only.
        let mut g = finding();
        mask_finding(&Scope::parse("4503").unwrap(), &mut g);
        assert_eq!(g.accounts, vec!["b1"]);
    }
}
