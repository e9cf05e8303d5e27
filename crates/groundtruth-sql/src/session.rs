//! A DataFusion session over the lake: tables `events` and `dead_letters`,
//! groundtruth's rules, running a query and writing its result.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{SessionConfig, SessionContext};
use groundtruth_event::{dead_letter_schema, event_schema};

use groundtruth_lake::{vanished_delay, LakeLayout, VANISHED_RETRIES};

use crate::error::SqlError;

/// Output format of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    /// One JSON object per row (NDJSON).
    Json,
}

/// Only queries: no DDL, no DML, no `SET`/other statements.
pub fn read_only_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// The lake's Parquet files under `dir` as a table of `schema` (the
/// directory is created if missing).
fn listing(table: &'static str, dir: &Path, schema: SchemaRef) -> Result<ListingTable, SqlError> {
    let path = dir.display().to_string();
    let err = |source| SqlError::Register {
        table,
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| err(DataFusionError::IoError(e)))?;
    let abs = std::fs::canonicalize(dir).map_err(|e| err(DataFusionError::IoError(e)))?;
    let url = ListingTableUrl::parse(format!("{}/", abs.display())).map_err(err)?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    ListingTable::try_new(config).map_err(err)
}

async fn register(
    ctx: &SessionContext,
    table: &'static str,
    dir: &Path,
    schema: SchemaRef,
) -> Result<(), SqlError> {
    let provider = listing(table, dir, schema)?;
    ctx.register_table(table, Arc::new(provider))
        .map_err(|source| SqlError::Register {
            table,
            path: dir.display().to_string(),
            source,
        })?;
    Ok(())
}

/// The lake's `events` as a table provider, not registered anywhere (the
/// analysts' session wraps it in a region filter).
pub fn events_table(dir: &Path) -> Result<ListingTable, SqlError> {
    events_table_with_schema(dir, event_schema())
}

/// The lake's `events` read as `schema`: the event schema with columns
/// read as other types Parquet can decode them into (e.g. `Utf8View` for
/// `Utf8`), for comparing how each reads; otherwise [`events_table`].
pub fn events_table_with_schema(dir: &Path, schema: SchemaRef) -> Result<ListingTable, SqlError> {
    listing("events", &LakeLayout::new(dir).events_dir(), schema)
}

/// The lake's `dead_letters` as a table provider, not registered anywhere.
pub fn dead_letters_table(dir: &Path) -> Result<ListingTable, SqlError> {
    listing(
        "dead_letters",
        &LakeLayout::new(dir).dead_letters_dir(),
        dead_letter_schema(),
    )
}

/// A session with `events` and `dead_letters` registered over the lake at
/// `dir` (created empty if missing).
pub async fn open_session(dir: &Path) -> Result<SessionContext, SqlError> {
    let ctx = lake_context();
    let layout = LakeLayout::new(dir);
    register(&ctx, "events", &layout.events_dir(), event_schema()).await?;
    register(
        &ctx,
        "dead_letters",
        &layout.dead_letters_dir(),
        dead_letter_schema(),
    )
    .await?;
    Ok(ctx)
}

/// A session whose `events` are the lake's events with event time in
/// `[from_us, to_us)`, read only from the date partitions `dates` (the local
/// days that span can touch). Returns `None` when none of those partitions
/// exists (nothing to read).
pub async fn open_range_session(
    dir: &Path,
    dates: &[String],
    from_us: i64,
    to_us: i64,
) -> Result<Option<SessionContext>, SqlError> {
    let layout = LakeLayout::new(dir);
    let events = layout.events_dir();
    let err = |source| SqlError::Register {
        table: "events",
        path: events.display().to_string(),
        source,
    };
    let mut urls = Vec::new();
    for d in dates {
        let p = events.join(d);
        if p.is_dir() {
            let abs = std::fs::canonicalize(&p).map_err(|e| err(DataFusionError::IoError(e)))?;
            urls.push(ListingTableUrl::parse(format!("{}/", abs.display())).map_err(err)?);
        }
    }
    if urls.is_empty() {
        return Ok(None);
    }
    let ctx = lake_context();
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(event_schema());
    let provider = ListingTable::try_new(config).map_err(err)?;
    ctx.register_table("lake_events", Arc::new(provider))
        .map_err(err)?;
    let view = format!(
        "CREATE VIEW events AS SELECT * FROM lake_events \
         WHERE CAST(ts AS BIGINT) >= {from_us} AND CAST(ts AS BIGINT) < {to_us}"
    );
    ctx.sql(&view).await.map_err(SqlError::Sql)?;
    Ok(Some(ctx))
}

