//! The time limit inside the plan.
//!
//! A timer around a query's stream is not enough: an operator that makes
//! many batches from little input (a cross join feeding an aggregate) loops
//! inside one poll and never gives the timer a turn. [`DeadlineRule`] (the
//! last physical optimizer rule of an analyst's session) puts a
//! [`DeadlineExec`] above every join, unnest, generator and recursive query; it passes
//! batches through and fails the query with [`TimedOut`] once the time
//! limit has passed since the query started, so the loop above it ends.
//! For the same reason it is where a cancel reaches such a loop: a session
//! carrying a [`QueryCancel`] (in its options, [`StopFlag`]) fails with
//! [`Cancelled`] at the next batch once the flag is set.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::common::Result;
use datafusion::config::{ConfigEntry, ConfigExtension, ConfigOptions, ExtensionOptions};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

use crate::gate::{Check, Gate, GateExec};

/// The error a query gets when its time is up.
#[derive(Debug, thiserror::Error)]
#[error("the query ran longer than {seconds} s")]
pub struct TimedOut {
    pub seconds: f64,
}

/// The error a query gets when its client cancelled it.
#[derive(Debug, thiserror::Error)]
#[error("canceling statement due to user request")]
pub struct Cancelled;

/// A session's stop flag: set by whoever stops the statement running (the
/// wire protocol's CancelRequest, the statement's time limit, its client
/// going away), cleared when the next one starts, read by every
/// [`DeadlineExec`] of the session's plans, by every watched function call
/// ([`crate::watch`]) and awaited by whatever streams the statement's rows
/// ([`QueryCancel::cancelled`]). It lives in the session's options as
/// [`StopFlag`] (a function sees no more of its session than
/// those); [`stop_flag`] reads it.
#[derive(Debug)]
pub struct QueryCancel {
    flag: tokio::sync::watch::Sender<bool>,
    /// Watched function calls running now ([`QueryCancel::busy`]).
    calls: AtomicUsize,
    /// Set when the server stopped the statement for its memory
    /// ([`crate::pool::Governor`]): what it measured.
    over_budget: std::sync::Mutex<Option<OverBudget>>,
}

/// What the server measured when it stopped a statement for memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    /// MB the running queries held together.
    pub used_mb: usize,
    /// MB they may hold together.
    pub budget_mb: usize,
}

impl Default for QueryCancel {
    fn default() -> Self {
        QueryCancel {
            flag: tokio::sync::watch::Sender::new(false),
            calls: AtomicUsize::new(0),
            over_budget: std::sync::Mutex::new(None),
        }
    }
}

/// A watched function call under way; counted until dropped.
#[derive(Debug)]
pub struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl QueryCancel {
    pub fn cancel(&self) {
        self.flag.send_replace(true);
    }

    /// Stops the statement because the server's queries together hold
    /// more memory than they may; [`QueryCancel::over_budget`] says so.
    pub fn cancel_for_memory(&self, why: OverBudget) {
        *self
            .over_budget
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
        self.cancel();
    }

    /// Whether, and why, the server stopped the statement for memory.
    pub fn over_budget(&self) -> Option<OverBudget> {
        *self
            .over_budget
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new statement starts: earlier cancels do not reach it. Call
    /// [`QueryCancel::settle`] first, so that a stopped statement's calls
    /// see the flag before it is cleared.
    pub fn reset(&self) {
        *self
            .over_budget
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.flag.send_replace(false);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.flag.borrow()
    }

    /// Counts a function call as running until the guard is dropped.
    pub fn busy(&self) -> Busy<'_> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Busy(&self.calls)
    }

    /// Function calls running now.
    pub fn running_calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Waits, at most `longest`, until no function call of the session is
    /// running: after a stop, until the stopped calls have seen the flag
    /// (each ends within one slice of its rows). Returns whether they have.
    pub async fn settle(&self, longest: Duration) -> bool {
        let until = Instant::now() + longest;
        while self.running_calls() > 0 {
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Resolves once the flag is set (at once if it is).
    pub fn cancelled(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.flag.subscribe();
        async move {
            if rx.wait_for(|&c| c).await.is_err() {
                // The flag is gone with its session: nothing can cancel now.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Sets a stop flag when dropped: whatever way a statement ends (answered,
/// failed, timed out, its caller gone), its calls still running stop.
#[derive(Debug)]
pub struct StopOnDrop(pub Arc<QueryCancel>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Wraps the operators that can run long on little input.
#[derive(Debug)]
pub struct DeadlineRule {
    pub timeout: Duration,
}

fn runs_long(plan: &dyn ExecutionPlan) -> bool {
    let name = plan.name();
    name.contains("Join") || matches!(name, "UnnestExec" | "LazyMemoryExec" | "RecursiveQueryExec")
}

impl PhysicalOptimizerRule for DeadlineRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let deadline = Arc::new(Deadline {
            timeout: self.timeout,
        });
        groundtruth_sql::rewrite_nodes(plan, |node| {
            Ok(runs_long(node.as_ref()).then(|| {
                Arc::new(DeadlineExec::new(Arc::clone(node), Arc::clone(&deadline)))
                    as Arc<dyn ExecutionPlan>
            }))
        })
    }

    fn name(&self) -> &str {
        "groundtruth_deadline"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Passes its input through until the deadline (counted from `execute`).
pub type DeadlineExec = GateExec<Deadline>;

/// The check of a [`DeadlineExec`]: the session's cancel flag, then the
/// time limit.
#[derive(Debug)]
pub struct Deadline {
    timeout: Duration,
}

impl Gate for Deadline {
    const NAME: &'static str = "DeadlineExec";

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeadlineExec: {} s", self.timeout.as_secs_f64())
    }

    fn open(&self, _partition: usize, context: &Arc<TaskContext>) -> Check {
        let deadline = Instant::now() + self.timeout;
        let seconds = self.timeout.as_secs_f64();
        let cancel = stop_flag(context.session_config().options());
        Box::new(move |batch| {
            if cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
                Err(DataFusionError::External(Box::new(Cancelled)))
            } else if Instant::now() > deadline {
                Err(DataFusionError::External(Box::new(TimedOut { seconds })))
            } else {
                Ok(batch)
            }
        })
    }
}

/// The stop flag of a session's statements, as its options carry it to
/// functions. Nothing in it can be set or shown.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(pub Option<Arc<QueryCancel>>);

impl ConfigExtension for StopFlag {
    const PREFIX: &'static str = "groundtruth_stop";
}

impl ExtensionOptions for StopFlag {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        // The same flag: a stop must reach every copy of the options.
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, _value: &str) -> Result<()> {
        Err(DataFusionError::Configuration(format!(
            "{}.{key} is not a setting",
            Self::PREFIX
        )))
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        Vec::new()
    }
}

/// The stop flag in `options`, if the session has one.
pub fn stop_flag(options: &ConfigOptions) -> Option<Arc<QueryCancel>> {
    options.extensions.get::<StopFlag>()?.0.clone()
}
