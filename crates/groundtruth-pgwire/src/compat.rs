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
use datafusion::common::{DFSchema, ParamValues, ScalarValue};
use datafusion::logical_expr::{
    create_udf, ColumnarValue, EmptyRelation, LogicalPlan, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::QueryHook;
use pgwire::api::results::{Response, Tag};
use pgwire::api::{ClientInfo, Type};
use pgwire::error::PgWireResult;

/// The PostgreSQL version the wire protocol and `pg_catalog` follow, as
/// `SHOW server_version` and `version()` give it.
pub const SERVER_VERSION: &str = "16.6";

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

/// `pg_get_serial_sequence(table, column)`: NULL (no column is serial).
pub fn pg_get_serial_sequence_udf() -> ScalarUDF {
    create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    )
}

/// `pg_collation_is_visible(oid)`: true (the default collation only).
pub fn pg_collation_is_visible_udf() -> ScalarUDF {
    create_udf(
        "pg_collation_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
    )
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

/// Answers `SAVEPOINT`, `RELEASE SAVEPOINT` and `ROLLBACK TO SAVEPOINT`
/// (put it before datafusion-postgres's transaction hook, which would end
/// the transaction on the last).
#[derive(Debug)]
pub struct SavepointHook;

fn savepoint_response(s: &Statement) -> Option<Response> {
    match s {
        Statement::Savepoint { .. } => Some(Response::Execution(Tag::new("SAVEPOINT"))),
        Statement::ReleaseSavepoint { .. } => Some(Response::Execution(Tag::new("RELEASE"))),
        // Back inside the transaction, as PostgreSQL leaves it (a failed
        // transaction is usable again).
        Statement::Rollback {
            savepoint: Some(_), ..
        } => Some(Response::TransactionStart(Tag::new("ROLLBACK"))),
        _ => None,
    }
}

#[async_trait]
impl QueryHook for SavepointHook {
    async fn handle_simple_query(
        &self,
        s: &Statement,
        _: &SessionContext,
        _: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        savepoint_response(s).map(Ok)
    }

    async fn handle_extended_parse_query(
        &self,
        s: &Statement,
        _: &SessionContext,
        _: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        savepoint_response(s).map(|_| Ok(no_rows()))
    }

    async fn handle_extended_query(
        &self,
        s: &Statement,
        _: &LogicalPlan,
        _: &ParamValues,
        _: &SessionContext,
        _: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        savepoint_response(s).map(Ok)
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
        assert_eq!(type_oid("\"varchar\""), Some(1043));
        assert_eq!(type_oid("timestamp with time zone"), Some(1184));
        assert_eq!(type_oid("text[]"), Some(1009));
        assert_eq!(type_oid("hstore"), None);
        assert_eq!(type_oid(""), None);
    }
}
