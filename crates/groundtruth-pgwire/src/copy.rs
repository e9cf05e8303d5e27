//! `COPY (SELECT ...) TO STDOUT` and `COPY table [(columns)] TO STDOUT`:
//! a read-only query like any other, in the caller's scope and limits,
//! its rows written in PostgreSQL's text, CSV or binary COPY format.
//!
//! psql's `\copy (...) TO 'file'`, psycopg's `cursor.copy()`, psycopg2's
//! `copy_expert` and connectorx (Polars' `read_database_uri`) read results
//! this way. `COPY ... FROM`, or `TO` a file or program on the server, is
//! refused: nothing is written, and the server's files are not the
//! caller's.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident, ObjectName,
    Query, SetExpr, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser as SqlParser;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::arrow_pg::encoder::encode_value;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::QueryHook;
use futures::StreamExt;
use groundtruth_query::{guard, QueryError};
use pgwire::api::portal::Format;
use pgwire::api::results::{
    CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, FieldInfo, Response,
};
use pgwire::api::ClientInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;

/// How the rows are written.
#[derive(Debug, Clone, PartialEq)]
pub enum CopyFormat {
    Text(CopyTextOptions),
    Csv {
        options: CopyCsvOptions,
        header: bool,
    },
    Binary,
}

/// A `COPY ... TO STDOUT`: the query whose rows it writes, and how.
#[derive(Debug, Clone)]
pub struct CopyOut {
    pub query: Query,
    pub format: CopyFormat,
}

fn refused(m: impl Into<String>) -> QueryError {
    QueryError::Refused(m.into())
}

/// The `COPY` statement `s` as a [`CopyOut`]; `None` if `s` is no `COPY`,
/// refused if it copies from the client or to a file or program, or with
/// an option this server does not write.
pub fn copy_out(s: &Statement) -> Option<Result<CopyOut, QueryError>> {
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = s
    else {
        return None;
    };
    Some(parse(source, *to, target, options, legacy_options))
}

fn parse(
    source: &CopySource,
    to: bool,
    target: &CopyTarget,
    options: &[CopyOption],
    legacy: &[CopyLegacyOption],
) -> Result<CopyOut, QueryError> {
    if !to {
        return Err(refused(
            "COPY ... FROM is not allowed: analysts' SQL reads, it does not write",
        ));
    }
    if *target != CopyTarget::Stdout {
        return Err(refused(
            "COPY writes only TO STDOUT (the client's side: psql's \\copy, a driver's copy); the server's files are not reachable",
        ));
    }
    let query = match source {
        CopySource::Query(q) => (**q).clone(),
        CopySource::Table {
            table_name,
            columns,
        } => table_query(table_name, columns)?,
    };
    let mut kind = "text".to_string();
    let mut header = false;
    let mut text = CopyTextOptions::default();
    let mut csv = CopyCsvOptions::default();
    let (mut delimiter, mut null) = (None, None);
    for o in options {
        match o {
            CopyOption::Format(f) => kind = f.value.to_lowercase(),
            CopyOption::Header(h) => header = *h,
            CopyOption::Delimiter(c) => delimiter = Some(c.to_string()),
            CopyOption::Null(n) => null = Some(n.clone()),
            CopyOption::Quote(c) => csv.quote = c.to_string().into(),
            CopyOption::Escape(c) => csv.escape = c.to_string().into(),
            CopyOption::Encoding(e) if matches!(e.to_lowercase().as_str(), "utf8" | "utf-8") => {}
            other => {
                return Err(refused(format!(
                    "COPY option {other} is not supported here"
                )))
            }
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Binary => kind = "binary".into(),
            CopyLegacyOption::Delimiter(c) => delimiter = Some(c.to_string()),
            CopyLegacyOption::Null(n) => null = Some(n.clone()),
            CopyLegacyOption::Csv(csv_options) => {
                kind = "csv".into();
                for c in csv_options {
                    match c {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(q) => csv.quote = q.to_string().into(),
                        CopyLegacyCsvOption::Escape(e) => csv.escape = e.to_string().into(),
                        other => {
                            return Err(refused(format!(
                                "COPY option {other} is not supported here"
                            )))
                        }
                    }
                }
            }
            other => {
                return Err(refused(format!(
                    "COPY option {other} is not supported here"
                )))
            }
        }
    }
    let format = match kind.as_str() {
        "text" => {
            if let Some(d) = delimiter {
                text.delimiter = d.into();
            }
            if let Some(n) = null {
                text.null_string = n.into();
            }
            if header {
                return Err(refused(
                    "COPY HEADER is available only in CSV mode (as in PostgreSQL)",
                ));
            }
            CopyFormat::Text(text)
        }
        "csv" => {
            if let Some(d) = delimiter {
                csv.delimiter = d.into();
            }
            if let Some(n) = null {
                csv.null_string = n.into();
            }
            CopyFormat::Csv {
                options: csv,
                header,
            }
        }
        "binary" => CopyFormat::Binary,
        other => {
            return Err(refused(format!(
                "COPY format \"{other}\" not recognized; use text, csv or binary"
            )))
        }
    };
    guard::check_query(&query)?;
    Ok(CopyOut { query, format })
}

