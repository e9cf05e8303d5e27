//! One memory budget for the whole server, a share of it per query.
//!
//! Each query's session gets a [`CappedPool`]: it refuses to grow past the
//! query's own limit ([`Limits::memory_bytes`](crate::Limits)) and draws
//! every byte from one server-wide pool
//! ([`Limits::server_memory_bytes`](crate::Limits)), so twenty heavy
//! queries at once hold at most the server's budget, not twenty times a
//! query's.
//!
//! DataFusion counts the buffers its operators hold, not the copies they
//! make on the way: a sort whose reservation fills sorts every buffered
//! batch into new ones before it can spill (or fail), a concatenation
//! copies its inputs. Measured under twenty hostile queries at once
//! (`tests/tests/sql.rs`, `twenty_concurrent_hostile_queries_...`), the
//! process held up to 3.5 times what the pools had counted. The server's
//! budget is what the process may really use, so the pool the queries draw
//! on is [`tracked_share`] of it, the rest left for what is not counted
//! (the approach of Spark's `spark.memory.fraction`).
//!
//! Even a third was not enough: a grouped `array_agg` of per-row values
//! held 430 MB under a 64 MB pool (the partial aggregate's state, its early
//! emission when the pool refuses, the repartition's buffers and the final
//! aggregate's copy). So the budget is also held on what the process has
//! really allocated: the [`Governor`] reads the allocator's count
//! (groundtruth-alloc) every few milliseconds and, when the running queries
//! hold more than four fifths of the server's budget over what the process
//! held while none ran (the allocator's own keep takes the rest), stops
//! the one that started last, with an error that says why
//! ([`crate::QueryError::ServerMemory`]), and holds new ones back until
//! there is room.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use datafusion::common::{resources_datafusion_err, Result};
use datafusion::execution::memory_pool::{MemoryLimit, MemoryPool, MemoryReservation};

/// How much of the server's memory budget the queries' pools may count
/// together: a third (see the module's notes).
pub fn tracked_share(server_budget: usize) -> usize {
    (server_budget / 3).max(1)
}

/// A query's pool: at most `cap` bytes, all of them drawn from `shared`.
#[derive(Debug)]
pub struct CappedPool {
    shared: Arc<dyn MemoryPool>,
    cap: usize,
    used: AtomicUsize,
}

impl CappedPool {
    pub fn new(shared: Arc<dyn MemoryPool>, cap: usize) -> CappedPool {
        CappedPool {
            shared,
            cap,
            used: AtomicUsize::new(0),
        }
    }
}

impl std::fmt::Display for CappedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}(used: {}, cap: {}, server: {})",
            self.name(),
            self.used.load(Ordering::Relaxed),
            self.cap,
            self.shared
        )
    }
}

impl MemoryPool for CappedPool {
    fn name(&self) -> &str {
        "groundtruth_capped"
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.shared.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.shared.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(additional);
            if next > self.cap {
                return Err(resources_datafusion_err!(
                    "{} wants {additional} more bytes; the query holds {used} of its {} bytes",
                    reservation.consumer().name(),
                    self.cap
                ));
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => used = now,
            }
        }
        if let Err(e) = self.shared.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(resources_datafusion_err!(
                "the server's queries together hold all the memory they may ({}); try again when others have finished",
                e.strip_backtrace()
            ));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.cap)
    }
}

/// How often the [`Governor`] reads the allocator's count.
pub const GOVERNOR_TICK: Duration = Duration::from_millis(5);

/// After stopping a query, how long the [`Governor`] waits for its memory
/// to be freed before it stops another.
pub const GOVERNOR_GRACE: Duration = Duration::from_millis(25);

