//! What PostgreSQL clients ask of a server before and around their queries,
//! answered as PostgreSQL answers it, so that drivers and libraries work
//! unchanged (SQLAlchemy, psycopg, pandas, Polars; tests/clients/).
//!
//! - Savepoints: psycopg 3 wraps its type lookups in `SAVEPOINT` /
//!   `RELEASE` / `ROLLBACK TO SAVEPOINT` inside the transaction SQLAlchemy
//!   opens. Nothing an analyst runs changes data, so there is nothing to
//!   roll back: they are answered as PostgreSQL answers them, and `ROLLBACK
//!   TO SAVEPOINT` leaves a failed transaction usable again, as there.
//! - `to_regtype(name)`: psycopg looks types up by name with it (SQLAlchemy
//!   asks for `hstore` on every connection); the oid of a built-in type,
//!   NULL for any other, as PostgreSQL answers for a type it does not have.
//! - `pg_get_serial_sequence(table, column)`: SQLAlchemy's inspector asks
//!   it of every column; nothing here has a sequence, so NULL.
//! - `json_build_object(k, v, ...)` and `pg_collation_is_visible(oid)`:
//!   the inspector builds a column's identity and collation with them.
//! - `pg_function_is_visible`, `pg_get_function_result`,
//!   `pg_get_function_arguments`: psql's `\df`.
//! - `current_setting(name)` and `SHOW server_version[_num]`: Grafana's
//!   and Metabase's version probes; the settings a client may read.
//! - `version()`: SQLAlchemy reads the server's version from it and refuses
//!   a string without `PostgreSQL <major>.<minor>`; the answer names the
//!   PostgreSQL version whose protocol and catalog the server speaks, then
//!   groundtruth and DataFusion.

use std::sync::Arc;

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::OnceLock;

use datafusion::arrow::array::{Array, AsArray, Int32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::{DFSchema, ParamValues, ScalarValue};
use datafusion::logical_expr::{
    create_udf, ColumnarValue, EmptyRelation, LogicalPlan, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::QueryHook;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::{ClientInfo, Type};
use pgwire::error::{PgWireError, PgWireResult};

/// The PostgreSQL version the wire protocol and `pg_catalog` follow, as
/// `SHOW server_version` and `version()` give it.
pub const SERVER_VERSION: &str = "16.6";
/// The same as a number (`server_version_num`).
pub const SERVER_VERSION_NUM: &str = "160006";

/// The settings `current_setting` and `SHOW` answer (what drivers and
/// dashboards read; the session's time zone is the lake's day zone's
/// offset, in which `event_date` is counted).
pub fn setting(name: &str) -> Option<&'static str> {
    Some(match name.to_lowercase().as_str() {
        "server_version" => SERVER_VERSION,
        "server_version_num" => SERVER_VERSION_NUM,
        "server_encoding" | "client_encoding" => "UTF8",
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "datestyle" => "ISO, MDY",
        "intervalstyle" => "postgres",
        "max_identifier_length" => "63",
        "search_path" => "\"$user\", public",
        "default_transaction_read_only" | "transaction_read_only" => "on",
        "transaction_isolation" | "default_transaction_isolation" => "read committed",
        "application_name" => "",
        _ => return None,
    })
}

/// [`setting`], and the session's time zone (`TimeZone`: the lake's day
/// zone unless `SET TIME ZONE` chose another; see groundtruth-query's
/// `zone.rs`).
pub fn session_setting(name: &str, options: &ConfigOptions) -> Option<String> {
    match name.to_lowercase().as_str() {
        "timezone" | "time zone" | "time_zone" => Some(
            options
                .execution
                .time_zone
                .clone()
                .unwrap_or_else(|| "UTC".into()),
        ),
        other => setting(other).map(String::from),
    }
}

/// `current_setting(name [, missing_ok])`: [`session_setting`], or the error
/// PostgreSQL gives (42704) for a name it does not know, NULL with
/// `missing_ok`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CurrentSetting {
    signature: Signature,
}

