//! The analysts' own plan changes against plain DataFusion on generated
//! queries: the bound on repeated constants (`repeated`) and the count of
//! a sort's copies (`sortcopies`) must give the same rows, in the same
//! order, at any batch size and partitioning, or refuse with the bound's
//! own error (a constant copied past 16 MiB a batch).

use std::sync::Arc;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use groundtruth_query::{repeated, sortcopies};
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
