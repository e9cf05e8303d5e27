//! sqllogictest runner: every `sql/**/*.slt` file runs against a fresh
//! DataFusion session, with the views of `sql/*.sql` registered, over a
//! fixture lake built from `tests/fixtures/<stem>.ndjson` when that exists
//! (`sql/track_steps.slt` -> `tests/fixtures/track_steps.ndjson`), or the one
//! its `# fixture: NAME` line names, else from `tests/fixtures/lake.ndjson`
//! (one test per file). A further test checks
//! that every `.sql` file has its `.slt`. `GT_SLT_COMPLETE=1` rewrites each
//! file's expected results with the engine's answers instead (DataFusion's
//! `--complete`): write the queries, complete, read the diff.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use groundtruth_query::{AppCatalog, Limits, QueryService};
use groundtruth_sql::run_sql;
use groundtruth_store::{Principal, ReviewStore, Role, Scope, StoreOptions};
use groundtruth_tests::repo;
use libtest_mimic::{Arguments, Failed, Trial};

#[path = "support/fixtures.rs"]
mod fixtures;
use fixtures::{fixture_lake, load_review};
use sqllogictest::DBOutput;

fn fixture_for(slt: &Path) -> PathBuf {
    // A `# fixture: NAME` line names a shared fixture (tests/fixtures/NAME).
    let text = std::fs::read_to_string(slt).unwrap_or_default();
    if let Some(name) = text
        .lines()
        .find_map(|l| l.strip_prefix("# fixture: "))
        .map(str::trim)
    {
        return repo().join("tests/fixtures").join(name);
    }
    let stem = slt.file_stem().unwrap_or_default().to_string_lossy();
    let own = repo().join(format!("tests/fixtures/{stem}.ndjson"));
    if own.is_file() {
        own
    } else {
        repo().join("tests/fixtures/lake.ndjson")
    }
}

struct Lake {
    ctx: SessionContext,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SltError(String);

/// A result column's type letter: DataFusion's sqllogictest letters (`T`
/// text, `I` integer, `R` float, `B` boolean, `?` anything else), so that
/// completed files keep the letters written by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SltType {
    Text,
    Integer,
    FloatingPoint,
    Boolean,
    Any,
}

impl sqllogictest::ColumnType for SltType {
    fn from_char(value: char) -> Option<Self> {
        Some(match value {
            'T' => SltType::Text,
            'I' => SltType::Integer,
            'R' => SltType::FloatingPoint,
            'B' => SltType::Boolean,
            _ => SltType::Any,
        })
    }

    fn to_char(&self) -> char {
        match self {
            SltType::Text => 'T',
            SltType::Integer => 'I',
            SltType::FloatingPoint => 'R',
            SltType::Boolean => 'B',
            SltType::Any => '?',
        }
    }
}

fn column_type(t: &DataType) -> SltType {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => SltType::Integer,
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _) => {
            SltType::FloatingPoint
        }
        DataType::Boolean => SltType::Boolean,
        _ => SltType::Text,
    }
}

fn rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, SltError> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SltError(e.to_string()))?;
        for row in 0..b.num_rows() {
            let mut cells = Vec::with_capacity(formatters.len());
            for (f, col) in formatters.iter().zip(b.columns()) {
                let s = f.value(row).to_string();
                cells.push(if col.is_valid(row) && s.is_empty() {
                    "(empty)".to_string()
                } else {
                    s
                });
            }
            out.push(cells);
        }
    }
    Ok(out)
}

