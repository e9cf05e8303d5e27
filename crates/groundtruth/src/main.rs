//! The `groundtruth` binary: everything lives in the library crates.

/// jemalloc instead of the system allocator: the live service frees a
/// window's batches at every close, and glibc's malloc kept much of that
/// freed memory (resident memory rose ~250 MB over a 20M-event run);
/// jemalloc returns it (docs/benchmarks.md, "Resident memory").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    groundtruth_cli::main()
}
