//! `POST /api/v1/sql`: the analysts' SQL over HTTP. The query runs in the
//! caller's scoped session ([`groundtruth_query::QueryService`]): the
//! region cut is in the tables under the query, not in its text.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use groundtruth_error::{Classified, ErrorDomain};
use groundtruth_query::encode::{self, Format};
use groundtruth_query::{QueryError, QueryErrorKind};
use groundtruth_store::Role;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{Float64Type, Int64Type};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, Caller};
use crate::workbook::{self, Cell, Lang, Sheet};
use crate::ApiState;

const SQL_ROLES: &[Role] = &[Role::Analyst, Role::Admin];

/// Result formats.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SqlFormat {
    Json,
    Csv,
    Arrow,
    /// A one-sheet Excel workbook.
    Xlsx,
}

/// Excel's limits: rows a worksheet holds (the header among them), and
/// characters a cell holds.
const XLSX_MAX_ROWS: usize = 1_048_576;
const XLSX_MAX_CELL_CHARS: usize = 32_767;

/// A query as a JSON body (`Content-Type: application/json`). The query
/// may also be sent as the body itself (`text/plain` or `application/sql`)
/// with `format` and `max_rows` as URL parameters.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One read-only statement: SELECT, WITH, VALUES or EXPLAIN.
    pub sql: String,
    /// `json` (default), `csv`, `arrow` (an Arrow IPC stream) or `xlsx` (a
    /// workbook for Excel or WPS). The `Accept` header (`text/csv`,
    /// `application/vnd.apache.arrow.stream`, the xlsx media type) also
    /// chooses.
    pub format: Option<SqlFormat>,
    /// Fewer rows than the server's cap.
    pub max_rows: Option<usize>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SqlParams {
    #[param(value_type = Option<String>)]
    pub format: Option<SqlFormat>,
    pub max_rows: Option<usize>,
}

/// A JSON result.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct SqlResult {
    /// `[{name, type}]`, type in Arrow's words.
    #[schema(value_type = Vec<Object>)]
    pub columns: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    pub rows: serde_json::Value,
    pub row_count: usize,
    /// More rows existed than returned (the cap or `max_rows`).
    pub truncated: bool,
    pub elapsed_ms: f64,
}

impl From<QueryError> for ApiError {
    /// Whose fault decides 4xx or 5xx ([`ErrorDomain`]); among the
    /// caller's, the error says which 4xx.
    fn from(e: QueryError) -> ApiError {
        let message = e.to_string();
        match (e.domain(), e.kind(), &e) {
            (ErrorDomain::Internal, ..) => {
                tracing::error!(error = %message, "an analyst query failed inside the server");
                ApiError::Internal(
                    "the query failed inside the server; the details are in the server log".into(),
                )
            }
            // The server's state, not the query alone: try again later.
            (ErrorDomain::External, ..) => ApiError::Rejected {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message,
            },
            (_, _, QueryError::TooLong { .. }) => ApiError::Rejected {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message,
            },
            (_, _, QueryError::Busy(_)) => ApiError::Rejected {
                status: StatusCode::TOO_MANY_REQUESTS,
                message,
            },
            (_, _, QueryError::Timeout { .. }) => ApiError::Rejected {
                status: StatusCode::REQUEST_TIMEOUT,
                message,
            },
            (_, QueryErrorKind::Limit, _) => ApiError::Rejected {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message,
            },
            (_, QueryErrorKind::Refused, _) => ApiError::Forbidden(message),
            (_, QueryErrorKind::Invalid | QueryErrorKind::Internal, _) => {
                ApiError::BadRequest(message)
            }
        }
    }
}

