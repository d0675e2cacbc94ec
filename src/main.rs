//! The `loyaltyd` binary: command-line parsing and dispatch live in `loyaltyd::cli`.

fn main() {
    std::process::exit(loyaltyd::cli::main());
}
