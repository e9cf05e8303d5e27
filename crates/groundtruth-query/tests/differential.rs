//! The analysts' own plan changes against plain DataFusion on generated
//! queries: the bound on repeated constants (`repeated`) and the count of
//! a sort's copies (`sortcopies`) must give the same rows, in the same
//! order, at any batch size and partitioning, or refuse with the bound's
//! own error (a constant copied past 16 MiB a batch). The watched
//! functions (`watch`), which cut a batch into slices, must give the rows
//! one call gives.

use std::sync::Arc;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use groundtruth_query::deadline::QueryCancel;
use groundtruth_query::{bounded, repeated, sortcopies, watch};
use proptest::prelude::*;

fn session(ours: bool, batch: usize, partitions: usize) -> SessionContext {
    let config = SessionConfig::new()
        .with_batch_size(batch)
        .with_target_partitions(partitions);
    let mut state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config);
    if ours {
        state = state
            .with_optimizer_rule(Arc::new(repeated::RepeatedValues::new()))
            .with_physical_optimizer_rule(Arc::new(sortcopies::SortCopiesRule));
    }
    let ctx = SessionContext::new_with_state(state.build());
    if ours {
        ctx.register_udf(repeated::RepeatedValue::udf().as_ref().clone());
    }
    ctx
}

async fn answer(ctx: &SessionContext, sql: &str) -> Result<String, String> {
    let run = async {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok::<_, datafusion::error::DataFusionError>(pretty_format_batches(&batches)?.to_string())
    };
    run.await.map_err(|e| e.to_string())
}

/// One generated query over `range(rows)`.
#[derive(Debug, Clone)]
struct Query {
    rows: u32,
    modulus: u32,
    /// Bytes of the constant (`repeat('ab', n)`), small or watched.
    constant: u32,
    grouped: bool,
    aggregate: u8,
    order: Vec<(u8, bool)>,
    limit: Option<u32>,
}

impl Query {
    fn sql(&self) -> String {
        let c = format!("repeat('ab', {})", self.constant / 2);
        let (select, keys): (String, Vec<&str>) = if self.grouped {
            let agg = match self.aggregate % 4 {
                0 => format!("length(string_agg({c}, ','))"),
                1 => format!("cardinality(array_agg({c}))"),
                2 => "count(*)".to_string(),
                _ => "max(md5(CAST(value AS VARCHAR)))".to_string(),
            };
            (
                format!("value % {} AS k, {agg} AS a, {c} AS c", self.modulus),
                vec!["k", "a", "c"],
            )
        } else {
            (
                format!(
                    "value % {} AS k, md5(CAST(value AS VARCHAR)) AS h, {c} AS c, value",
                    self.modulus
                ),
                vec!["k", "h", "c", "value"],
            )
        };
        let mut sql = format!("SELECT {select} FROM range({})", self.rows);
        if self.grouped {
            sql.push_str(" GROUP BY 1");
        }
        // Every column is ordered on, last, so the order is total.
        let mut order: Vec<String> = self
            .order
            .iter()
            .map(|(i, desc)| {
                let col = keys[*i as usize % keys.len()];
                format!("{col} {}", if *desc { "DESC" } else { "ASC" })
            })
            .collect();
        order.extend(keys.iter().map(|k| k.to_string()));
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
        if let Some(l) = self.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        sql
    }
}