/// The runtime of a lake session: DataFusion's defaults without the
/// listing cache. The lake changes under a session (ingestion adds files,
/// compaction replaces them), and DataFusion keeps a table's file list for
/// the session's life by default: a session would never see new files, and
/// a query retried after compaction ([`retry_vanished`]) would read the
/// vanished file again.
pub fn lake_runtime() -> Arc<datafusion::execution::runtime_env::RuntimeEnv> {
    let caches = datafusion::execution::cache::cache_manager::CacheManagerConfig::default()
        .with_list_files_cache_limit(0);
    datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_cache_manager(caches)
        .build_arc()
        .expect("the default runtime with no listing cache builds")
}

/// The names of groundtruth's own rules in a lake session (analyzer,
/// logical and physical), for [`without_rules`].
pub const GROUNDTRUTH_RULES: &[&str] = &[
    "groundtruth_shared_subplans",
    "groundtruth_mixed_distinct_to_group_by",
    "groundtruth_counts_from_footers",
    "groundtruth_aggregate_below_join",
    "groundtruth_dictionary_keys",
];

/// `state` without the analyzer, optimizer and physical optimizer rules
/// named `names` (e.g. [`GROUNDTRUTH_RULES`]): the "before" of a rule, in
/// the same process.
pub fn without_rules(
    state: datafusion::execution::SessionState,
    names: &[&str],
) -> datafusion::execution::SessionState {
    let analyzers = state
        .analyzer()
        .rules
        .iter()
        .filter(|r| !names.contains(&r.name()))
        .cloned()
        .collect();
    let optimizers = state
        .optimizers()
        .iter()
        .filter(|r| !names.contains(&r.name()))
        .cloned()
        .collect();
    let physical = state
        .physical_optimizers()
        .iter()
        .filter(|r| !names.contains(&r.name()))
        .cloned()
        .collect();
    datafusion::execution::SessionStateBuilder::new_from_existing(state)
        .with_analyzer_rules(analyzers)
        .with_optimizer_rules(optimizers)
        .with_physical_optimizer_rules(physical)
        .build()
}

/// A session with the lake's settings and groundtruth's optimizer rules
/// ([`MixedDistinctToGroupBy`](crate::rules::MixedDistinctToGroupBy),
/// [`CountsFromFooters`](crate::rules::CountsFromFooters),
/// [`AggregateBelowJoin`](crate::rules::AggregateBelowJoin),
/// [`DictionaryKeys`](crate::rules::DictionaryKeys), [`SharedSubplans`](crate::rules::SharedSubplans)
/// with its [`SharingQueryPlanner`](crate::exec::SharingQueryPlanner)), each
/// switched by its option ([`RuleOptions`](crate::RuleOptions):
/// `SET groundtruth.footer_counts = false`).
pub fn lake_context() -> SessionContext {
    let builder = datafusion::execution::SessionStateBuilder::new()
        .with_config(session_config())
        .with_runtime_env(lake_runtime())
        .with_default_features()
        .with_optimizer_rule(Arc::new(crate::rules::MixedDistinctToGroupBy))
        .with_physical_optimizer_rule(Arc::new(crate::rules::CountsFromFooters))
        // Before DictionaryKeys: the aggregate it moves below a join then
        // reads the scan directly.
        .with_physical_optimizer_rule(Arc::new(crate::rules::AggregateBelowJoin))
        .with_physical_optimizer_rule(Arc::new(crate::rules::DictionaryKeys))
        .with_analyzer_rule(Arc::new(crate::rules::SharedSubplans))
        .with_query_planner(Arc::new(crate::exec::SharingQueryPlanner));
    SessionContext::new_with_state(builder.build())
}