/// `SELECT columns FROM table` for `COPY table [(columns)] TO STDOUT`.
fn table_query(table: &ObjectName, columns: &[Ident]) -> Result<Query, QueryError> {
    let list = if columns.is_empty() {
        "*".to_string()
    } else {
        columns
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!("SELECT {list} FROM {table}");
    let mut parsed = SqlParser::parse_sql(&PostgreSqlDialect {}, &sql)
        .map_err(|e| QueryError::Invalid(format!("COPY of {table}: {e}")))?;
    match parsed.pop() {
        Some(Statement::Query(q)) if matches!(*q.body, SetExpr::Select(_)) => Ok(*q),
        _ => Err(QueryError::Invalid(format!("COPY of {table}: not a table"))),
    }
}

/// The hook that answers `COPY ... TO STDOUT` in both protocols (after the
/// guard, which refuses the `COPY`s [`copy_out`] refuses).
#[derive(Debug)]
pub struct CopyHook;

#[async_trait]
impl QueryHook for CopyHook {
    async fn handle_simple_query(
        &self,
        s: &Statement,
        ctx: &SessionContext,
        _: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let copy = copy_out(s)?;
        Some(match copy {
            Ok(c) => run(ctx, &c).await,
            Err(e) => Err(crate::query_error(&e)),
        })
    }

    async fn handle_extended_parse_query(
        &self,
        s: &Statement,
        _: &SessionContext,
        _: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // Described as no rows (PostgreSQL's NoData for a COPY); planned
        // when it runs.
        let copy = copy_out(s)?;
        Some(
            copy.map(|_| crate::compat::no_rows())
                .map_err(|e| crate::query_error(&e)),
        )
    }

    async fn handle_extended_query(
        &self,
        s: &Statement,
        _: &LogicalPlan,
        _: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.handle_simple_query(s, ctx, client).await
    }
}

/// Plans `copy`'s query in the caller's session and answers with its rows.
pub async fn run(ctx: &SessionContext, copy: &CopyOut) -> PgWireResult<Response> {
    let api = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
    let statement = datafusion::sql::parser::Statement::Statement(Box::new(Statement::Query(
        Box::new(copy.query.clone()),
    )));
    let plan = ctx
        .state()
        .statement_to_plan(statement)
        .await
        .map_err(api)?;
    let format = &copy.format;
    let df = ctx.execute_logical_plan(plan).await.map_err(api)?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let wire = match format {
        CopyFormat::Binary => Format::UnifiedBinary,
        _ => Format::UnifiedText,
    };
    let fields = Arc::new(arrow_schema_to_pg_fields(&schema, &wire, None)?);
    let stream = df.execute_stream().await.map_err(api)?;
    let columns = fields.len();
    let mut encoder = match format {
        CopyFormat::Text(o) => CopyEncoder::new_text(Arc::clone(&fields), o.clone()),
        CopyFormat::Csv { options, .. } => {
            CopyEncoder::new_csv(Arc::clone(&fields), options.clone())
        }
        CopyFormat::Binary => CopyEncoder::new_binary(Arc::clone(&fields)),
    };
    // What opens the copy: CSV's header line, sent in the first row's
    // message (PostgreSQL counts rows, `COPY n`, and so does pgwire, by
    // message), or binary's signature, which the encoder writes with the
    // first row itself. With no rows it is sent at the end: alone for CSV,
    // in one message with the trailer for binary (psycopg reads a binary
    // copy's first message as the signature and what follows it).
    let binary = matches!(format, CopyFormat::Binary);
    let opening = Arc::new(std::sync::Mutex::new(match format {
        CopyFormat::Csv {
            options,
            header: true,
        } => Some(csv_header(&fields, options)),
        CopyFormat::Binary => Some(binary_header()),
        _ => None,
    }));
    let at_first_row = Arc::clone(&opening);
    let take = |o: &std::sync::Mutex<Option<Bytes>>| {
        o.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    };
    let rows = stream.flat_map(move |batch| {
        let mut out: Vec<PgWireResult<CopyData>> = match batch {
            Ok(b) => encode_batch(&mut encoder, &b, &fields),
            Err(e) => vec![Err(PgWireError::ApiError(Box::new(e)))],
        };
        if let Some(Ok(first)) = out.first_mut() {
            if let Some(h) = take(&at_first_row).filter(|_| !binary) {
                let mut b = BytesMut::from(h.as_ref());
                b.put_slice(first.data.as_ref());
                *first = CopyData::new(b.freeze());
            }
        }
        futures::stream::iter(out)
    });
    let end = futures::stream::iter(std::iter::once(()).filter_map(move |()| {
        let unsent = take(&opening);
        if !binary {
            return unsent.map(|h| Ok(CopyData::new(h)));
        }
        let mut b = BytesMut::from(unsent.unwrap_or_default().as_ref());
        b.put_slice(CopyEncoder::finish_copy_binary().data.as_ref());
        Some(Ok(CopyData::new(b.freeze())))
    }));
    // The trailer is this stream's own (above), so the response is made as
    // a text copy's, which gets none appended, and then marked binary.
    let mut response = CopyResponse::new(0, columns, rows.chain(end));
    response.format = if binary { 1 } else { 0 };
    Ok(Response::CopyOut(response))
}

fn encode_batch(
    encoder: &mut CopyEncoder,
    batch: &RecordBatch,
    fields: &[FieldInfo],
) -> Vec<PgWireResult<CopyData>> {
    let schema = batch.schema();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for (col, field) in fields.iter().enumerate() {
            if let Err(e) = encode_value(encoder, batch.column(col), row, schema.field(col), field)
            {
                out.push(Err(e));
                return out;
            }
        }
        out.push(Ok(encoder.take_copy()));
    }
    out
}