fn query() -> impl Strategy<Value = Query> {
    (
        0u32..20_000,
        1u32..50,
        prop_oneof![0u32..64, 1025u32..2400],
        any::<bool>(),
        any::<u8>(),
        proptest::collection::vec((any::<u8>(), any::<bool>()), 0..3),
        proptest::option::of(0u32..50),
    )
        .prop_map(
            |(rows, modulus, constant, grouped, aggregate, order, limit)| Query {
                rows,
                modulus,
                constant,
                grouped,
                aggregate,
                order,
                limit,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn our_rules_answer_as_plain_datafusion(
        q in query(),
        batch in prop_oneof![Just(64usize), Just(1000), Just(8192)],
        partitions in 1usize..5,
    ) {
        let sql = q.sql();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (ours, plain) = rt.block_on(async {
            (
                answer(&session(true, batch, partitions), &sql).await,
                answer(&session(false, batch, partitions), &sql).await,
            )
        });
        match ours {
            Ok(rows) => prop_assert_eq!(Ok(rows), plain, "{}", sql),
            Err(e) => {
                prop_assert!(e.contains("repeated for each of"), "{}: {}", sql, e);
                prop_assert!(q.constant > 1024, "a small constant refused: {}", sql);
            }
        }
    }
}

/// A session with the analysts' bounded and watched functions (watch.rs),
/// whose stop flag is never set: sliced calls must answer as one call.
fn watched_session(batch: usize, partitions: usize) -> SessionContext {
    let ctx = session(false, batch, partitions);
    bounded::register(&ctx);
    let flag = Arc::new(QueryCancel::default());
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .extensions
        .insert(watch::StopFlag(Some(flag)));
    ctx
}

/// The watched functions, each over `s` (text of up to 10 KB a row, some
/// rows null) and `t` (another such text): their result per row.
const WATCHED_EXPRS: &[&str] = &[
    "regexp_like(s, '[0-3]{3}')",
    "regexp_count(s, 'a[0-9]')",
    "regexp_match(s, '([a-f]+)[0-9]')[1]",
    "regexp_instr(s, 'f[0-9]f')",
    "length(regexp_replace(s, '[a-c]', 'xy', 'g'))",
    "split_part(s, 'a', 3)",
    "strpos(s, 'abc')",
    "length(replace(s, 'a', 'bb'))",
    "find_in_set('3', s)",
    "substr_index(s, 'e', 2)",
    "levenshtein(substr(s, 1, 200), substr(t, 1, 150))",
    "cardinality(string_to_array(s, 'e'))",
    "cardinality(array_distinct(string_to_array(s, 'e')))",
    "length(array_to_string(array_sort(string_to_array(s, '0')), '|'))",
    "cardinality(array_intersect(string_to_array(s, 'a'), string_to_array(t, 'b')))",
    "cardinality(array_union(string_to_array(s, 'a'), string_to_array(t, 'b')))",
    "cardinality(array_except(string_to_array(s, 'a'), string_to_array(t, 'b')))",
    "array_has_any(string_to_array(s, 'a'), string_to_array(t, 'b'))",
    "array_has_all(string_to_array(s, 'a'), string_to_array(t, 'b'))",
    "array_position(string_to_array(s, 'c'), '1')",
    "cardinality(array_positions(string_to_array(s, 'c'), '1'))",
    "cardinality(array_remove_all(string_to_array(s, 'c'), '1'))",
    "length(upper(s))",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Rows of up to 10 KB make the watched functions cut their batches
    /// into slices (1 MB of input, or 16M compared pairs, each); the rows
    /// must come back as one call gives them.
    #[test]
    fn watched_functions_answer_as_one_call(
        rows in 0u32..400,
        width in 5u32..300,
        pick in proptest::collection::vec(0usize..WATCHED_EXPRS.len(), 1..4),
        batch in prop_oneof![Just(64usize), Just(1000), Just(8192)],
        partitions in 1usize..3,
    ) {
        let exprs: Vec<String> = pick
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{} AS f{i}", WATCHED_EXPRS[*p]))
            .collect();
        let sql = format!(
            "WITH r AS (SELECT value, \
               CASE WHEN value % 7 = 0 THEN NULL ELSE repeat(md5(CAST(value AS VARCHAR)), CAST({width} - value % 5 AS INT)) END AS s, \
               repeat(md5(CAST(value * 3 AS VARCHAR)), CAST({width} - (value * 3) % 5 AS INT)) AS t \
             FROM range({rows})) \
             SELECT value, {} FROM r ORDER BY value",
            exprs.join(", ")
        );
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (ours, plain) = rt.block_on(async {
            (
                answer(&watched_session(batch, partitions), &sql).await,
                answer(&session(false, batch, partitions), &sql).await,
            )
        });
        prop_assert_eq!(ours, plain, "{}", sql);
    }
}

/// A watched call whose statement is stopped ends before its next slice,
/// with the cancel error; without a stop it answers.
#[tokio::test]
async fn a_stopped_statements_watched_call_ends() {
    let ctx = watched_session(8192, 1);
    let flag = watch::stop_flag(ctx.state().config().options()).unwrap();
    let sql = "SELECT count(*) FROM range(2000) WHERE regexp_like(repeat(md5(CAST(value AS VARCHAR)), 100), 'xyz')";
    assert!(answer(&ctx, sql).await.is_ok());
    flag.cancel();
    let err = answer(&ctx, sql).await.unwrap_err();
    assert!(err.contains("canceling statement"), "{err}");
    assert_eq!(flag.running_calls(), 0);
}

/// The edit distance of two long strings is refused before it starts (its
/// work is the product of their lengths: hours for two 1 MB strings).
#[tokio::test]
async fn a_pairwise_function_past_its_bound_is_refused() {
    let ctx = watched_session(8192, 1);
    let err = answer(
        &ctx,
        "SELECT levenshtein(repeat('a', 1000000), repeat('b', 1000000))",
    )
    .await
    .unwrap_err();
    assert!(err.contains("levenshtein would compare"), "{err}");
    let ok = answer(&ctx, "SELECT levenshtein('kitten', 'sitting') AS d")
        .await
        .unwrap();
    assert!(ok.contains("| 3 "), "{ok}");
}