/// The catalog the lake's tables are in: what `information_schema` and
/// the wire protocol's `current_database()` and `\l` call the database.
pub const CATALOG: &str = "groundtruth";

fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(CATALOG, "public")
        .with_information_schema(true)
        .with_target_partitions(num_cpus())
        .with_option_extension(crate::options::RuleOptions::default());
    // The lake nests files as <date>/<app>/part-*.parquet without Hive
    // `key=value` names: list the whole tree.
    config
        .options_mut()
        .execution
        .listing_table_ignore_subdirectory = false;
    config
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Runs one read-only SQL query and collects its result.
pub async fn run_sql(
    ctx: &SessionContext,
    sql: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>), SqlError> {
    retry_vanished(
        || async {
            let df = ctx.sql_with_options(sql, read_only_options()).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            Ok((schema, batches))
        },
        is_vanished_file,
    )
    .await
    .map_err(SqlError::Sql)
}

/// Runs `run` again (up to [`VANISHED_RETRIES`] times, after
/// [`vanished_backoff`]) while it fails on a file compacted away under it
/// (`vanished` tells); returns the last outcome.
pub async fn retry_vanished<T, E, Fut>(
    mut run: impl FnMut() -> Fut,
    vanished: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match run().await {
            Err(e) if attempt < VANISHED_RETRIES && vanished(&e) => {
                vanished_backoff(attempt).await;
                attempt += 1
            }
            other => return other,
        }
    }
}

/// The pause before retry `attempt` (0-based) of a query whose file was
/// compacted away ([`groundtruth_lake::vanished_delay`]).
pub async fn vanished_backoff(attempt: usize) {
    tokio::time::sleep(vanished_delay(attempt)).await;
}

/// Whether `e` is a file that was listed, then removed before it was read:
/// compaction replaced it while the query ran. Running the query again
/// lists the merged file instead.
pub fn is_vanished_file(e: &datafusion::error::DataFusionError) -> bool {
    use datafusion::error::DataFusionError as E;
    match e.find_root() {
        // object_store's NotFound: "Object at location ... not found".
        E::ObjectStore(os) => os.to_string().contains("not found"),
        E::IoError(io) => io.kind() == std::io::ErrorKind::NotFound,
        other => {
            let text = other.to_string();
            text.contains("not found") && text.contains("No such file")
        }
    }
}

/// Writes a query result in `format`.
pub fn format_batches(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: OutputFormat,
    mut out: impl Write,
) -> Result<(), SqlError> {
    let wrap = |format: &'static str| {
        move |e: arrow::error::ArrowError| SqlError::Output {
            format,
            source: Box::new(e),
        }
    };
    match format {
        OutputFormat::Table => {
            let table = if batches.is_empty() {
                arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(
                    schema.clone(),
                )])
            } else {
                arrow::util::pretty::pretty_format_batches(batches)
            }
            .map_err(wrap("table"))?;
            writeln!(out, "{table}").map_err(|e| SqlError::Output {
                format: "table",
                source: Box::new(e),
            })?;
        }
        OutputFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone()))
                    .map_err(wrap("csv"))?;
            }
            for b in batches {
                w.write(b).map_err(wrap("csv"))?;
            }
        }
        OutputFormat::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(b).map_err(wrap("json"))?;
            }
            w.finish().map_err(wrap("json"))?;
        }
    }
    Ok(())
}
