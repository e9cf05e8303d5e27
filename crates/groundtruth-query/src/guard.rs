//! The guard: what a query text must be before it is planned.
//!
//! * at most [`Limits::max_sql_bytes`](crate::Limits) of text, at most
//!   `max_tokens` tokens and `max_depth` nested parentheses (a deeply
//!   nested expression would otherwise exhaust the planner's stack);
//! * exactly one statement, and that a query: `SELECT`, `WITH`, `VALUES`,
//!   set operations, `EXPLAIN` of a query; no `SELECT ... INTO`, no DML
//!   inside a CTE;
//! * then planned with DataFusion's read-only `SQLOptions` (no DDL, DML or
//!   statements anywhere in the plan), in a session whose only tables are
//!   the scoped ones: there is no file-reading function and no URL table,
//!   so `read_csv('/etc/passwd')` or `SELECT * FROM '/etc/passwd'` name
//!   nothing that exists.

use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    Expr, Query, Select, SetExpr, Statement, TableFactor, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::QueryError;
use crate::Limits;

/// Checks `sql` against the limits and the statement rules.
pub fn check(sql: &str, limits: &Limits) -> Result<(), QueryError> {
    check_text(sql, limits)?;
    let dialect = PostgreSqlDialect {};
    let statements = DFParser::parse_sql_with_dialect(sql, &dialect)
        .map_err(|e| QueryError::Invalid(format!("cannot parse the query: {e}")))?;
    if statements.len() != 1 {
        return Err(QueryError::Refused(format!(
            "send exactly one statement per query; this text has {}",
            statements.len()
        )));
    }
    if let DfStatement::Statement(st) = &statements[0] {
        check_shape(st, limits)?;
    }
    check_statement(&statements[0])
}

/// The text limits, then (for the wire protocol, whose own parser reads
/// the text next) the shape of every statement the text parses into: a
/// text that does not parse here is left to that parser's error.
pub fn check_wire_text(sql: &str, limits: &Limits) -> Result<(), QueryError> {
    check_text(sql, limits)?;
    if let Ok(statements) = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {}) {
        for s in &statements {
            if let DfStatement::Statement(st) = s {
                check_shape(st, limits)?;
            }
        }
    }
    Ok(())
}

/// Why a statement's shape is refused.
enum Shape {
    Deep,
    Selects,
    Tables,
}

/// Counts, while walking a statement, what makes planning deep or wide.
struct ShapeCounter {
    depth: usize,
    selects: usize,
    tables: usize,
    max_depth: usize,
    max_parts: usize,
}

impl Visitor for ShapeCounter {
    type Break = Shape;

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<Shape> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return ControlFlow::Break(Shape::Deep);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<Shape> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, _: &Select) -> ControlFlow<Shape> {
        self.selects += 1;
        if self.selects > self.max_parts {
            return ControlFlow::Break(Shape::Selects);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, _: &TableFactor) -> ControlFlow<Shape> {
        self.tables += 1;
        if self.tables > self.max_parts {
            return ControlFlow::Break(Shape::Tables);
        }
        ControlFlow::Continue(())
    }
}

/// An expression nested deeper than [`Limits::max_expr_depth`] (`1+1+...`
/// with thousands of terms nests as deep as it is long, and every planner
/// stage recurses over it), or more than [`Limits::max_query_parts`]
/// `SELECT`s or tables in one statement, is refused before planning. The
/// walk stops at the limit, so it is itself bounded.
pub fn check_shape(st: &Statement, limits: &Limits) -> Result<(), QueryError> {
    let mut counter = ShapeCounter {
        depth: 0,
        selects: 0,
        tables: 0,
        max_depth: limits.max_expr_depth,
        max_parts: limits.max_query_parts,
    };
    match st.visit(&mut counter) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(Shape::Deep) => Err(QueryError::Refused(format!(
            "an expression in the query nests more than {} operators or calls deep; split it (a CTE, or fewer terms per expression)",
            limits.max_expr_depth
        ))),
        ControlFlow::Break(Shape::Selects) => Err(QueryError::Refused(format!(
            "the query has more than {} SELECTs; at most {} are accepted",
            limits.max_query_parts, limits.max_query_parts
        ))),
        ControlFlow::Break(Shape::Tables) => Err(QueryError::Refused(format!(
            "the query names more than {} tables; at most {} are accepted",
            limits.max_query_parts, limits.max_query_parts
        ))),
    }
}

/// The limits on the text alone (length, tokens, nesting), checked before
/// anything parses it.
pub fn check_text(sql: &str, limits: &Limits) -> Result<(), QueryError> {
    if sql.len() > limits.max_sql_bytes {
        return Err(QueryError::TooLong {
            bytes: sql.len(),
            max: limits.max_sql_bytes,
        });
    }
    if sql.trim().is_empty() {
        return Err(QueryError::Invalid("the query is empty".into()));
    }
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| QueryError::Invalid(format!("cannot read the query: {e}")))?;
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut count = 0usize;
    for t in &tokens {
        match t {
            Token::Whitespace(_) => continue,
            Token::LParen | Token::LBracket => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
            _ => {}
        }
        count += 1;
    }
    if count > limits.max_tokens {
        return Err(QueryError::Refused(format!(
            "the query has {count} tokens; at most {} are accepted",
            limits.max_tokens
        )));
    }
    if deepest > limits.max_depth {
        return Err(QueryError::Refused(format!(
            "the query nests parentheses {deepest} deep; at most {} are accepted",
            limits.max_depth
        )));
    }
    Ok(())
}

