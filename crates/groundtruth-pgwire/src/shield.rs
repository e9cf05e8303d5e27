//! Keeps the catalogue rewrites of `datafusion-postgres` off analysts' own
//! queries.
//!
//! Before planning, `datafusion-postgres` rewrites every statement so that
//! clients' catalogue queries (psql's `\d`, SQLAlchemy's inspector) plan in
//! DataFusion. One of its rewrites, `RemoveSubqueryFromProjection`, turns a
//! correlated scalar subquery in a select list into `NULL` and stamps
//! `LIMIT 1` on an uncorrelated one. That is harmless on `pg_catalog`, whose
//! defaults and sequences are empty here, and a silent wrong answer on the
//! lake: `SELECT k.kind, (SELECT count(*) FROM events e WHERE e.kind =
//! k.kind) FROM ...` answered `NULL` for every count over the wire and the
//! right counts over HTTP; a subquery returning several rows gave its first
//! one instead of PostgreSQL's error.
//!
//! [`shield`] leaves catalogue queries as they are and, in any other, puts
//! each scalar subquery of a select list in parentheses (`((SELECT ...))`,
//! the same expression to DataFusion and PostgreSQL), which that rewrite
//! does not match. Nothing else in the text changes; a statement without
//! such a subquery is passed on byte for byte.
//!
//! In other queries it also spells out `AT TIME ZONE 'UTC'` as `'+00:00'`
//! (groundtruth-query's `zone::spell_out_utc`), as the HTTP path does.
//!
//! In catalogue queries it answers one more thing DataFusion cannot plan:
//! lookups in catalogue relations that are always empty here (see
//! [`EMPTY_CATALOGUE`]).

use std::borrow::Cow;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_relations, BinaryOperator, Expr, Function, FunctionArg,
    FunctionArgExpr, FunctionArgumentList, FunctionArguments, GroupByExpr, Ident, ObjectName,
    Query, SelectItem, SetExpr, Statement, TableAlias, TableAliasColumnDef, TableFactor, Value,
    Visit, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use groundtruth_query::zone::{rewritten, spell_out_utc};

/// `sql` with the select lists' scalar subqueries shielded, unless it reads
/// the catalogue (see the module's docs). Text that does not parse is
/// returned unchanged, for the parser after this one to report.
pub fn shield(sql: &str) -> Cow<'_, str> {
    rewritten(sql, |statements| {
        if statements.iter().any(reads_catalogue) {
            let mut v = CatalogueLookups { changed: false };
            for s in statements.iter_mut() {
                let _ = s.visit(&mut v);
            }
            v.changed
        } else {
            let mut v = Shield { changed: false };
            let mut utc = false;
            for s in statements.iter_mut() {
                let _ = s.visit(&mut v);
                utc |= spell_out_utc(s);
            }
            v.changed || utc
        }
    })
}