/// The CSV header line: the column names, quoted where PostgreSQL would.
fn csv_header(fields: &[FieldInfo], o: &CopyCsvOptions) -> Bytes {
    let quote = o.quote.as_str();
    let line: Vec<String> = fields
        .iter()
        .map(|f| {
            let name = f.name();
            let needs = name.contains(o.delimiter.as_str())
                || name.contains(quote)
                || name.contains('\n')
                || name.contains('\r')
                || name.is_empty();
            if needs {
                let escaped = name.replace(quote, &format!("{}{quote}", o.escape));
                format!("{quote}{escaped}{quote}")
            } else {
                name.to_string()
            }
        })
        .collect();
    let mut b = BytesMut::new();
    b.put_slice(line.join(o.delimiter.as_str()).as_bytes());
    b.put_u8(b'\n');
    b.freeze()
}

/// PostgreSQL's binary COPY header (signature, flags, extension length).
fn binary_header() -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(b"PGCOPY\n\xff\r\n\0");
    b.put_i32(0);
    b.put_i32(0);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(sql: &str) -> Statement {
        SqlParser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap()
    }

    #[test]
    fn copy_to_stdout_of_a_query_or_table_in_every_format() {
        let c = copy_out(&statement("COPY (SELECT 1 AS a) TO STDOUT"))
            .unwrap()
            .unwrap();
        assert_eq!(c.format, CopyFormat::Text(CopyTextOptions::default()));
        let c = copy_out(&statement(
            "COPY (SELECT 1 AS a) TO STDOUT WITH (FORMAT csv, HEADER, DELIMITER ';')",
        ))
        .unwrap()
        .unwrap();
        match c.format {
            CopyFormat::Csv { options, header } => {
                assert!(header);
                assert_eq!(options.delimiter.as_str(), ";");
            }
            other => panic!("{other:?}"),
        }
        let c = copy_out(&statement(
            "COPY events (event_id, kind) TO STDOUT (FORMAT BINARY)",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.format, CopyFormat::Binary);
        assert_eq!(c.query.to_string(), "SELECT event_id, kind FROM events");
        let c = copy_out(&statement("COPY (SELECT 1) TO STDOUT WITH CSV HEADER"))
            .unwrap()
            .unwrap();
        assert!(matches!(c.format, CopyFormat::Csv { header: true, .. }));
    }

    #[test]
    fn copy_from_or_to_the_servers_files_is_refused() {
        for (sql, why) in [
            ("COPY events FROM STDIN", "FROM is not allowed"),
            ("COPY (SELECT 1) TO '/tmp/x'", "only TO STDOUT"),
            ("COPY (SELECT 1) TO PROGRAM 'rm -rf /'", "only TO STDOUT"),
            (
                "COPY (SELECT 1) TO STDOUT (FORMAT parquet)",
                "not recognized",
            ),
            ("COPY (SELECT 1) TO STDOUT (HEADER)", "only in CSV"),
        ] {
            let err = copy_out(&statement(sql)).unwrap().unwrap_err().to_string();
            assert!(err.contains(why), "{sql}: {err}");
        }
        assert!(copy_out(&statement("SELECT 1")).is_none());
    }
}