/// One parsed SQL statement (as the wire protocol parses it): a query,
/// or `EXPLAIN` of one.
pub fn check_sql_statement(st: &Statement) -> Result<(), QueryError> {
    match st {
        Statement::Query(q) => check_query(q),
        Statement::Explain { statement, .. } => match statement.as_ref() {
            Statement::Query(q) => check_query(q),
            other => Err(refuse(other)),
        },
        other => Err(refuse(other)),
    }
}

fn check_statement(s: &DfStatement) -> Result<(), QueryError> {
    match s {
        DfStatement::Statement(st) => check_sql_statement(st),
        DfStatement::Explain(e) => check_statement(&e.statement),
        DfStatement::CreateExternalTable(_) => Err(QueryError::Refused(
            "CREATE EXTERNAL TABLE reads files: only queries over the tables given are allowed".into(),
        )),
        DfStatement::CopyTo(_) => Err(QueryError::Refused(
            "COPY writes files: only queries are allowed (download results as CSV or Arrow instead)".into(),
        )),
        DfStatement::Reset(_) => Err(QueryError::Refused(
            "RESET changes settings: only queries are allowed".into(),
        )),
    }
}

/// A query (the body of a query statement, a CTE or a cursor).
pub fn check_query(q: &Query) -> Result<(), QueryError> {
    if let Some(with) = &q.with {
        for cte in &with.cte_tables {
            check_query(&cte.query)?;
        }
    }
    check_set_expr(&q.body)
}

fn check_set_expr(e: &SetExpr) -> Result<(), QueryError> {
    match e {
        SetExpr::Select(s) if s.into.is_some() => Err(QueryError::Refused(
            "SELECT ... INTO creates a table: only reading is allowed".into(),
        )),
        SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => Ok(()),
        SetExpr::Query(q) => check_query(q),
        SetExpr::SetOperation { left, right, .. } => {
            check_set_expr(left)?;
            check_set_expr(right)
        }
        SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => Err(
            QueryError::Refused("the query changes data: only reading is allowed".into()),
        ),
    }
}

/// The refusal of a statement that is not a query, naming its kind.
fn refuse(s: &Statement) -> QueryError {
    let text = s.to_string();
    let kind: String = text
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase();
    QueryError::Refused(format!(
        "{kind} is not a query: the analysts' SQL only reads (SELECT, WITH, VALUES, EXPLAIN)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn queries_pass() {
        for q in [
            "SELECT 1",
            "select app_id, count(*) from events group by 1",
            "WITH a AS (SELECT 1 AS x) SELECT * FROM a UNION ALL SELECT 2",
            "VALUES (1), (2)",
            "EXPLAIN SELECT * FROM events",
            "SELECT * FROM (SELECT 1) t WHERE 1 IN (SELECT 1)",
        ] {
            check(q, &limits()).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        for (q, needle) in [
            ("DROP TABLE events", "DROP TABLE"),
            ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("INSERT INTO events VALUES (1)", "INSERT INTO"),
            ("DELETE FROM events", "DELETE FROM"),
            ("UPDATE events SET kind = 'x'", "UPDATE"),
            ("SET datafusion.execution.target_partitions = 1", "SET"),
            (
                "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
                "EXTERNAL",
            ),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("SELECT 1; SELECT 2", "exactly one"),
            ("SELECT * INTO t FROM events", "INTO"),
            ("EXPLAIN DROP TABLE events", "DROP"),
            ("   ", "empty"),
            ("SELEC 1", "parse"),
        ] {
            let e = check(q, &limits()).unwrap_err().to_string();
            assert!(e.contains(needle), "{q}: {e}");
        }
    }

    #[test]
    fn size_tokens_and_depth_are_bounded() {
        let l = limits();
        let long = format!("SELECT '{}'", "x".repeat(l.max_sql_bytes));
        assert!(matches!(check(&long, &l), Err(QueryError::TooLong { .. })));
        let many = format!("SELECT {}", vec!["1"; l.max_tokens].join("+"));
        assert!(check(&many, &l).unwrap_err().to_string().contains("tokens"));
        let deep = format!("SELECT {}1{}", "(".repeat(200), ")".repeat(200));
        assert!(check(&deep, &l).unwrap_err().to_string().contains("nests"));
    }

    #[test]
    fn long_operator_chains_and_wide_queries_are_refused_before_planning() {
        let l = limits();
        let chain = |sep: &str, term: &str, n: usize| vec![term; n].join(sep);
        for q in [
            format!("SELECT {}", chain("+", "1", 2000)),
            format!("SELECT {}", chain("||", "'a'", 3300)),
            format!("SELECT 1 WHERE {}", chain(" AND ", "true", 3300)),
            format!("SELECT 1 WHERE {}", chain(" OR ", "1=1", 1000)),
        ] {
            let e = check(&q, &l).unwrap_err().to_string();
            assert!(e.contains("nests more than"), "{e}");
            let e = check_wire_text(&q, &l).unwrap_err().to_string();
            assert!(e.contains("nests more than"), "{e}");
        }
        let unions = chain(" UNION ALL ", "SELECT 1", 600);
        assert!(check(&unions, &l)
            .unwrap_err()
            .to_string()
            .contains("SELECTs"));
        let joins = format!(
            "SELECT 1 FROM events{}",
            " JOIN events USING (event_id)".repeat(400)
        );
        assert!(check(&joins, &l)
            .unwrap_err()
            .to_string()
            .contains("tables"));
        // Within the limits, the same shapes pass.
        check(&format!("SELECT {}", chain("+", "1", 100)), &l).unwrap();
        check(&chain(" UNION ALL ", "SELECT 1", 50), &l).unwrap();
        // Text the wire's own parser may read differently is left to it.
        check_wire_text("SET client_encoding TO 'UTF8'", &l).unwrap();
    }
}