/// Does the statement read a catalogue relation (`pg_catalog`,
/// `information_schema`, or a `pg_*` name that resolves there)?
fn reads_catalogue(s: &Statement) -> bool {
    let found = visit_relations(s, |name| {
        let catalogue = name.0.iter().any(|part| {
            part.as_ident().is_some_and(|i| {
                let v = i.value.to_lowercase();
                v == "pg_catalog" || v == "information_schema" || v.starts_with("pg_")
            })
        });
        if catalogue {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    found.is_break()
}

/// Catalogue relations that are empty on this server and stay empty: the
/// lake's tables and views have no column defaults (`pg_attrdef`), no
/// sequences, inheritance, triggers, row policies or enum types, and an
/// analyst can create none (every statement is read-only). A test holds
/// each to zero rows.
pub const EMPTY_CATALOGUE: &[&str] = &[
    "pg_attrdef",
    "pg_sequence",
    "pg_inherits",
    "pg_trigger",
    "pg_policy",
    "pg_enum",
];

/// Aggregates a catalogue lookup may use (over no rows they answer a
/// value, not NULL, so such a subquery is left alone).
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "bool_and",
    "bool_or",
    "every",
    "bit_and",
    "bit_or",
];

/// Clients' catalogue queries look things up with scalar subqueries keyed
/// by an outer row (a column's default, its type's collation: SQLAlchemy's
/// inspector, pgjdbc, DBeaver). DataFusion plans a correlated scalar
/// subquery only if it aggregates, and not at all with some correlations
/// (`WHERE outer.atthasdef AND ...`). In a catalogue query:
/// - one that reads one relation of [`EMPTY_CATALOGUE`] without
///   aggregating selects nothing ([`select_nothing`]): no longer
///   correlated, it plans, and is `NULL` as PostgreSQL answers a scalar
///   subquery over no rows;
/// - any other that does not aggregate returns its value through
///   `first_value`: the catalogue's keys (oids) make such a lookup one row
///   or none, and over one row or none `first_value` is that row's value or
///   NULL.
struct CatalogueLookups {
    changed: bool,
}

impl VisitorMut for CatalogueLookups {
    type Break = ();

    /// `FROM unnest(...) x`: in PostgreSQL the alias of a function that
    /// returns one column names that column too (psql's `\d+` selects
    /// `x`); here it is said so: `x(x)`.
    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let Some(columns) = information_schema_columns(factor) {
            *factor = columns;
            self.changed = true;
            return ControlFlow::Continue(());
        }
        if let TableFactor::Table {
            name,
            args: Some(_),
            alias: Some(alias),
            ..
        } = factor
        {
            let unnest = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| i.value.eq_ignore_ascii_case("unnest"));
            if unnest && alias.columns.is_empty() {
                alias.columns = vec![TableAliasColumnDef::from_name(alias.name.value.clone())];
                self.changed = true;
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if select_nothing(query) {
            self.changed = true;
            return ControlFlow::Continue(());
        }
        // A missing column keeps its name when selected as it is.
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(e) = item {
                    if let Some(name) = missing_column(e) {
                        *item = SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: Ident::new(name),
                        };
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if missing_column(expr).is_some() {
            *expr = Parser::new(&PostgreSqlDialect {})
                .try_with_sql("CAST(NULL AS TEXT[])")
                .and_then(|mut p| p.parse_expr())
                .unwrap_or(Expr::Value(Value::Null.into()));
            self.changed = true;
            return ControlFlow::Continue(());
        }
        if let Some(e) = array_of_subquery(expr) {
            *expr = e;
            self.changed = true;
        }
        if let Some(e) = vector_call(expr) {
            *expr = e;
            self.changed = true;
        }
        // A lookup over an empty relation is left to `select_nothing`,
        // which answers it when this visit reaches its query.
        if let Expr::Subquery(q) = expr {
            if !over_empty_catalogue(q) {
                if let Some(item) = lookup_item(q) {
                    one_value(item);
                    self.changed = true;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// `p1 IS NULL AND p2 IS NULL ...` over the parameters in `node` (with
/// their casts, which give their types), if it has any: a condition that
/// keeps them in a statement whatever else is taken out of it.
fn parameters_held<V: Visit>(node: &V) -> Option<Expr> {
    let mut params: Vec<Expr> = Vec::new();
    let mut inside_cast: Vec<String> = Vec::new();
    let _ = visit_expressions(node, |e| {
        match e {
            Expr::Cast { expr, .. } => {
                if let Expr::Value(v) = expr.as_ref() {
                    if let Value::Placeholder(name) = &v.value {
                        params.push(e.clone());
                        inside_cast.push(name.clone());
                    }
                }
            }
            Expr::Value(v) => {
                if let Value::Placeholder(name) = &v.value {
                    if !inside_cast.contains(name) {
                        params.push(e.clone());
                    }
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    params
        .into_iter()
        .map(|p| Expr::IsNull(Box::new(Expr::Nested(Box::new(p)))))
        .reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::And,
            right: Box::new(b),
        })
}

/// A select that reads one relation of [`EMPTY_CATALOGUE`] and does not
/// aggregate returns no rows, whatever it computes: its expressions become
/// NULLs under the names they had, its filter `false` (holding its
/// parameters). psql's `\d+` reads row policies so, with an `= ANY` over a
/// column this catalogue holds as text, which would not plan.
fn select_nothing(q: &mut Query) -> bool {
    if !over_empty_catalogue(q) {
        return false;
    }
    let SetExpr::Select(select) = q.body.as_mut() else {
        return false;
    };
    let held = parameters_held(&**select);
    let null = || Expr::Value(Value::Null.into());
    // DataFusion needs distinct names where PostgreSQL repeats them.
    let mut names: Vec<String> = Vec::new();
    let mut distinct = |name: String| {
        let mut n = name.clone();
        let mut k = 0;
        while names.contains(&n) {
            k += 1;
            n = format!("{name}_{k}");
        }
        names.push(n.clone());
        n
    };
    for item in &mut select.projection {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let name = match e {
                    Expr::Identifier(i) => i.value.clone(),
                    Expr::CompoundIdentifier(parts) => {
                        parts.last().map_or("?column?".into(), |i| i.value.clone())
                    }
                    Expr::Function(f) => f
                        .name
                        .0
                        .last()
                        .and_then(|p| p.as_ident())
                        .map_or("?column?".into(), |i| i.value.clone()),
                    _ => "?column?".into(),
                };
                *item = SelectItem::ExprWithAlias {
                    expr: null(),
                    alias: Ident::with_quote('"', distinct(name)),
                };
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                *expr = null();
                alias.value = distinct(alias.value.clone());
            }
            _ => {}
        }
    }
    let never = Expr::Value(Value::Boolean(false).into());
    select.selection = Some(match held {
        Some(c) => Expr::BinaryOp {
            left: Box::new(never),
            op: BinaryOperator::And,
            right: Box::new(Expr::Nested(Box::new(c))),
        },
        None => never,
    });
    true
}

/// `information_schema.columns` with PostgreSQL's types. DataFusion's
/// names Arrow's (`Utf8`, `Timestamp(µs, "UTC")`), so dashboards' query
/// builders (Grafana, Metabase) took every column for text and offered no
/// time column. Read through a derived table that gives `data_type` and
/// `udt_name` as PostgreSQL does (see compat.rs's
/// `information_schema_type`). The inner reference is written quoted,
/// which this rewrite leaves alone.
const INFORMATION_SCHEMA_COLUMNS: &str = r#"SELECT table_catalog, table_schema, table_name,
    column_name, ordinal_position, column_default, is_nullable,
    information_schema_type(data_type) AS data_type, character_maximum_length,
    character_octet_length, numeric_precision, numeric_precision_radix, numeric_scale,
    datetime_precision, interval_type, table_catalog AS udt_catalog,
    'pg_catalog' AS udt_schema, information_schema_udt(data_type) AS udt_name
    FROM "information_schema"."columns""#;

/// [`INFORMATION_SCHEMA_COLUMNS`] in place of `factor`, if `factor` reads
/// `information_schema.columns` (unquoted), under the same alias (or
/// `columns`, so that `columns.x` still resolves).
fn information_schema_columns(factor: &TableFactor) -> Option<TableFactor> {
    let TableFactor::Table {
        name,
        args: None,
        alias,
        ..
    } = factor
    else {
        return None;
    };
    let parts: Vec<&Ident> = name.0.iter().filter_map(|p| p.as_ident()).collect();
    let [schema, table] = parts.as_slice() else {
        return None;
    };
    let unquoted = |i: &Ident, v: &str| i.quote_style.is_none() && i.value.eq_ignore_ascii_case(v);
    if !(unquoted(schema, "information_schema") && unquoted(table, "columns")) {
        return None;
    }
    let subquery = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(INFORMATION_SCHEMA_COLUMNS)
        .and_then(|mut p| p.parse_query())
        .ok()?;
    Some(TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(alias.clone().unwrap_or(TableAlias {
            explicit: true,
            name: Ident::new("columns"),
            columns: vec![],
            at: None,
        })),
        sample: None,
    })
}

/// Columns of PostgreSQL 16's catalogue that `pg_catalog` here lacks, all
/// NULL for every relation of this server (a NULL `text[]` here):
/// `pg_class.reloptions` (no storage options were set) and `relacl`
/// (default privileges). psql's
/// `\d+` and SQLAlchemy's `get_indexes` read them.
const MISSING_COLUMNS: &[&str] = &["reloptions", "relacl"];

/// The name of a [`MISSING_COLUMNS`] column `e` refers to, if it does.
fn missing_column(e: &Expr) -> Option<&'static str> {
    let name = match e {
        Expr::Identifier(i) => &i.value,
        Expr::CompoundIdentifier(parts) => &parts.last()?.value,
        _ => return None,
    };
    MISSING_COLUMNS
        .iter()
        .find(|c| c.eq_ignore_ascii_case(name))
        .copied()
}

/// `ARRAY(SELECT e FROM ...)` as `(SELECT array_agg(e) FROM ...)`, which
/// DataFusion plans (psql's `\d+`). The same array, except that over no
/// rows it is NULL where PostgreSQL gives `{}`: psql prints both alike.
fn array_of_subquery(expr: &Expr) -> Option<Expr> {
    let Expr::Function(f) = expr else {
        return None;
    };
    if !f.name.to_string().eq_ignore_ascii_case("array") {
        return None;
    }
    let FunctionArguments::Subquery(q) = &f.args else {
        return None;
    };
    let mut q = q.clone();
    let SetExpr::Select(select) = q.body.as_mut() else {
        return None;
    };
    let [SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }] =
        select.projection.as_mut_slice()
    else {
        return None;
    };
    let inner = std::mem::replace(e, Expr::Value(Value::Null.into()));
    *e = call("array_agg", inner);
    Some(Expr::Subquery(q))
}

/// `name(arg)`.
fn call(name: &str, arg: Expr) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// The catalogue's vectors (`int2vector`, `oidvector`) and their element
/// types. `pg_catalog` holds them as text (`'1 2'`), which `unnest` cannot
/// take apart.
const VECTOR_COLUMNS: &[(&str, &str)] = &[
    ("indkey", "SMALLINT"),
    ("indoption", "SMALLINT"),
    ("indclass", "INT"),
    ("indcollation", "INT"),
    ("proargtypes", "INT"),
];

/// `unnest(v)` and `generate_subscripts(v, 1)` of a catalogue vector
/// (SQLAlchemy's primary keys, unique constraints and indexes), rewritten
/// over the vector's text: its elements, and their subscripts from 0 (an
/// `int2vector`'s lower bound, as in PostgreSQL).
fn vector_call(expr: &Expr) -> Option<Expr> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let name = f.name.to_string().to_lowercase();
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))) = list.args.first() else {
        return None;
    };
    let column = match arg {
        Expr::Identifier(i) => i.value.to_lowercase(),
        Expr::CompoundIdentifier(parts) => parts.last()?.value.to_lowercase(),
        _ => return None,
    };
    let (_, element) = VECTOR_COLUMNS.iter().find(|(c, _)| *c == column)?;
    let text = match (name.rsplit('.').next()?, list.args.len()) {
        ("unnest", 1) => format!("unnest(CAST(string_to_array({arg}, ' ') AS {element}[]))"),
        ("generate_subscripts", 2) => {
            // The dimension stays as given (a client's parameter, often).
            let dim = &list.args[1];
            format!("unnest(range(0, array_length(string_to_array({arg}, ' '), {dim})))")
        }
        _ => return None,
    };
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

/// The one select item of a scalar subquery that reads relations without
/// grouping or aggregating (a lookup), if `q` is one.
fn lookup_item(q: &mut Query) -> Option<&mut SelectItem> {
    let SetExpr::Select(select) = q.body.as_mut() else {
        return None;
    };
    let plain = q.with.is_none()
        && !select.from.is_empty()
        && select.having.is_none()
        && select.distinct.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        && select.projection.len() == 1
        && !aggregates(&select.projection[0]);
    if !plain {
        return None;
    }
    match &select.projection[0] {
        SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. } => {
            select.projection.first_mut()
        }
        _ => None,
    }
}

/// `x [AS a]` becomes `first_value(x) [AS a]` (see [`CatalogueLookups`]).
fn one_value(item: &mut SelectItem) {
    let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = item else {
        return;
    };
    let inner = std::mem::replace(e, Expr::Value(Value::Null.into()));
    *e = call("first_value", inner);
}

/// Does a select item call an aggregate ([`AGGREGATES`])?
fn aggregates(item: &SelectItem) -> bool {
    visit_expressions(item, |e| {
        if let Expr::Function(f) = e {
            let n = f.name.to_string().to_lowercase();
            let n = n.rsplit('.').next().unwrap_or(&n);
            if AGGREGATES.contains(&n) || n == "first_value" {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })
    .is_break()
}

/// `SELECT <no aggregate> FROM <one relation of EMPTY_CATALOGUE> [WHERE
/// ...]`, without grouping, set operations or a WITH.
fn over_empty_catalogue(q: &Query) -> bool {
    let SetExpr::Select(select) = q.body.as_ref() else {
        return false;
    };
    if q.with.is_some()
        || select.from.len() != 1
        || !select.from[0].joins.is_empty()
        || select.having.is_some()
        || !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
    {
        return false;
    }
    let TableFactor::Table {
        name, args: None, ..
    } = &select.from[0].relation
    else {
        return false;
    };
    let empty = name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
        EMPTY_CATALOGUE
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&i.value))
    });
    if !empty {
        return false;
    }
    !select.projection.iter().any(aggregates)
}

