//! `peervault`: see the crate documentation of the library half.

fn main() -> std::process::ExitCode {
    peervault::cli::main()
}
