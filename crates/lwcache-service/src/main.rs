//! The `lwcache` binary: `serve`, `demo` and `seed`. Everything is in the
//! library and in `cli`; this only runs it.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
