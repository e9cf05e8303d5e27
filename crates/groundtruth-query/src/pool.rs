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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryConsumer};

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