/// Holds the running queries together to the server's memory budget, as
/// the process's allocator counts it (see the module's notes).
///
/// Every session is watched ([`Governor::watch`]) by its pool and stop
/// flag, weakly: a session that ends leaves. A session runs while its pool
/// counts memory or its watched functions run; while none runs, what the
/// process holds is the baseline the queries are measured against.
///
/// Past its line (four fifths of the budget: see [`Governor::line`]'s
/// notes), the governor sheds load as a server does: the query
/// that started last is stopped first (the others have done more of their
/// work; what the pools count says little of what a query really holds,
/// which is why the governor exists), then the next, [`GOVERNOR_GRACE`]
/// apart (at once past a quarter over the line), until the process is back
/// within it. Meanwhile no new
/// query starts ([`Governor::room`]): the ones stopped are not replaced at
/// once by others that would grow into their place.
#[derive(Debug)]
pub struct Governor {
    budget: usize,
    /// Four fifths of the budget: the allocated bytes the queries may hold
    /// together. The allocator keeps pages of what is freed a while, and
    /// per thread: under twenty hostile queries at once resident memory was
    /// measured up to 1.5 times the allocated bytes; the budget is what the
    /// process may really use.
    line: usize,
    watched: Mutex<Vec<Watched>>,
    state: Mutex<GovernorState>,
    /// Over three quarters of the line at the last look: new queries wait
    /// ([`Governor::room`]).
    pressed: std::sync::atomic::AtomicBool,
    thread: OnceLock<()>,
}

#[derive(Debug)]
struct Watched {
    pool: Weak<dyn MemoryPool>,
    stop: Weak<crate::deadline::QueryCancel>,
}

#[derive(Debug, Default)]
struct GovernorState {
    /// What the process held when no query ran last.
    baseline: usize,
    /// No stop before then (the last stopped query frees its memory).
    quiet_until: Option<Instant>,
}

impl Governor {
    /// A governor of `budget` bytes for all running queries together.
    pub fn new(budget: usize) -> Arc<Governor> {
        Arc::new(Governor {
            budget,
            line: budget / 5 * 4,
            watched: Mutex::new(Vec::new()),
            state: Mutex::new(GovernorState {
                baseline: groundtruth_alloc::live_bytes().unwrap_or(0),
                quiet_until: None,
            }),
            pressed: std::sync::atomic::AtomicBool::new(false),
            thread: OnceLock::new(),
        })
    }

