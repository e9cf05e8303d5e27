//! groundtruth's own rules against plain DataFusion, on generated lakes
//! and generated queries.
//!
//! Each round writes a lake of a random layout (one to five partitions,
//! one to three files each, empty files, small or default row groups,
//! with or without dictionaries, values with nulls), picks session
//! settings (1-4 partitions, batch sizes, files split into several scan
//! ranges or not), and runs generated queries in a session with every rule
//! of [`GROUNDTRUTH_RULES`](crate::GROUNDTRUTH_RULES) and one without any:
//! grouped and ungrouped aggregates (counts, distinct counts, sums of
//! conditions, min/max) under random filters, the filters' ternary logic
//! partitions (rows where `p`, where `NOT p`, where `p IS NULL` add up to
//! all rows, as SQLancer checks), an aggregate joined back to the events,
//! and a CTE read twice. Both must give the same rows (as a multiset).
//!
//! `GT_DIFF_SEED`, `GT_DIFF_LAYOUTS` and `GT_DIFF_QUERIES` (per layout)
//! choose the run; a difference names the seed, the layout, the settings
//! and the query.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use parquet::file::properties::WriterProperties;

use crate::testlake;

/// SplitMix64: reproducible from the seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const DATES: [&str; 3] = ["2026-11-02", "2026-11-03", "2026-11-04"];
const APPS: [&str; 3] = ["river-chief", "attendance", "zhiguitong"];

/// Writes a random lake; returns its description.
fn write_lake(rng: &mut Rng, dir: &std::path::Path) -> String {
    let events_dir = groundtruth_lake::LakeLayout::new(dir).events_dir();
    let mut shown = Vec::new();
    let partitions = 1 + rng.below(5);
    let mut file = 0;
    for _ in 0..partitions {
        let (date, app) = (rng.pick(&DATES), rng.pick(&APPS));
        for _ in 0..1 + rng.below(3) {
            file += 1;
            let rows = match rng.below(6) {
                0 => 0,
                1 => 1,
                _ => rng.below(4_000),
            };
            let seed = rng.below(1_000);
            let mut props = WriterProperties::builder();
            let mut how = Vec::new();
            if rng.chance(50) {
                let rg = *rng.pick(&[64usize, 700, 2_500]);
                props = props.set_max_row_group_row_count(Some(rg));
                how.push(format!("row groups of {rg}"));
            }
            if rng.chance(30) {
                props = props.set_dictionary_enabled(false);
                how.push("no dictionaries".to_string());
            }
            let path = events_dir.join(format!("{date}/{app}/part-{file}.parquet"));
            let mut batch = testlake::events(rows, seed);
            // As the lake writes them, a file holds one day and one app
            // (what the footer counts read); now and then one does not.
            if rng.chance(85) {
                batch = of_partition(&batch, date, app);
            } else {
                how.push("mixed days and apps".to_string());
            }
            testlake::write(&path, &batch, props.build());
            shown.push(format!(
                "{date}/{app}/part-{file}: {rows} rows, seed {seed}, {}",
                how.join(", ")
            ));
        }
    }
    shown.join("; ")
}