impl CurrentSetting {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(CurrentSetting {
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Exact(vec![DataType::Utf8]),
                    datafusion::logical_expr::TypeSignature::Exact(vec![
                        DataType::Utf8,
                        DataType::Boolean,
                    ]),
                ],
                Volatility::Stable,
            ),
        })
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let rows = args.number_rows;
        let names =
            datafusion::arrow::compute::cast(&args.args[0].to_array(rows)?, &DataType::Utf8)?;
        let missing_ok = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(b)))) => *b,
            _ => false,
        };
        let mut out = datafusion::arrow::array::StringBuilder::new();
        for name in names.as_string::<i32>().iter() {
            match name {
                None => out.append_null(),
                Some(n) => match session_setting(n, &args.config_options) {
                    Some(v) => out.append_value(v),
                    None if missing_ok => out.append_null(),
                    None => {
                        return datafusion::common::exec_err!(
                            "unrecognized configuration parameter \"{n}\""
                        )
                    }
                },
            }
        }
        shaped_like(&args.args, Arc::new(out.finish()))
    }
}

/// `out` as a scalar when every argument was one (a constant call), else as
/// the array it is.
fn shaped_like(
    args: &[ColumnarValue],
    out: datafusion::arrow::array::ArrayRef,
) -> datafusion::common::Result<ColumnarValue> {
    Ok(
        if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        },
    )
}

/// A function of one argument to text, row by row (NULL gives NULL): the
/// argument of type `input` is read as its text.
#[derive(Debug)]
pub struct TextOf {
    name: &'static str,
    signature: Signature,
    map: fn(&str) -> String,
}

impl PartialEq for TextOf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TextOf {}

impl std::hash::Hash for TextOf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl TextOf {
    pub fn udf(name: &'static str, input: DataType, map: fn(&str) -> String) -> ScalarUDF {
        ScalarUDF::new_from_impl(TextOf {
            name,
            signature: Signature::exact(vec![input], Volatility::Immutable),
            map,
        })
    }
}

impl ScalarUDFImpl for TextOf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let input = args.args[0].to_array(args.number_rows)?;
        let text = datafusion::arrow::compute::cast(&input, &DataType::Utf8)?;
        let out: datafusion::arrow::array::StringArray = text
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(self.map))
            .collect();
        shaped_like(&args.args, Arc::new(out))
    }
}

/// The functions answered by a [`TextOf`]:
/// - `pg_size_pretty(bytes)`: [`size_pretty`] (psql's `\d+`);
/// - `information_schema_type(arrow_type)`, `information_schema_udt(...)`:
///   [`information_schema_type`]'s two names, for the rewritten
///   `information_schema.columns` (see shield.rs).
pub fn text_udfs() -> Vec<ScalarUDF> {
    vec![
        TextOf::udf("pg_size_pretty", DataType::Int64, |b| {
            size_pretty(b.parse().unwrap_or_default())
        }),
        TextOf::udf("information_schema_type", DataType::Utf8, |t| {
            information_schema_type(t).0
        }),
        TextOf::udf("information_schema_udt", DataType::Utf8, |t| {
            information_schema_type(t).1
        }),
    ]
}

/// `version()`: `PostgreSQL 16.6 (groundtruth 0.1.0; Apache DataFusion
/// 55.2.0) on ...`, the form clients parse.
pub fn version_udf() -> ScalarUDF {
    let text = format!(
        "PostgreSQL {SERVER_VERSION} (groundtruth {}; Apache DataFusion {}) on {}-linux, 64-bit",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        std::env::consts::ARCH,
    );
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))
        }),
    )
}

/// The built-in types by name (`int4`, `_int4` for its array), from
/// PostgreSQL's own oids.
fn builtin_types() -> &'static HashMap<String, i32> {
    static TYPES: OnceLock<HashMap<String, i32>> = OnceLock::new();
    TYPES.get_or_init(|| {
        (0..20_000u32)
            .filter_map(Type::from_oid)
            .map(|t| (t.name().to_string(), t.oid() as i32))
            .collect()
    })
}

/// The oid of the type `name` names as PostgreSQL reads it (`integer`,
/// `pg_catalog.int4`, `"varchar"`, `text[]`), if it is built in.
pub fn type_oid(name: &str) -> Option<i32> {
    let mut n = name.trim().to_lowercase();
    if let Some(rest) = n.strip_prefix("pg_catalog.") {
        n = rest.to_string();
    }
    let n = n.trim_matches('"');
    let (base, array) = match n.strip_suffix("[]") {
        Some(b) => (b.trim(), true),
        None => (n, false),
    };
    let base = match base {
        "integer" | "int" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "boolean" => "bool",
        "real" => "float4",
        "double precision" => "float8",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        "time with time zone" => "timetz",
        other => other,
    };
    let key = if array {
        format!("_{base}")
    } else {
        base.to_string()
    };
    builtin_types().get(&key).copied()
}

