//! The `lwcache` binary: `serve`, `demo` and `seed`. Everything is in the
//! library and in `cli`; this only runs it.

mod cli;

/// mimalloc: the request path allocates and frees on both runtime threads,
/// where glibc's arenas contend (`docs/benchmarks/`: the HTTP rows).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