#[utoipa::path(post, path = "/api/v1/sql", tag = "analysis", security(("bearer" = [])),
    params(SqlParams),
    request_body(content = SqlRequest, description = "or the query itself as text/plain or application/sql"),
    responses(
        (status = 200, body = SqlResult, description = "JSON; CSV (text/csv), an Arrow IPC stream or an xlsx workbook, with headers X-Groundtruth-Rows and X-Groundtruth-Truncated"),
        (status = 400, body = ErrorBody, description = "the query does not parse or plan"),
        (status = 403, body = ErrorBody, description = "not an analyst, or the statement is not a read-only query"),
        (status = 408, body = ErrorBody, description = "over the time limit"),
        (status = 413, body = ErrorBody, description = "query text too long"),
        (status = 422, body = ErrorBody, description = "over the memory limit, or more than a worksheet holds")))]
pub async fn sql(
    State(s): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<SqlParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let who = caller.require(SQL_ROLES, "run SQL")?;
    let Some(service) = s.query.as_ref() else {
        return Err(ApiError::Unavailable(
            "this server has no analysts' SQL (no lake configured)".into(),
        ));
    };
    let body = body.map_err(|r| ApiError::Rejected {
        status: r.status(),
        message: format!("cannot read the request body: {}", r.body_text()),
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/plain")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let req = match content_type.as_str() {
        "application/json" => serde_json::from_slice::<SqlRequest>(&body).map_err(|e| {
            ApiError::BadRequest(format!(
                "the body is not a query request {{\"sql\": ..., \"format\"?, \"max_rows\"?}}: {e}"
            ))
        })?,
        "text/plain" | "application/sql" | "" => {
            let sql = String::from_utf8(body.to_vec()).map_err(|e| {
                ApiError::BadRequest(format!(
                    "the query text is not UTF-8 (bad byte at offset {})",
                    e.utf8_error().valid_up_to()
                ))
            })?;
            SqlRequest {
                sql,
                format: None,
                max_rows: None,
            }
        }
        other => {
            return Err(ApiError::Rejected {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: format!(
                    "Content-Type {other} is not accepted; send application/json {{\"sql\": ...}} or the query as text/plain"
                ),
            })
        }
    };
    let format = params
        .format
        .or(req.format)
        .or_else(|| accept_format(&headers))
        .unwrap_or(SqlFormat::Json);
    let lang = Lang::of(None, &headers);
    if matches!(params.max_rows.or(req.max_rows), Some(0)) {
        return Err(ApiError::bad("max_rows", "must be at least 1"));
    }
    let result = service
        .run(who, "http", &req.sql, params.max_rows.or(req.max_rows))
        .await?;
    let encode_failed = |e: String| {
        tracing::error!(error = %e, "cannot encode a query result");
        ApiError::Internal("cannot encode the result; the details are in the server log".into())
    };
    let (rows, truncated) = (result.rows, result.truncated);
    // Encoding a large answer (up to the query's memory limit) is CPU work:
    // off the threads that serve requests.
    let mut resp = tokio::task::spawn_blocking(move || -> Result<Response, ApiError> {
        Ok(match format {
            SqlFormat::Json => Json(encode::json(&result).map_err(encode_failed)?).into_response(),
            SqlFormat::Csv => (
                [(header::CONTENT_TYPE, Format::Csv.content_type())],
                encode::csv(&result).map_err(encode_failed)?,
            )
                .into_response(),
            SqlFormat::Arrow => (
                [(header::CONTENT_TYPE, Format::Arrow.content_type())],
                encode::arrow_ipc(&result).map_err(encode_failed)?,
            )
                .into_response(),
            SqlFormat::Xlsx => (
                [(header::CONTENT_TYPE, workbook::MEDIA_TYPE)],
                result_xlsx(&result, lang)?,
            )
                .into_response(),
        })
    })
    .await
    .map_err(|e| encode_failed(e.to_string()))??;
    let h = resp.headers_mut();
    h.insert("x-groundtruth-rows", HeaderValue::from(rows));
    h.insert(
        "x-groundtruth-truncated",
        HeaderValue::from_static(if truncated { "true" } else { "false" }),
    );
    Ok(resp)
}

fn accept_format(headers: &HeaderMap) -> Option<SqlFormat> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    if accept.contains("text/csv") {
        Some(SqlFormat::Csv)
    } else if accept.contains("application/vnd.apache.arrow.stream") {
        Some(SqlFormat::Arrow)
    } else if accept.contains(workbook::MEDIA_TYPE) {
        Some(SqlFormat::Xlsx)
    } else {
        None
    }
}