struct Shield {
    changed: bool,
}

impl VisitorMut for Shield {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                let expr = match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                    _ => continue,
                };
                if matches!(expr, Expr::Subquery(_)) {
                    let inner = std::mem::replace(expr, Expr::Value(Value::Null.into()));
                    *expr = Expr::Nested(Box::new(inner));
                    self.changed = true;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_analysts_subquery_is_shielded_a_catalogue_query_is_not() {
        let sql = "SELECT k.kind, (SELECT count(*) FROM events e WHERE e.kind = k.kind) AS n, \
                   (SELECT max(ts) FROM events) FROM (SELECT DISTINCT kind FROM events) k";
        let out = shield(sql);
        assert!(
            out.contains("((SELECT count(*) FROM events e WHERE e.kind = k.kind)) AS n"),
            "{out}"
        );
        assert!(out.contains("((SELECT max(ts) FROM events))"), "{out}");
        // Nested queries too (a CTE's select list).
        let cte = "WITH t AS (SELECT a, (SELECT 1) AS one FROM x) SELECT * FROM t";
        assert!(
            shield(cte).contains("((SELECT 1)) AS one"),
            "{}",
            shield(cte)
        );
        // Nothing to shield: the very same text.
        let plain = "select kind,count(*) from events group by 1";
        assert!(matches!(shield(plain), Cow::Borrowed(s) if s == plain));
        // The catalogue's queries keep the compatibility rewrites; their
        // lookups return one value.
        let typed = "SELECT a.attname, (SELECT t.typcollation FROM pg_catalog.pg_type t \
                     WHERE t.oid = a.atttypid) AS c FROM pg_catalog.pg_attribute a";
        assert!(
            shield(typed).contains("(SELECT first_value(t.typcollation) FROM pg_catalog.pg_type t"),
            "{}",
            shield(typed)
        );
        for kept in [
            "SELECT (SELECT count(*) FROM information_schema.tables)",
            "SELECT attname FROM pg_catalog.pg_attribute",
        ] {
            assert!(matches!(shield(kept), Cow::Borrowed(_)), "{kept}");
        }
        // A lookup of a column's default (SQLAlchemy's inspector): no
        // column has one, so it selects nothing (NULL), no longer
        // correlated; an aggregate over the same is kept.
        let lookup = "SELECT a.attname, CASE WHEN a.atthasdef THEN (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) \
                      FROM pg_catalog.pg_attrdef d WHERE a.atthasdef AND d.adrelid = a.attrelid) ELSE NULL END AS \"default\", \
                      (SELECT count(*) FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid) AS n \
                      FROM pg_catalog.pg_attribute a";
        let out = shield(lookup);
        assert!(
            out.contains("THEN (SELECT NULL AS \"pg_get_expr\" FROM pg_catalog.pg_attrdef d WHERE false) ELSE NULL END AS \"default\""),
            "{out}"
        );
        assert!(
            out.contains("(SELECT count(*) FROM pg_catalog.pg_attrdef d"),
            "{out}"
        );
        // The parameters of a lookup it answers stay, with their types.
        let bound = "SELECT CASE WHEN (a.attidentity != $1::VARCHAR) THEN (SELECT json_build_object($2::VARCHAR, \
                     a.attidentity = $3::VARCHAR, $4::VARCHAR, s.seqstart) FROM pg_catalog.pg_sequence s \
                     WHERE s.seqrelid = a.attrelid AND s.seqmin > $5) END FROM pg_catalog.pg_attribute a";
        let out = shield(bound);
        assert!(
            out.contains("THEN (SELECT NULL AS \"json_build_object\" FROM pg_catalog.pg_sequence s \
                          WHERE false AND (($2::VARCHAR) IS NULL AND ($3::VARCHAR) IS NULL AND ($4::VARCHAR) IS NULL AND ($5) IS NULL)) END"),
            "{out}"
        );
        // A catalogue vector taken apart.
        let keys = "SELECT unnest(pg_catalog.pg_index.indkey) AS attnum, \
                    generate_subscripts(pg_catalog.pg_index.indkey, $1::INTEGER) AS ord FROM pg_catalog.pg_index";
        assert_eq!(
            shield(keys),
            "SELECT unnest(CAST(string_to_array(pg_catalog.pg_index.indkey, ' ') AS SMALLINT[])) AS attnum, \
             unnest(range(0, array_length(string_to_array(pg_catalog.pg_index.indkey, ' '), $1::INTEGER))) AS ord \
             FROM pg_catalog.pg_index"
        );
        // psql's \d+: columns this catalogue lacks (NULL here, named as
        // they were), an array of a subquery.
        let plus = "SELECT c.relkind, pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x \
                    from pg_catalog.unnest(tc.reloptions) x), ', '), c.relacl FROM pg_catalog.pg_class c";
        assert_eq!(
            shield(plus),
            "SELECT c.relkind, pg_catalog.array_to_string(CAST(NULL AS TEXT[]) || (SELECT array_agg('toast.' || x) \
             FROM pg_catalog.unnest(CAST(NULL AS TEXT[])) x (x)), ', '), CAST(NULL AS TEXT[]) AS relacl FROM pg_catalog.pg_class c"
        );
        // A select over an empty catalogue relation selects nothing.
        let policies = "SELECT pol.polname, CASE WHEN pol.polroles = '{0}' THEN NULL ELSE \
                        pg_catalog.array_to_string(array(select rolname from pg_catalog.pg_roles \
                        where oid = any (pol.polroles) order by 1),',') END FROM pg_catalog.pg_policy pol \
                        WHERE pol.polrelid = $1 ORDER BY 1";
        assert_eq!(
            shield(policies),
            "SELECT NULL AS \"polname\", NULL AS \"?column?\" FROM pg_catalog.pg_policy pol \
             WHERE false AND (($1) IS NULL) ORDER BY 1"
        );
        // information_schema.columns with PostgreSQL's types.
        let grafana = "SELECT column_name, data_type FROM information_schema.columns \
                       WHERE table_name = 'events' ORDER BY column_name";
        let out = shield(grafana);
        assert!(
            out.contains("information_schema_type(data_type) AS data_type")
                && out.contains("FROM \"information_schema\".\"columns\") AS columns WHERE table_name = 'events'"),
            "{out}"
        );
        // Text that does not parse goes on unchanged, for the error.
        assert!(matches!(shield("SELEC 1"), Cow::Borrowed("SELEC 1")));
    }
}
