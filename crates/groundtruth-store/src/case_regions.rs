//! A case's regions (`case_regions`): the filter that keeps a scoped
//! caller to cases in its regions, and keeping the rows in step with the
//! case.

use sqlx::AnyConnection;

use crate::access::Scope;
use crate::db::Params;
use crate::error::{db, StoreError};

/// ` AND <the case in column `col` is in scope>` (nothing when nationwide).
pub(crate) fn visible(col: &str, scope: &Scope, p: &mut Params) -> String {
    if scope.is_nationwide() {
        return String::new();
    }
    let like = p.text(scope.like_pattern());
    format!(" AND EXISTS (SELECT 1 FROM case_regions r WHERE r.case_id = {col} AND r.region LIKE {like})")
}

/// Copies a case's status and score into its `case_regions` rows (the
/// scoped queue walks them); called after every change of a case.
pub(crate) async fn sync_case_regions(
    conn: &mut AnyConnection,
    case_id: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE case_regions SET status = (SELECT c.status FROM cases c WHERE c.case_id = $1), \
         score = (SELECT c.score FROM cases c WHERE c.case_id = $1) WHERE case_id = $1",
    )
    .bind(case_id)
    .execute(conn)
    .await
    .map_err(db("keep a case's regions in step"))?;
    Ok(())
}
