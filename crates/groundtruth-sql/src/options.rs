//! The switches of groundtruth's own plan rules, as DataFusion options:
//! `SET groundtruth.footer_counts = false` turns one off for the session
//! (to compare plans, timings or answers with and without it), `SHOW ALL`
//! lists them. Every rule is on by default and never changes an answer
//! (`differential.rs` holds them to that).

use std::any::Any;

use datafusion::common::{plan_err, Result};
use datafusion::config::{ConfigEntry, ConfigExtension, ConfigOptions, ExtensionOptions};

/// groundtruth's plan rules, each on unless switched off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOptions {
    /// `count(DISTINCT x)` beside other aggregates planned as a two-level
    /// GROUP BY (`MixedDistinctToGroupBy`).
    pub distinct_to_group_by: bool,
    /// Counts per day and app answered from the Parquet footers
    /// (`CountsFromFooters`).
    pub footer_counts: bool,
    /// An aggregate over a join's probe side computed below the join
    /// (`AggregateBelowJoin`).
    pub aggregate_below_join: bool,
    /// Group-bys on dictionary-encoded strings by their keys
    /// (`DictionaryKeys`).
    pub dictionary_keys: bool,
    /// A subquery named twice computed once (`SharedSubplans`).
    pub shared_subplans: bool,
}

impl Default for RuleOptions {
    fn default() -> Self {
        RuleOptions {
            distinct_to_group_by: true,
            footer_counts: true,
            aggregate_below_join: true,
            dictionary_keys: true,
            shared_subplans: true,
        }
    }
}

/// Each option: its name, what it does, and where it is kept.
type Field = (
    &'static str,
    &'static str,
    fn(&mut RuleOptions) -> &mut bool,
);

const FIELDS: [Field; 5] = [
    (
        "distinct_to_group_by",
        "count(DISTINCT x) beside other aggregates planned as a two-level GROUP BY",
        |o| &mut o.distinct_to_group_by,
    ),
    (
        "footer_counts",
        "counts per day and app answered from the Parquet footers",
        |o| &mut o.footer_counts,
    ),
    (
        "aggregate_below_join",
        "an aggregate over a join's probe side computed below the join",
        |o| &mut o.aggregate_below_join,
    ),
    (
        "dictionary_keys",
        "group-bys on dictionary-encoded strings computed on their keys",
        |o| &mut o.dictionary_keys,
    ),
    (
        "shared_subplans",
        "a subquery named twice computed once",
        |o| &mut o.shared_subplans,
    ),
];

impl ConfigExtension for RuleOptions {
    const PREFIX: &'static str = "groundtruth";
}

impl ExtensionOptions for RuleOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let Some((_, _, field)) = FIELDS.iter().find(|(name, _, _)| *name == key) else {
            let names: Vec<&str> = FIELDS.iter().map(|(n, _, _)| *n).collect();
            return plan_err!(
                "groundtruth.{key} is not a groundtruth option; the options are groundtruth.{}",
                names.join(", groundtruth.")
            );
        };
        let on = match value.to_ascii_lowercase().as_str() {
            "true" | "on" => true,
            "false" | "off" => false,
            other => return plan_err!("groundtruth.{key} = {other}: give true or false"),
        };
        *field(self) = on;
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        let mut me = self.clone();
        FIELDS
            .iter()
            .map(|(name, description, field)| ConfigEntry {
                key: format!("{}.{name}", Self::PREFIX),
                value: Some(field(&mut me).to_string()),
                description,
            })
            .collect()
    }
}

/// The rule switches of a session's options (all on when the session has
/// none: a session not made by [`crate::lake_context`]).
pub fn rule_options(config: &ConfigOptions) -> RuleOptions {
    config
        .extensions
        .get::<RuleOptions>()
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn each_rule_is_an_option_listed_and_switched_off_by_set() {
        let dir = crate::testlake::lake();
        let ctx = crate::open_session(dir.path()).await.unwrap();
        let shown = ctx.sql("SHOW ALL").await.unwrap().collect().await.unwrap();
        let shown = arrow::util::pretty::pretty_format_batches(&shown)
            .unwrap()
            .to_string();
        let cases = [
            ("distinct_to_group_by", "groundtruth_mixed_distinct_to_group_by", "SELECT kind, count(DISTINCT account_id), count(*) FROM events GROUP BY kind"),
            ("footer_counts", "groundtruth_counts_from_footers", "SELECT app_id, count(*) FROM events GROUP BY app_id"),
            ("aggregate_below_join", "groundtruth_aggregate_below_join", "SELECT e.account_id, count(*) FROM events e JOIN (SELECT account_id FROM events GROUP BY account_id) t ON e.account_id = t.account_id GROUP BY e.account_id"),
            ("dictionary_keys", "groundtruth_dictionary_keys", "SELECT kind, count(*) FROM events GROUP BY kind"),
            ("shared_subplans", "groundtruth_shared_subplans", "WITH t AS (SELECT kind, count(*) AS c FROM events GROUP BY kind) SELECT * FROM t a JOIN t b ON a.kind = b.kind"),
        ];
        let mut changed = 0;
        for (option, rule, sql) in cases {
            assert!(
                shown.contains(&format!("groundtruth.{option} ")),
                "{option} not in SHOW ALL:\n{shown}"
            );
            let on = crate::testlake::plan_text(&ctx, sql).await;
            let without =
                SessionContext::new_with_state(crate::without_rules(ctx.state(), &[rule]));
            let removed = crate::testlake::plan_text(&without, sql).await;
            ctx.sql(&format!("SET groundtruth.{option} = false"))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let off = crate::testlake::plan_text(&ctx, sql).await;
            assert_eq!(off, removed, "{option} = false plans as without {rule}");
            if on != off {
                changed += 1;
            }
            ctx.sql(&format!("SET groundtruth.{option} = true"))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            assert_eq!(
                crate::testlake::plan_text(&ctx, sql).await,
                on,
                "{option} back on"
            );
        }
        assert!(
            changed >= 3,
            "only {changed} of the switches changed a plan"
        );
        let e = ctx
            .sql("SET groundtruth.no_such_rule = false")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no_such_rule"), "{e}");
    }
}
