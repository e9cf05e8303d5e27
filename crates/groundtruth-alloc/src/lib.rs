//! The bytes the process holds, counted as they are allocated.
//!
//! DataFusion's memory pools count what its operators say they hold, not
//! the copies they make on the way (a grouped `array_agg` under a 64 MB
//! pool was measured holding 430 MB). To hold every running query to the
//! server's budget, the query service needs what is really allocated:
//! [`Counting`] wraps the process's global allocator (the binary's
//! jemalloc) and keeps a running total that [`live_bytes`] reads.
//!
//! Each thread adds its allocations to a counter of its own and moves them
//! to the shared total once they pass [`FLUSH_BYTES`] either way, so the
//! threads do not contend on one cache line at every allocation; the total
//! is exact to within that much per thread. A thread that ends takes its
//! unflushed remainder with it; readers compare totals over seconds, not
//! over the process's life.
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: groundtruth_alloc::Counting<tikv_jemallocator::Jemalloc> =
//!     groundtruth_alloc::Counting::new(tikv_jemallocator::Jemalloc);
//! ```

// The one crate with `unsafe`: a global allocator is an unsafe trait. Each
// call is passed to the wrapped allocator unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// How far a thread's own count may drift before it is added to the total.
pub const FLUSH_BYTES: isize = 256 << 10;

static TOTAL: AtomicIsize = AtomicIsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Const-initialised with no destructor: reading it never allocates
    /// and never fails, even while the thread ends.
    static MINE: Cell<isize> = const { Cell::new(0) };
}

/// The bytes the process's allocator holds now (to within
/// [`FLUSH_BYTES`] per thread), or `None` when the global allocator is not
/// a [`Counting`] one (a library's unit tests).
pub fn live_bytes() -> Option<usize> {
    INSTALLED
        .load(Ordering::Relaxed)
        .then(|| TOTAL.load(Ordering::Relaxed).max(0) as usize)
}

/// A global allocator that counts what `A` holds.
#[derive(Debug, Default)]
pub struct Counting<A>(A);

impl<A> Counting<A> {
    pub const fn new(inner: A) -> Counting<A> {
        Counting(inner)
    }
}

fn note(delta: isize) {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    let flushed = MINE.try_with(|mine| {
        let now = mine.get() + delta;
        if now.abs() >= FLUSH_BYTES {
            TOTAL.fetch_add(now, Ordering::Relaxed);
            mine.set(0);
        } else {
            mine.set(now);
        }
    });
    if flushed.is_err() {
        TOTAL.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed to `A` unchanged; the counting only reads
// the sizes.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.dealloc(ptr, layout) };
        note(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static ALLOCATOR: Counting<std::alloc::System> = Counting::new(std::alloc::System);

    #[test]
    fn counts_what_is_held_and_gives_it_back() {
        // Other tests' threads allocate too: measure on a big block, much
        // larger than what they can do meanwhile.
        let before = live_bytes().expect("installed");
        let block = vec![1u8; 64 << 20];
        let during = live_bytes().unwrap();
        assert!(
            during >= before + (60 << 20),
            "{before} then {during} with 64 MB held"
        );
        let grown = {
            let mut v = block;
            v.reserve_exact(64 << 20);
            let grown = live_bytes().unwrap();
            drop(v);
            grown
        };
        assert!(grown >= before + (120 << 20), "{before} then {grown}");
        let after = live_bytes().unwrap();
        assert!(
            after < before + (8 << 20),
            "{before} then {after} after the drop"
        );
    }
}