    /// Watches a session's queries (its pool and stop flag). Nothing is
    /// watched where the allocator does not count (a library's tests):
    /// the pools' limits still hold there.
    pub fn watch(
        self: &Arc<Self>,
        pool: &Arc<dyn MemoryPool>,
        stop: &Arc<crate::deadline::QueryCancel>,
    ) {
        if groundtruth_alloc::live_bytes().is_none() {
            return;
        }
        self.watch_always(pool, stop);
        self.thread.get_or_init(|| {
            let me = Arc::downgrade(self);
            let spawned = std::thread::Builder::new()
                .name("gt-query-memory".into())
                .spawn(move || loop {
                    std::thread::sleep(GOVERNOR_TICK);
                    let Some(me) = me.upgrade() else { return };
                    if let Some(live) = groundtruth_alloc::live_bytes() {
                        me.tick(live, Instant::now());
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the query memory governor; queries are held to their pools only");
            }
        });
    }

    fn watch_always(&self, pool: &Arc<dyn MemoryPool>, stop: &Arc<crate::deadline::QueryCancel>) {
        self.watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Watched {
                pool: Arc::downgrade(pool),
                stop: Arc::downgrade(stop),
            });
    }

    /// Waits until the running queries hold less than three fifths of the
    /// budget, at most until `until`; returns whether they do.
    pub async fn room(&self, until: tokio::time::Instant) -> bool {
        while self.pressed.load(Ordering::Relaxed) {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(GOVERNOR_TICK * 2).await;
        }
        true
    }

    /// One look at `live` bytes held by the process: the baseline while no
    /// query runs; otherwise, over the budget, the running query that
    /// started last is stopped. Returns what it stopped.
    pub fn tick(&self, live: usize, now: Instant) -> Option<crate::deadline::OverBudget> {
        // Oldest first: sessions are watched as they start.
        let mut running = Vec::new();
        {
            let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
            watched.retain(|w| {
                let (Some(pool), Some(stop)) = (w.pool.upgrade(), w.stop.upgrade()) else {
                    return false;
                };
                if pool.reserved() > 0 || stop.running_calls() > 0 {
                    running.push(stop);
                }
                true
            });
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if running.is_empty() {
            state.baseline = live;
            self.pressed.store(false, Ordering::Relaxed);
            return None;
        }
        let used = live.saturating_sub(state.baseline);
        self.pressed
            .store(used > self.line / 4 * 3, Ordering::Relaxed);
        // Within the grace after a stop, the next waits, unless the line
        // is passed by a quarter more.
        let waiting = state.quiet_until.is_some_and(|q| now < q) && used <= self.line / 4 * 5;
        if used <= self.line || waiting {
            return None;
        }
        let victim = running.iter().rev().find(|stop| !stop.is_cancelled())?;
        let why = crate::deadline::OverBudget {
            used_mb: used >> 20,
            budget_mb: self.budget >> 20,
        };
        tracing::warn!(
            used_mb = why.used_mb,
            budget_mb = why.budget_mb,
            baseline_mb = state.baseline >> 20,
            running = running.len(),
            "the running queries hold more memory than the server's budget; stopping the one that started last"
        );
        victim.cancel_for_memory(why);
        state.quiet_until = Some(now + GOVERNOR_GRACE);
        Some(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadline::QueryCancel;
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryConsumer};

    #[test]
    fn the_governor_stops_the_query_that_started_last_over_the_budget() {
        const MB: usize = 1 << 20;
        let g = Governor::new(100 * MB);
        let shared: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 40));
        let session = || {
            let pool: Arc<dyn MemoryPool> = Arc::new(CappedPool::new(Arc::clone(&shared), 1 << 40));
            let stop = Arc::new(QueryCancel::default());
            g.watch_always(&pool, &stop);
            (pool, stop)
        };
        let (first, first_stop) = session();
        let (last, last_stop) = session();
        let t0 = Instant::now();
        // Nothing runs: what the process holds is the baseline.
        assert_eq!(g.tick(500 * MB, t0), None);
        let rf = MemoryConsumer::new("f").register(&first);
        let rl = MemoryConsumer::new("l").register(&last);
        rf.grow(30 * MB);
        rl.grow(MB);
        // Within four fifths of the budget over the baseline, however little
        // is counted; past three fifths, new queries wait.
        assert_eq!(g.tick(560 * MB, t0), None);
        assert!(!g.pressed.load(Ordering::Relaxed));
        assert_eq!(g.tick(575 * MB, t0), None);
        assert!(g.pressed.load(Ordering::Relaxed));
        // Over it: the one that started last is stopped, and says why.
        let why = g.tick(650 * MB, t0).expect("stopped");
        assert_eq!((why.used_mb, why.budget_mb), (150, 100));
        assert!(last_stop.is_cancelled() && !first_stop.is_cancelled());
        assert_eq!(last_stop.over_budget(), Some(why));
        // It is given time to free its memory before another is stopped,
        // unless the line is passed by more than a quarter.
        assert_eq!(g.tick(595 * MB, t0 + GOVERNOR_GRACE / 2), None);
        assert!(g.tick(650 * MB, t0 + GOVERNOR_GRACE * 2).is_some());
        assert!(first_stop.is_cancelled());
        // All gone: the baseline follows the process again, new queries
        // start; a session that ended is no longer watched.
        drop((rf, rl));
        assert_eq!(g.tick(520 * MB, t0 + GOVERNOR_GRACE * 3), None);
        assert!(!g.pressed.load(Ordering::Relaxed));
        drop((first, first_stop));
        g.tick(520 * MB, t0 + GOVERNOR_GRACE * 3);
        assert_eq!(g.watched.lock().unwrap().len(), 1);
        // A new statement on the connection is not over budget.
        last_stop.reset();
        assert_eq!(last_stop.over_budget(), None);
    }

    #[test]
    fn a_query_stops_at_its_cap_and_all_stop_at_the_servers() {
        let shared: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1000));
        let a: Arc<dyn MemoryPool> = Arc::new(CappedPool::new(Arc::clone(&shared), 600));
        let b: Arc<dyn MemoryPool> = Arc::new(CappedPool::new(Arc::clone(&shared), 600));
        let ra = MemoryConsumer::new("a").register(&a);
        let rb = MemoryConsumer::new("b").register(&b);
        ra.try_grow(500).unwrap();
        // Over a's own cap.
        let e = ra.try_grow(200).unwrap_err().to_string();
        assert!(e.contains("of its 600 bytes"), "{e}");
        // b is under its cap but the server has 500 left.
        rb.try_grow(400).unwrap();
        let e = rb.try_grow(150).unwrap_err().to_string();
        assert!(e.contains("the server's queries together"), "{e}");
        assert_eq!(b.reserved(), 400, "a refused grow is not counted");
        assert_eq!(shared.reserved(), 900);
        drop(ra);
        assert_eq!(shared.reserved(), 400);
        rb.try_grow(150).unwrap();
        drop(rb);
        assert_eq!((a.reserved(), b.reserved(), shared.reserved()), (0, 0, 0));
    }
}
