//! The runtime the service runs on: how many threads, and how they share
//! the work (`worker_threads`, `runtime`).

use super::{ConfigError, Layer, MAX_WORKER_THREADS, Names, RuntimeModel, env};

/// The threads that run the service's async work (`worker_threads`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RuntimeThreads {
    /// One worker per core, the default (`worker_threads = 0`).
    #[default]
    PerCore,
    /// All of it on the one thread that started the service
    /// (`worker_threads = 1`): no task moves between threads, and a
    /// connection's wake-ups cost no cross-core signal. The better choice
    /// where the service shares a few cores with other busy processes.
    One,
    /// This many workers, tasks stolen between them (2 to
    /// [`MAX_WORKER_THREADS`]).
    Workers(usize),
    /// This many threads (0: one per core), each running a single-threaded
    /// runtime of its own with its own listening socket and Redis read
    /// connection (`runtime = "sharded"`): the requests of a connection,
    /// and their reads, never leave the thread that accepted it.
    Sharded(usize),
}

impl RuntimeThreads {
    /// The `worker_threads` value that gives this.
    pub fn count(self) -> usize {
        match self {
            RuntimeThreads::PerCore => 0,
            RuntimeThreads::One => 1,
            RuntimeThreads::Workers(n) | RuntimeThreads::Sharded(n) => n,
        }
    }

    /// The `runtime` value that gives this.
    pub fn model(self) -> RuntimeModel {
        match self {
            RuntimeThreads::Sharded(_) => RuntimeModel::Sharded,
            _ => RuntimeModel::WorkStealing,
        }
    }

    /// How many single-threaded runtimes serve requests: the shards, or 1
    /// for every other way (whose one runtime may have many threads).
    pub fn shards(self) -> usize {
        match self {
            RuntimeThreads::Sharded(0) => {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            }
            RuntimeThreads::Sharded(n) => n,
            _ => 1,
        }
    }

    /// The tokio runtime builder that runs the service this way.
    pub fn builder(self) -> tokio::runtime::Builder {
        match self {
            // A shard's runtime: this thread's; the others start with the
            // service.
            RuntimeThreads::One | RuntimeThreads::Sharded(_) => {
                tokio::runtime::Builder::new_current_thread()
            }
            RuntimeThreads::PerCore => tokio::runtime::Builder::new_multi_thread(),
            RuntimeThreads::Workers(n) => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(n);
                b
            }
        }
    }
}

/// The runtime the sources ask for: the flag over the environment over
/// the file, for the model and the threads each.
pub(super) fn resolve(
    flags: &Layer,
    env: &Layer,
    file: &Layer,
) -> Result<RuntimeThreads, ConfigError> {
    let model = flags
        .runtime
        .or(env.runtime)
        .or(file.runtime)
        .unwrap_or_default();
    Ok(
        match (
            model,
            flags
                .worker_threads
                .or(env.worker_threads)
                .or(file.worker_threads),
        ) {
            (_, Some(n)) if n > MAX_WORKER_THREADS => {
                return Err(
                    Names::new("--worker-threads", env::WORKER_THREADS, "worker_threads").invalid(
                        n,
                        &format!(
                            "0 (one per core) or a number of threads up to {MAX_WORKER_THREADS}"
                        ),
                    ),
                );
            }
            (_, Some(1)) => RuntimeThreads::One,
            (RuntimeModel::WorkStealing, None | Some(0)) => RuntimeThreads::PerCore,
            (RuntimeModel::WorkStealing, Some(n)) => RuntimeThreads::Workers(n),
            (RuntimeModel::Sharded, n) => RuntimeThreads::Sharded(n.unwrap_or(0)),
        },
    )
}
