//! The `groundtruth` binary: everything lives in the library crates.

/// jemalloc instead of the system allocator: the live service frees a
/// window's batches at every close, and glibc's malloc kept much of that
/// freed memory (resident memory rose ~250 MB over a 20M-event run);
/// jemalloc returns it (docs/benchmarks.md, "Resident memory"). Counted, so
/// that the query service holds its running queries to the server's memory
/// budget (groundtruth-alloc).
#[global_allocator]
static ALLOCATOR: groundtruth_alloc::Counting<tikv_jemallocator::Jemalloc> =
    groundtruth_alloc::Counting::new(tikv_jemallocator::Jemalloc);

fn main() -> std::process::ExitCode {
    groundtruth_cli::main()
}