/// `batch` with every row's day and app those of its partition.
fn of_partition(batch: &RecordBatch, date: &str, app: &str) -> RecordBatch {
    let n = batch.num_rows();
    let schema = batch.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| -> ArrayRef {
            match f.name().as_str() {
                "app_id" => Arc::new(StringArray::from(vec![app; n])),
                "event_date" => cast(&StringArray::from(vec![date; n]), &DataType::Date32).unwrap(),
                _ => Arc::clone(c),
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

const KEYS: [&str; 8] = [
    "event_date",
    "app_id",
    "kind",
    "region",
    "account_id",
    "coalesce(region, '')",
    "lower(kind)",
    "device_id",
];

const AGGREGATES: [&str; 11] = [
    "count(*)",
    "count(region)",
    "count(DISTINCT account_id)",
    "count(DISTINCT device_id)",
    "count(DISTINCT region)",
    "sum(CASE WHEN kind = 'check_in' THEN 1 ELSE 0 END)",
    "sum(changed_fields)",
    "min(ts)",
    "max(event_id)",
    "count(lat)",
    "max(duration_s)",
];

fn predicate(rng: &mut Rng) -> String {
    let one = |rng: &mut Rng| -> String {
        match rng.below(9) {
            0 => format!("kind = '{}'", rng.pick(&testlake::KINDS)),
            1 => "region IS NULL".to_string(),
            2 => "region LIKE '45%'".to_string(),
            3 => format!("app_id IN ('{}', '{}')", rng.pick(&APPS), rng.pick(&APPS)),
            4 => format!("lat > {}", 22.8 + rng.below(40) as f64 * 1e-2),
            5 => format!("changed_fields = {}", rng.below(4)),
            6 => format!("account_id < 'acct-0{}'", rng.below(6)),
            7 => format!("event_date = DATE '{}'", rng.pick(&DATES)),
            _ => "device_id IS NOT NULL".to_string(),
        }
    };
    match rng.below(4) {
        0 => format!("({}) AND ({})", one(rng), one(rng)),
        1 => format!("({}) OR ({})", one(rng), one(rng)),
        2 => format!("NOT ({})", one(rng)),
        _ => one(rng),
    }
}

/// One generated query, or a group of queries whose answers must agree
/// with each other too (the ternary logic partition).
fn query(rng: &mut Rng) -> Vec<String> {
    let mut keys: Vec<&str> = (0..rng.below(3)).map(|_| *rng.pick(&KEYS)).collect();
    keys.dedup();
    let aggs: Vec<&str> = (0..1 + rng.below(3))
        .map(|_| *rng.pick(&AGGREGATES))
        .collect();
    let select: Vec<String> = keys
        .iter()
        .map(|k| k.to_string())
        .chain(aggs.iter().map(|a| a.to_string()))
        .collect();
    let group = if keys.is_empty() {
        String::new()
    } else {
        format!(
            " GROUP BY {}",
            (1..=keys.len())
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match rng.below(6) {
        5 => {
            // Counts per day and app, the footers' own shape.
            let keys = rng.pick(&[
                "event_date",
                "app_id",
                "event_date, app_id",
                "app_id, event_date",
            ]);
            let counts = rng.pick(&[
                "count(*)",
                "count(*), count(region)",
                "count(lat), count(*)",
                "count(1)",
            ]);
            vec![format!(
                "SELECT {keys}, {counts} FROM events GROUP BY {keys}"
            )]
        }
        0 | 1 => {
            let filter = if rng.chance(60) {
                format!(" WHERE {}", predicate(rng))
            } else {
                String::new()
            };
            vec![format!(
                "SELECT {} FROM events{filter}{group}",
                select.join(", ")
            )]
        }
        2 => {
            // Ternary logic partitioning: the rows where p, where NOT p and
            // where p IS NULL are all the rows, once each. Three queries:
            // the whole, the parts (compared between sessions), and the
            // parts added up (compared with the whole).
            let p = predicate(rng);
            let agg = rng.pick(&["count(*)", "count(region)", "sum(changed_fields)"]);
            let part = |w: &str| format!("SELECT {agg} AS n FROM events WHERE {w}");
            let parts = format!(
                "{} UNION ALL {} UNION ALL {}",
                part(&format!("({p})")),
                part(&format!("NOT ({p})")),
                part(&format!("({p}) IS NULL"))
            );
            vec![
                format!("SELECT {agg} AS n FROM events"),
                parts.clone(),
                format!("SELECT sum(n) AS n FROM ({parts})"),
            ]
        }
        3 => {
            // An aggregate joined back to the events (AggregateBelowJoin).
            let k = rng.pick(&["account_id", "device_id", "app_id"]);
            vec![format!(
                "SELECT e.{k}, count(*) AS n, sum(t.c) AS s FROM events e JOIN \
                 (SELECT {k}, count(*) AS c FROM events GROUP BY {k}) t ON e.{k} = t.{k} GROUP BY e.{k}"
            )]
        }
        _ => {
            // A CTE read twice (SharedSubplans).
            let k = rng.pick(&["account_id", "kind", "region"]);
            vec![format!(
                "WITH t AS (SELECT {k} AS k, count(*) AS c FROM events GROUP BY {k}) \
                 SELECT a.k, a.c, b.c FROM t a JOIN t b ON a.k = b.k"
            )]
        }
    }
}

/// The rows of `sql` as sorted lines.
async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<String>, String> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    testlake::sorted_rows(&batches).map_err(|e| e.to_string())
}

/// The physical plan of `sql` as text, or the error's text when it cannot
/// be planned (the two sessions are compared on that too).
async fn plan(ctx: &SessionContext, sql: &str) -> String {
    match ctx.sql(sql).await {
        Ok(df) => match df.create_physical_plan().await {
            Ok(p) => datafusion::physical_plan::displayable(p.as_ref())
                .indent(false)
                .to_string(),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

fn env_or(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_answer_as_plain_datafusion_on_generated_lakes_and_queries() {
    let seed = env_or("GT_DIFF_SEED", 27);
    let layouts = env_or("GT_DIFF_LAYOUTS", 30);
    let per_layout = env_or("GT_DIFF_QUERIES", 25);
    let mut rng = Rng(seed);
    let mut ran = 0;
    let mut changed = 0;
    for layout in 0..layouts {
        let dir = tempfile::tempdir().unwrap();
        let lake = write_lake(&mut rng, dir.path());
        let partitions = 1 + rng.below(4);
        let batch = *rng.pick(&[64usize, 256, 8192]);
        let split = rng.chance(50);
        let with = crate::open_session(dir.path()).await.unwrap();
        let without = SessionContext::new_with_state(crate::without_rules(
            with.state(),
            crate::GROUNDTRUTH_RULES,
        ));
        for ctx in [&with, &without] {
            let mut sets = vec![
                format!("SET datafusion.execution.target_partitions = {partitions}"),
                format!("SET datafusion.execution.batch_size = {batch}"),
            ];
            if split {
                sets.push("SET datafusion.optimizer.repartition_file_min_size = 1".into());
            }
            for s in sets {
                ctx.sql(&s).await.unwrap().collect().await.unwrap();
            }
        }
        let settings = format!("{partitions} partitions, batches of {batch}, files split: {split}");
        for _ in 0..per_layout {
            let group = query(&mut rng);
            let mut answers = Vec::new();
            for sql in &group {
                if plan(&with, sql).await != plan(&without, sql).await {
                    changed += 1;
                }
                let ours = rows(&with, sql).await;
                let plain = rows(&without, sql).await;
                assert_eq!(
                    ours, plain,
                    "seed {seed}, layout {layout} ({lake}), {settings}:\n{sql}"
                );
                answers.push(plain);
                ran += 1;
            }
            if group.len() == 3 {
                assert_eq!(
                    answers[0], answers[2],
                    "seed {seed}, layout {layout} ({lake}), {settings}: the ternary partition of\n{}\ndoes not add up to\n{}",
                    group[1], group[0]
                );
            }
        }
    }
    eprintln!("differential: seed {seed}, {layouts} layouts, {ran} queries ({changed} planned differently by the rules), no difference");
    // The generated queries must keep reaching the rules.
    assert!(
        changed * 5 >= ran,
        "the rules changed only {changed} of {ran} plans"
    );
}