#[async_trait]
impl sqllogictest::AsyncDB for Lake {
    type Error = SltError;
    type ColumnType = SltType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<SltType>, SltError> {
        let (schema, batches) = run_sql(&self.ctx, sql)
            .await
            .map_err(|e| SltError(e.to_string()))?;
        let types = schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        Ok(DBOutput::Rows {
            types,
            rows: rows(&batches)?,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "datafusion"
    }
}

/// A `# KEY: value` line of an `.slt` file.
fn directive(text: &str, key: &str) -> Option<String> {
    let prefix = format!("# {key}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
}

/// The session an `.slt` runs in: an analyst's, over the fixture lake, with
/// the review fixture (`# review: NAME`) and app catalog (`# catalog: NAME`)
/// it names, in the scope it names (`# scope: 4501`; default nationwide).
async fn session_for(path: &Path, store_dir: &Path) -> Result<SessionContext, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lake = fixture_lake(&fixture_for(path));
    let store = ReviewStore::open(
        &store_dir.join("review.db").display().to_string(),
        &StoreOptions::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    if let Some(name) = directive(&text, "review") {
        load_review(&store, &name).await?;
    }
    let catalog = match directive(&text, "catalog") {
        Some(name) => AppCatalog::load(&repo().join(format!("tests/fixtures/{name}.catalog.toml")))
            .map_err(|e| e.join("; "))?,
        None => AppCatalog::default(),
    };
    let scope =
        Scope::parse(&directive(&text, "scope").unwrap_or_default()).map_err(|e| e.to_string())?;
    let svc = QueryService::new(lake, Default::default(), store, catalog, Limits::default());
    let who = Principal {
        token_id: String::new(),
        subject: "slt".into(),
        role: Role::Analyst,
        scope,
    };
    svc.session(&who).await.map_err(|e| e.to_string())
}

/// Whether to complete the `.slt` files instead of checking them:
/// `GT_SLT_COMPLETE=1 cargo nextest run -p groundtruth-tests -E 'binary(slt)'`.
fn complete() -> bool {
    std::env::var("GT_SLT_COMPLETE").is_ok_and(|v| v == "1")
}

fn run_file(path: PathBuf) -> Result<(), Failed> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(e.to_string()))?;
    let store_dir = tempfile::tempdir().map_err(|e| Failed::from(e.to_string()))?;
    rt.block_on(async move {
        let ctx = session_for(&path, store_dir.path())
            .await
            .map_err(|e| Failed::from(format!("{}: {e}", path.display())))?;
        let ctx = Arc::new(ctx);
        let mut runner = sqllogictest::Runner::new(move || {
            let ctx = ctx.clone();
            async move {
                Ok(Lake {
                    ctx: (*ctx).clone(),
                })
            }
        });
        if complete() {
            // Rewrite the file's expected results with what the engine
            // answers now (`GT_SLT_COMPLETE=1`, DataFusion's `--complete`);
            // read the diff before committing it.
            return runner
                .update_test_file(
                    &path,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .map_err(|e| Failed::from(format!("{}: {e}", path.display())));
        }
        runner
            .run_file_async(&path)
            .await
            .map_err(|e| Failed::from(format!("{}: {e}", path.display())))
    })
}

fn main() {
    let args = Arguments::from_args();
    let files = groundtruth_tests::files_under(&repo().join("sql"), "slt");
    let root = repo();
    let mut trials: Vec<Trial> = files
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
            Trial::test(name, move || run_file(p))
        })
        .collect();
    trials.push(Trial::test(
        "every sql/*.sql has an .slt and is a registered view",
        || {
            let mut missing = Vec::new();
            for e in
                std::fs::read_dir(repo().join("sql")).map_err(|e| Failed::from(e.to_string()))?
            {
                let p = e.map_err(|e| Failed::from(e.to_string()))?.path();
                if p.extension().is_some_and(|x| x == "sql") {
                    let stem = p
                        .file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    if !p.with_extension("slt").is_file() {
                        missing.push(format!("{} has no .slt", p.display()));
                    }
                    let registered = groundtruth_sql::VIEWS.iter().any(|v| v.name == stem);
                    if !registered {
                        missing.push(format!("{} is not in groundtruth_sql::VIEWS", p.display()));
                    }
                }
            }
            if missing.is_empty() {
                Ok(())
            } else {
                Err(Failed::from(missing.join("; ")))
            }
        },
    ));
    libtest_mimic::run(&args, trials).exit();
}