/// One column of a result as cells.
enum Column<'a> {
    Int(Int64Array),
    Float(Float64Array),
    Text(ArrayFormatter<'a>),
}

impl<'a> Column<'a> {
    /// Integers that fit an i64 as integers, other numbers as floats
    /// (Excel keeps 15 digits either way), everything else as the text the
    /// CSV has (dates YYYY-MM-DD, times RFC 3339, lists as `[...]`).
    fn of(a: &'a ArrayRef, options: &'a FormatOptions<'a>) -> Result<Column<'a>, ArrowError> {
        use arrow::datatypes::DataType as T;
        Ok(match a.data_type() {
            T::Int8 | T::Int16 | T::Int32 | T::Int64 | T::UInt8 | T::UInt16 | T::UInt32 => {
                Column::Int(cast(a, &T::Int64)?.as_primitive::<Int64Type>().clone())
            }
            T::UInt64
            | T::Float16
            | T::Float32
            | T::Float64
            | T::Decimal128(..)
            | T::Decimal256(..) => {
                Column::Float(cast(a, &T::Float64)?.as_primitive::<Float64Type>().clone())
            }
            _ => Column::Text(ArrayFormatter::try_new(a.as_ref(), options)?),
        })
    }

    fn cell(&self, i: usize) -> Cell<'static> {
        match self {
            Column::Int(a) if a.is_valid(i) => Cell::Int(a.value(i)),
            Column::Float(a) if a.is_valid(i) && a.value(i).is_finite() => Cell::Float(a.value(i)),
            // NaN and infinities have no Excel number: their text.
            Column::Float(a) if a.is_valid(i) => Cell::Owned(a.value(i).to_string()),
            Column::Text(f) => Cell::Owned(f.value(i).to_string()),
            _ => Cell::Empty,
        }
    }
}

/// A result as a one-sheet workbook: the columns' names as the header,
/// numbers as numbers, the rest as text (so a cell reading `=...` is text,
/// never a formula), nulls as empty cells. Refused (422) beyond what Excel
/// holds, saying what to do instead.
fn result_xlsx(r: &groundtruth_query::QueryResult, lang: Lang) -> Result<Vec<u8>, ApiError> {
    let too_big = |what: String| ApiError::Rejected {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        message: format!("{what}; ask for fewer rows (max_rows), or for csv or arrow"),
    };
    if r.rows >= XLSX_MAX_ROWS {
        return Err(too_big(format!(
            "{} rows do not fit a worksheet (Excel holds {} below its header)",
            r.rows,
            XLSX_MAX_ROWS - 1
        )));
    }
    let failed = |e: ArrowError| {
        tracing::error!(error = %e, "cannot turn a query result into cells");
        ApiError::Internal("cannot encode the result; the details are in the server log".into())
    };
    let header: Vec<&str> = r
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let options = FormatOptions::default().with_null("");
    let mut rows = Vec::with_capacity(r.rows);
    for b in &r.batches {
        let columns = b
            .columns()
            .iter()
            .map(|a| Column::of(a, &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed)?;
        for i in 0..b.num_rows() {
            let row: Vec<Cell<'static>> = columns.iter().map(|c| c.cell(i)).collect();
            for (c, cell) in row.iter().enumerate() {
                if let Cell::Owned(s) = cell {
                    if s.chars().count() > XLSX_MAX_CELL_CHARS {
                        return Err(too_big(format!(
                            "row {}, column {} holds {} characters, more than an Excel cell holds ({XLSX_MAX_CELL_CHARS})",
                            rows.len() + 1,
                            header[c],
                            s.chars().count()
                        )));
                    }
                }
            }
            rows.push(row);
        }
    }
    workbook::xlsx(&[Sheet {
        name: lang.t("查询结果", "Result"),
        header,
        rows,
    }])
}
