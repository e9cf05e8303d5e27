//! The SQL views in `sql/`, compiled into the binary.

use datafusion::prelude::SessionContext;

use crate::error::DetectError;

/// A view defined by one `.sql` file (a `CREATE OR REPLACE VIEW` statement).
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every view, in dependency order.
pub const VIEWS: &[View] = &[View {
    name: "track_steps",
    sql: include_str!("../../../sql/track_steps.sql"),
}];

/// Creates every view in `ctx` (which must have the `events` table).
pub async fn register_views(ctx: &SessionContext) -> Result<(), DetectError> {
    for v in VIEWS {
        ctx.sql(v.sql)
            .await
            .map_err(|source| DetectError::View {
                view: v.name,
                source,
            })?
            .collect()
            .await
            .map_err(|source| DetectError::View {
                view: v.name,
                source,
            })?;
    }
    Ok(())
}
