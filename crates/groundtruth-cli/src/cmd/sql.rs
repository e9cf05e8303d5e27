//! `groundtruth sql`: one query over the lake.

use std::io::BufWriter;

use anyhow::Result;
use groundtruth_config::Config;
use groundtruth_sql::{format_batches, open_session, run_sql, OutputFormat};

use crate::runtime::query_runtime;
use crate::{Format, SqlArgs};

pub(crate) fn sql(cfg: &Config, args: &SqlArgs) -> Result<()> {
    let rt = query_runtime()?;
    rt.block_on(async {
        let ctx = open_session(&cfg.lake.dir).await?;
        groundtruth_sql::register_event_views(&ctx).await?;
        let (schema, batches) = run_sql(&ctx, &args.query).await?;
        let format = match args.format {
            Format::Table => OutputFormat::Table,
            Format::Csv => OutputFormat::Csv,
            Format::Json => OutputFormat::Json,
        };
        let stdout = std::io::stdout().lock();
        format_batches(&schema, &batches, format, BufWriter::new(stdout))?;
        Ok(())
    })
}
