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
pub const VIEWS: &[View] = &[
    View {
        name: "track_steps",
        sql: include_str!("../../../sql/track_steps.sql"),
    },
    View {
        name: "sessions",
        sql: include_str!("../../../sql/sessions.sql"),
    },
    View {
        name: "session_chain",
        sql: include_str!("../../../sql/session_chain.sql"),
    },
    View {
        name: "device_profile",
        sql: include_str!("../../../sql/device_profile.sql"),
    },
    View {
        name: "check_ins",
        sql: include_str!("../../../sql/check_ins.sql"),
    },
    View {
        name: "registrations",
        sql: include_str!("../../../sql/registrations.sql"),
    },
    View {
        name: "record_ops",
        sql: include_str!("../../../sql/record_ops.sql"),
    },
    View {
        name: "record_churn_daily",
        sql: include_str!("../../../sql/record_churn_daily.sql"),
    },
    View {
        name: "reports",
        sql: include_str!("../../../sql/reports.sql"),
    },
    View {
        name: "reports_daily",
        sql: include_str!("../../../sql/reports_daily.sql"),
    },
];

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
