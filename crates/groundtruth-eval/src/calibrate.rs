//! Labelled findings for calibrating and checking scores: which findings an
//! inspector who knew the truth would confirm.
//!
//! Truth comes from a simulated world's labels or from a `kind,id,label`
//! CSV (the layout of `shared/data/validation/labels.csv`: `account` or
//! `patrol`, its id, `honest` or the detector that should flag it). A
//! finding is confirmed when at least half of what it names is labelled
//! with its detector: its patrols for `non_human_track` findings that name
//! patrols, else its accounts (accounts whose label says nothing for the
//! detector, such as a farm's operator for `phone_farm`, are not counted).

use std::collections::HashMap;
use std::path::Path;

use groundtruth_finding::calibration::Sample;
use groundtruth_finding::Finding;

use crate::error::EvalError;

/// Simulator scenarios (account `scenario` column) counted as neither
/// positive nor negative for a detector.
pub(crate) const NEUTRAL: [(&str, &str); 1] = [("phone_farm", "farm_operator")];

/// Who is what, for judging findings.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// account id -> (label, scenario); the label is `honest`/`human` or a
    /// detector name.
    accounts: HashMap<String, (String, String)>,
    patrols: HashMap<String, String>,
}

impl Truth {
    /// The labels of a simulated world.
    pub fn of_sim(labels: &groundtruth_sim::Labels) -> Truth {
        Truth {
            accounts: labels
                .accounts
                .iter()
                .map(|a| (a.account_id.clone(), (a.label.clone(), a.scenario.clone())))
                .collect(),
            patrols: labels
                .patrols
                .iter()
                .map(|p| (p.patrol_id.clone(), p.label.clone()))
                .collect(),
        }
    }

    /// A `kind,id,label` CSV with a header line.
    pub fn read_csv(path: &Path) -> Result<Truth, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
            action: "read labels",
            path: path.to_path_buf(),
            source,
        })?;
        let mut t = Truth::default();
        for (i, line) in text.lines().enumerate().skip(1) {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            match cols.as_slice() {
                ["account", id, label] => {
                    t.accounts
                        .insert(id.to_string(), (label.to_string(), String::new()));
                }
                ["patrol", id, label] => {
                    t.patrols.insert(id.to_string(), label.to_string());
                }
                _ => {
                    return Err(EvalError::Input {
                        path: path.to_path_buf(),
                        line: i as u64 + 1,
                        message: format!(
                            "{line:?} is not `account,ID,LABEL` or `patrol,ID,LABEL`; \
                             give a labels file with a header line and these columns"
                        ),
                    })
                }
            }
        }
        Ok(t)
    }

    /// Would an inspector who knew the truth confirm `f`?
    pub fn confirmed(&self, f: &Finding) -> bool {
        let det = f.detector.as_str();
        if det == groundtruth_track::DETECTOR && !f.patrol_ids.is_empty() {
            let real = f
                .patrol_ids
                .iter()
                .filter(|p| self.patrols.get(*p).is_some_and(|l| l == det))
                .count();
            return 2 * real >= f.patrol_ids.len();
        }
        let (mut real, mut counted) = (0, 0);
        for a in &f.accounts {
            match self.accounts.get(a) {
                Some((_, s)) if NEUTRAL.contains(&(det, s.as_str())) => {}
                Some((l, _)) => {
                    counted += 1;
                    real += usize::from(l == det);
                }
                None => counted += 1,
            }
        }
        counted > 0 && 2 * real >= counted
    }

    /// Each finding as a calibration sample.
    pub fn samples(&self, findings: &[Finding]) -> Vec<Sample> {
        findings
            .iter()
            .map(|f| Sample::of(f, self.confirmed(f)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(detector: &str, accounts: &[&str], patrols: &[&str]) -> Finding {
        Finding {
            finding_id: "f".into(),
            detector: detector.into(),
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            devices: vec![],
            patrol_ids: patrols.iter().map(|a| a.to_string()).collect(),
            window_start: "2026-11-02T00:00:00.000Z".into(),
            window_end: "2026-11-02T01:00:00.000Z".into(),
            score: 0.9,
            reason: "r".into(),
            evidence: Default::default(),
        }
    }

    #[test]
    fn findings_are_confirmed_by_what_they_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.csv");
        std::fs::write(
            &p,
            "kind,id,label\naccount,a1,phone_farm\naccount,a2,phone_farm\naccount,a3,honest\n\
             account,a4,non_human_track\npatrol,p1,non_human_track\npatrol,p2,honest\n",
        )
        .unwrap();
        let t = Truth::read_csv(&p).unwrap();
        assert!(t.confirmed(&finding("phone_farm", &["a1", "a2", "a3"], &[])));
        assert!(t.confirmed(&finding("phone_farm", &["a1", "a3"], &[])));
        assert!(!t.confirmed(&finding("phone_farm", &["a1", "a3", "zz"], &[])));
        assert!(!t.confirmed(&finding("record_churn", &["a1"], &[])));
        // Patrols decide a track finding, not the account.
        assert!(t.confirmed(&finding("non_human_track", &["a4"], &["p1"])));
        assert!(!t.confirmed(&finding("non_human_track", &["a4"], &["p2"])));
        let s = t.samples(&[finding("phone_farm", &["a3"], &[])]);
        assert_eq!((s[0].raw, s[0].confirmed), (0.9, false));

        std::fs::write(&p, "kind,id,label\naccount;a1;x\n").unwrap();
        let e = Truth::read_csv(&p).unwrap_err().to_string();
        assert!(e.contains("labels.csv:2:"), "{e}");
    }
}