/// `to_regtype(text)`: [`type_oid`] per row, NULL where there is none.
pub fn to_regtype_udf() -> ScalarUDF {
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let names = match &args[0] {
                ColumnarValue::Array(a) => std::sync::Arc::clone(a),
                ColumnarValue::Scalar(s) => s.to_array()?,
            };
            let names = datafusion::arrow::compute::cast(&names, &DataType::Utf8)?;
            let oids: Int32Array = names
                .as_string::<i32>()
                .iter()
                .map(|n| n.and_then(type_oid))
                .collect();
            Ok(
                if matches!(args[0], ColumnarValue::Scalar(_)) && oids.len() == 1 {
                    ColumnarValue::Scalar(ScalarValue::try_from_array(&oids, 0)?)
                } else {
                    ColumnarValue::Array(Arc::new(oids))
                },
            )
        }),
    )
}

/// A catalog function whose answer here is always the same: `name` of
/// `arities` arguments (each count allowed) of any type, answering
/// `value`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Constant {
    name: &'static str,
    value: ScalarValue,
    signature: Signature,
}

impl Constant {
    pub fn udf(name: &'static str, arities: &[usize], value: ScalarValue) -> ScalarUDF {
        let signature = match arities {
            [n] => Signature::any(*n, Volatility::Immutable),
            _ => Signature::one_of(
                arities
                    .iter()
                    .map(|n| datafusion::logical_expr::TypeSignature::Any(*n))
                    .collect(),
                Volatility::Immutable,
            ),
        };
        ScalarUDF::new_from_impl(Constant {
            name,
            value,
            signature,
        })
    }
}

impl ScalarUDFImpl for Constant {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(self.value.data_type())
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

/// The catalog functions answered by a [`Constant`]:
/// - `pg_get_serial_sequence(table, column)`: NULL (no column is serial);
/// - `pg_collation_is_visible(oid)`: true (the default collation only);
/// - `pg_function_is_visible(oid)`, `pg_get_function_result(oid)`,
///   `pg_get_function_arguments(oid)`: psql's `\df`, which lists the
///   functions outside `pg_catalog` (none here, as in a new PostgreSQL
///   database);
/// - `pg_get_indexdef(oid [, column, pretty])`: NULL (the lake's tables and
///   views have no index; SQLAlchemy's inspector and `pandas.read_sql_table`
///   ask it of every index the catalogue lists);
/// - `obj_description(oid [, catalog])`, `col_description(oid, column)`:
///   NULL (no comments), `pg_table_size(oid)`: NULL (a view over the lake
///   has no size of its own): psql's `\d+`.
pub fn constant_udfs() -> Vec<ScalarUDF> {
    vec![
        Constant::udf("pg_get_serial_sequence", &[2], ScalarValue::Utf8(None)),
        Constant::udf(
            "pg_collation_is_visible",
            &[1],
            ScalarValue::Boolean(Some(true)),
        ),
        Constant::udf(
            "pg_function_is_visible",
            &[1],
            ScalarValue::Boolean(Some(true)),
        ),
        Constant::udf("pg_get_function_result", &[1], ScalarValue::Utf8(None)),
        Constant::udf("pg_get_function_arguments", &[1], ScalarValue::Utf8(None)),
        Constant::udf("pg_get_indexdef", &[1, 3], ScalarValue::Utf8(None)),
        Constant::udf("obj_description", &[1, 2], ScalarValue::Utf8(None)),
        Constant::udf("col_description", &[2], ScalarValue::Utf8(None)),
        Constant::udf("pg_table_size", &[1], ScalarValue::Int64(None)),
        Constant::udf("pg_get_viewdef", &[1, 2], ScalarValue::Utf8(None)),
    ]
}

/// `pg_size_pretty(bytes)`: PostgreSQL 16's `pg_size_pretty(bigint)`, step for
/// step (sizes above bytes are carried in half units and rounded half away
/// from zero when printed).
pub fn size_pretty(bytes: i64) -> String {
    // (name, limit in the carried units, rounded, bits of the unit)
    const UNITS: [(&str, u64, bool, i32); 6] = [
        ("bytes", 10 * 1024, false, 0),
        ("kB", 20 * 1024 - 1, true, 10),
        ("MB", 20 * 1024 - 1, true, 20),
        ("GB", 20 * 1024 - 1, true, 30),
        ("TB", 20 * 1024 - 1, true, 40),
        ("PB", 20 * 1024 - 1, true, 50),
    ];
    let mut size = bytes;
    for (i, (name, limit, round, bits)) in UNITS.iter().enumerate() {
        let Some(next) = UNITS.get(i + 1).filter(|_| size.unsigned_abs() >= *limit) else {
            if *round {
                size = (size + if size < 0 { -1 } else { 1 }) / 2;
            }
            return format!("{size} {name}");
        };
        let shift = next.3 - bits - i32::from(next.2) + i32::from(*round);
        size /= 1i64 << shift;
    }
    unreachable!("the last unit prints")
}

/// The PostgreSQL type of a column whose Arrow type prints as `arrow`
/// (DataFusion's `information_schema.columns.data_type`), as the wire
/// protocol sends its values: `(data_type, udt_name)` as PostgreSQL's
/// `information_schema` names them (`timestamp with time zone`,
/// `timestamptz`; `ARRAY`, `_text`). A type that does not parse is text.
pub fn information_schema_type(arrow: &str) -> (String, String) {
    use std::str::FromStr;
    let pg = DataType::from_str(arrow)
        .ok()
        .map(|t| match t {
            DataType::Dictionary(_, value) => *value,
            other => other,
        })
        .and_then(|t| datafusion_postgres::arrow_pg::datatypes::into_pg_type(&t).ok())
        .unwrap_or(Type::TEXT);
    // Array types are named for their element with a leading underscore.
    let data_type = if pg.name().starts_with('_') {
        "ARRAY".to_string()
    } else {
        match pg.name() {
            "bool" => "boolean",
            "int2" => "smallint",
            "int4" => "integer",
            "int8" => "bigint",
            "float4" => "real",
            "float8" => "double precision",
            "varchar" => "character varying",
            "timestamp" => "timestamp without time zone",
            "timestamptz" => "timestamp with time zone",
            "time" => "time without time zone",
            other => other,
        }
        .to_string()
    };
    (data_type, pg.name().to_string())
}

/// `json_build_object(key, value, ...)`: a JSON object's text, keys and
/// values taken as text (numbers and booleans as they print), NULL values
/// as `null`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonBuildObject {
    signature: Signature,
}

