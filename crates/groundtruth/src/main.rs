//! The `groundtruth` binary: everything lives in the library crates.

fn main() -> std::process::ExitCode {
    groundtruth_cli::main()
}
