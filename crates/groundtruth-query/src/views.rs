//! The analysts' views of `sql/`, compiled into the binary, in dependency
//! order: the review store's tables as typed views, then the metrics.

use datafusion::prelude::SessionContext;

use crate::error::QueryError;

pub use groundtruth_detect::views::View;

/// Every analyst view, in dependency order.
pub const VIEWS: &[View] = &[
    View {
        name: "findings",
        sql: include_str!("../../../sql/findings.sql"),
    },
    View {
        name: "cases",
        sql: include_str!("../../../sql/cases.sql"),
    },
    View {
        name: "verdicts",
        sql: include_str!("../../../sql/verdicts.sql"),
    },
    View {
        name: "flagged_accounts",
        sql: include_str!("../../../sql/flagged_accounts.sql"),
    },
    View {
        name: "account_days",
        sql: include_str!("../../../sql/account_days.sql"),
    },
    View {
        name: "activity_daily",
        sql: include_str!("../../../sql/activity_daily.sql"),
    },
    View {
        name: "worker_burden",
        sql: include_str!("../../../sql/worker_burden.sql"),
    },
    View {
        name: "app_overlap",
        sql: include_str!("../../../sql/app_overlap.sql"),
    },
    View {
        name: "app_health",
        sql: include_str!("../../../sql/app_health.sql"),
    },
];

/// Creates every analyst view in `ctx` (which has the scoped tables).
pub async fn register(ctx: &SessionContext) -> Result<(), QueryError> {
    for v in VIEWS {
        let fail = |e: datafusion::error::DataFusionError| {
            QueryError::Internal(format!(
                "cannot create view `{}` from sql/{}.sql: {e}",
                v.name, v.name
            ))
        };
        ctx.sql(v.sql)
            .await
            .map_err(fail)?
            .collect()
            .await
            .map_err(fail)?;
    }
    Ok(())
}