impl JsonBuildObject {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(JsonBuildObject {
            signature: Signature::variadic_any(Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return datafusion::common::exec_err!(
                "json_build_object takes key and value pairs: {} arguments given",
                args.args.len()
            );
        }
        let rows = args.number_rows;
        let cols = args
            .args
            .iter()
            .map(|a| {
                let a = a.to_array(rows)?;
                datafusion::arrow::compute::cast(&a, &DataType::Utf8)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let numeric: Vec<bool> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().is_numeric() || f.data_type() == &DataType::Boolean)
            .collect();
        let out: datafusion::arrow::array::StringArray = (0..rows)
            .map(|i| {
                let mut o = serde_json::Map::new();
                for pair in (0..cols.len()).step_by(2) {
                    let key = cols[pair].as_string::<i32>();
                    let value = cols[pair + 1].as_string::<i32>();
                    let k = if key.is_null(i) { "" } else { key.value(i) };
                    let v = if value.is_null(i) {
                        serde_json::Value::Null
                    } else if numeric[pair + 1] {
                        serde_json::from_str(value.value(i))
                            .unwrap_or_else(|_| serde_json::Value::String(value.value(i).into()))
                    } else {
                        serde_json::Value::String(value.value(i).into())
                    };
                    o.insert(k.to_string(), v);
                }
                Some(serde_json::Value::Object(o).to_string())
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The plan a statement that returns no rows is described by (the
/// extended protocol's NoData); it is answered by its hook when it runs.
pub fn no_rows() -> LogicalPlan {
    LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(DFSchema::empty()),
    })
}

/// Answers `SAVEPOINT`, `RELEASE SAVEPOINT` and `ROLLBACK TO SAVEPOINT`,
/// and `SHOW` of the [`setting`]s (put it before datafusion-postgres's
/// SHOW hook, which calls the server "datafusion", and its transaction
/// hook, which would end the transaction on `ROLLBACK TO`).
#[derive(Debug)]
pub struct CompatHook {
    /// The session's time zone when it began (`SET TIME ZONE DEFAULT`
    /// goes back to it): the lake's day zone.
    pub default_zone: Option<String>,
}

/// What `s` is answered with: a savepoint's tag, or a [`setting`]'s name
/// and value for `SHOW`.
enum Answer {
    Tag(Response),
    Show(String, String),
    /// `SET TIME ZONE`: the zone to read instants in, or why it is none.
    Zone(Result<String, String>),
}

/// The text of a `SET`'s value: a literal's content, an identifier's name,
/// anything else as written.
pub fn set_value(e: &datafusion::sql::sqlparser::ast::Expr) -> String {
    use datafusion::sql::sqlparser::ast::Expr;
    match e {
        Expr::Value(v) => v.clone().into_string().unwrap_or_else(|| v.to_string()),
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

/// The zone `SET TIME ZONE <value>` (or `SET timezone TO <value>`) names:
/// `LOCAL` and `DEFAULT` are `default`; a name must be one Arrow knows
/// (IANA names such as `Asia/Shanghai`, `UTC`, offsets such as `+08:00`).
fn named_zone(value: &str, default: Option<&str>) -> Result<String, String> {
    let v = value.trim().trim_matches('\'').trim_matches('"').trim();
    if v.eq_ignore_ascii_case("local") || v.eq_ignore_ascii_case("default") {
        return Ok(default.unwrap_or("UTC").to_string());
    }
    match v.parse::<datafusion::arrow::array::timezone::Tz>() {
        Ok(_) => Ok(v.to_string()),
        Err(_) => Err(format!(
            "invalid value for parameter \"TimeZone\": \"{v}\"; name a zone such as 'Asia/Shanghai', 'UTC' or '+08:00'"
        )),
    }
}

fn answer(s: &Statement, ctx: &SessionContext, default_zone: Option<&str>) -> Option<Answer> {
    use datafusion::sql::sqlparser::ast::Set;
    match s {
        Statement::Set(Set::SetTimeZone { value, .. }) => {
            Some(Answer::Zone(named_zone(&set_value(value), default_zone)))
        }
        Statement::Set(Set::SingleAssignment {
            variable, values, ..
        }) if variable.to_string().eq_ignore_ascii_case("timezone") => {
            let text = match values.as_slice() {
                [one] => set_value(one),
                _ => String::new(),
            };
            Some(Answer::Zone(named_zone(&text, default_zone)))
        }
        Statement::Savepoint { .. } => {
            Some(Answer::Tag(Response::Execution(Tag::new("SAVEPOINT"))))
        }
        Statement::ReleaseSavepoint { .. } => {
            Some(Answer::Tag(Response::Execution(Tag::new("RELEASE"))))
        }
        // Back inside the transaction, as PostgreSQL leaves it (a failed
        // transaction is usable again).
        Statement::Rollback {
            savepoint: Some(_), ..
        } => Some(Answer::Tag(Response::TransactionStart(Tag::new(
            "ROLLBACK",
        )))),
        Statement::ShowVariable { variable } if !variable.is_empty() && variable.len() <= 2 => {
            let name = variable
                .iter()
                .map(|v| v.value.to_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            let value = session_setting(&name, ctx.state().config().options())?;
            // PostgreSQL's name for the time zone's column.
            let name = if name == "time zone" {
                "timezone".into()
            } else {
                name
            };
            Some(Answer::Show(name, value))
        }
        _ => None,
    }
}

/// One row, one text column `name` holding `value`.
fn show_response(name: &str, value: &str) -> PgWireResult<Response> {
    let fields = Arc::new(vec![FieldInfo::new(
        name.into(),
        None,
        None,
        Type::VARCHAR,
        FieldFormat::Text,
    )]);
    let mut row = DataRowEncoder::new(Arc::clone(&fields));
    row.encode_field(&Some(value))?;
    let rows = vec![Ok(row.take_row())];
    Ok(Response::Query(QueryResponse::new(
        fields,
        futures::stream::iter(rows),
    )))
}

/// Answers `a`; a time zone is set in `ctx`'s session (the analyzer rule
/// of groundtruth-query's `zone.rs` reads it) and told to the client as
/// PostgreSQL does.
async fn respond(
    a: Answer,
    ctx: &SessionContext,
    client: &mut dyn HookClient,
) -> PgWireResult<Response> {
    match a {
        Answer::Tag(r) => Ok(r),
        Answer::Show(name, value) => show_response(&name, &value),
        Answer::Zone(Err(message)) => Err(PgWireError::UserError(Box::new(
            pgwire::error::ErrorInfo::new("ERROR".into(), "22023".into(), message),
        ))),
        Answer::Zone(Ok(zone)) => {
            ctx.state_ref()
                .write()
                .config_mut()
                .options_mut()
                .execution
                .time_zone = Some(zone.clone());
            client
                .send_message(pgwire::messages::PgWireBackendMessage::ParameterStatus(
                    pgwire::messages::startup::ParameterStatus::new("TimeZone".into(), zone),
                ))
                .await?;
            Ok(Response::Execution(Tag::new("SET")))
        }
    }
}

#[async_trait]
impl QueryHook for CompatHook {
    async fn handle_simple_query(
        &self,
        s: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let a = answer(s, ctx, self.default_zone.as_deref())?;
        Some(respond(a, ctx, client).await)
    }

    async fn handle_extended_parse_query(
        &self,
        s: &Statement,
        ctx: &SessionContext,
        _: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        Some(match answer(s, ctx, self.default_zone.as_deref())? {
            Answer::Tag(_) | Answer::Zone(Ok(_)) => Ok(no_rows()),
            Answer::Zone(Err(message)) => Err(PgWireError::UserError(Box::new(
                pgwire::error::ErrorInfo::new("ERROR".into(), "22023".into(), message),
            ))),
            // Described as the row it answers.
            Answer::Show(name, value) => ctx
                .state()
                .create_logical_plan(&format!(
                    "SELECT '{}' AS \"{}\"",
                    value.replace('\'', "''"),
                    name.replace('"', "")
                ))
                .await
                .map_err(|e| PgWireError::ApiError(Box::new(e))),
        })
    }

    async fn handle_extended_query(
        &self,
        s: &Statement,
        _: &LogicalPlan,
        _: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let a = answer(s, ctx, self.default_zone.as_deref())?;
        Some(respond(a, ctx, client).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_resolve_as_postgresql_reads_them() {
        assert_eq!(type_oid("int4"), Some(23));
        assert_eq!(type_oid("integer"), Some(23));
        assert_eq!(type_oid("pg_catalog.text"), Some(25));
        // information_schema's types as PostgreSQL names them.
        for (arrow, data_type, udt) in [
            ("Utf8", "text", "text"),
            ("Utf8View", "text", "text"),
            ("Dictionary(Int32, Utf8)", "text", "text"),
            ("Int64", "bigint", "int8"),
            ("Int32", "integer", "int4"),
            ("Float64", "double precision", "float8"),
            ("Boolean", "boolean", "bool"),
            ("Date32", "date", "date"),
            (
                r#"Timestamp(µs, "UTC")"#,
                "timestamp with time zone",
                "timestamptz",
            ),
            ("Timestamp(µs)", "timestamp without time zone", "timestamp"),
            ("List(Utf8)", "ARRAY", "_text"),
            ("no such type", "text", "text"),
        ] {
            assert_eq!(
                information_schema_type(arrow),
                (data_type.to_string(), udt.to_string()),
                "{arrow}"
            );
        }
        // pg_size_pretty as PostgreSQL 16 prints it.
        for (bytes, text) in [
            (0, "0 bytes"),
            (10_239, "10239 bytes"),
            (10_240, "10 kB"),
            (1_000_000, "977 kB"),
            (10_485_247, "10239 kB"),
            (10_485_248, "10 MB"),
            (10_485_760, "10 MB"),
            (123_456_789_012, "115 GB"),
            (-20_480, "-20 kB"),
        ] {
            assert_eq!(size_pretty(bytes), text, "{bytes}");
        }
        assert_eq!(type_oid("\"varchar\""), Some(1043));
        assert_eq!(type_oid("timestamp with time zone"), Some(1184));
        assert_eq!(type_oid("text[]"), Some(1009));
        assert_eq!(type_oid("hstore"), None);
        assert_eq!(type_oid(""), None);
    }
}

#[cfg(test)]
mod setting_tests {
    use super::*;

    #[test]
    fn clients_read_a_postgresql_version_and_unknown_settings_are_unknown() {
        assert_eq!(setting("server_version_num"), Some("160006"));
        assert_eq!(setting("SERVER_VERSION"), Some(SERVER_VERSION));
        assert_eq!(setting("shared_buffers"), None);
        let number: u32 = SERVER_VERSION_NUM.parse().unwrap();
        let (major, minor) = SERVER_VERSION.split_once('.').unwrap();
        assert_eq!(
            number,
            major.parse::<u32>().unwrap() * 10_000 + minor.parse::<u32>().unwrap()
        );
    }
}
