//! Single-key reads batched while the server is busy (standalone only, when
//! `RedisConfig::batch_reads` is on).
//!
//! A read that finds no other read in flight is sent at once, as a `GET`.
//! One that finds reads in flight joins a queue; a task sends everything
//! queued as one `MGET` as soon as one of its [`IN_FLIGHT`] batches on
//! their way has been answered, so under load one command, one write and
//! one reply serve many reads, and a lone read waits for nothing. A queued
//! read has no timer of its own: its batch is bounded by the earliest
//! deadline among its reads, so each is answered by its own.
//!
//! A read's command is always sent after the read began and answered before
//! it ends, so the value it returns is the key's value at an instant within
//! the read: batching keeps every read linearizable. Reads are never joined
//! to a command already sent.
//!
//! With `RedisConfig::read_connection_per_thread`, each thread that reads
//! gets a connection and a batching task of its own, made on its runtime
//! the first time it reads: in a process that runs one single-threaded
//! runtime per thread, a read, its batch and its connection's I/O then all
//! run on the thread that answers the request, and no read wakes another
//! thread. Connections are per thread, not per read, so the reads of one
//! thread still share batches; every connection talks to the same server,
//! so a read still sees every write acknowledged before it began.
//!
//! On a Cluster, reads are not batched: an `MGET` must stay in one slot,
//! and one slow node would hold up the reads of every world behind it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use lwcache_core::ports::CacheError;
use lwcache_domain::CacheKey;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::config::RedisConfig;
use crate::link::Link;
use crate::store::{Conn, Failure, call_on, command, command_of};

/// The most reads one `MGET` serves; more wait for the next one.
const MAX_BATCH: usize = 256;

/// How many batches may be on their way at once: with one, a batch waits
/// for the whole round trip of the one before it; with two, the next is
/// sent while the last is answered. The library's hit loop at 64 tasks
/// (`examples/hit_path.rs` in lwcache-bench) read 1.3–1.5× as fast as with
/// one, and 1.7–2× as fast as with 64, which batches little; the service's
/// HTTP reads moved within the noise.
const IN_FLIGHT: usize = 2;

type Reply = Result<Option<Vec<u8>>, CacheError>;

/// A queued read: its key, where its value goes, and by when.
struct Waiter {
    key: CacheKey,
    reply: oneshot::Sender<Reply>,
    /// The read's start plus the store's timeout: its batch is sent only
    /// before it and given only until the earliest of its reads'. So every
    /// read is answered by its own deadline with no timer of its own (one
    /// per batch instead of one per read).
    deadline: Instant,
}

/// The batcher of a store and its clones.
#[derive(Clone)]
pub(crate) struct Gets(Arc<Shared>);

struct Shared {
    timeout: Duration,
    /// The lane over the store's own connection.
    main: Lane,
    /// With a connection per reading thread, how to open them and the
    /// lanes opened so far.
    per_thread: Option<PerThread>,
}

/// The lanes of a store with a read connection per thread: each thread
/// finds its own through [`LANES`]; the store keeps them alive.
struct PerThread {
    /// Which store's lanes, in [`LANES`].
    id: u64,
    config: RedisConfig,
    lanes: Mutex<Vec<Arc<Lane>>>,
}

impl PerThread {
    /// Opens this thread's lane on `runtime`, in place of any lane it had
    /// on another runtime (whose connection went, or goes, with it).
    fn open(&self, runtime: &tokio::runtime::Handle) -> Arc<Lane> {
        let lane = Arc::new(Lane::new(Link::in_background(self.config.clone(), runtime)));
        let before = LANES.with_borrow_mut(|lanes| {
            lanes.retain(|mine| mine.lane.strong_count() > 0);
            let before = lanes
                .iter()
                .position(|mine| mine.store == self.id)
                .map(|at| lanes.swap_remove(at).lane);
            lanes.push(ThreadLane {
                store: self.id,
                runtime: runtime.id(),
                lane: Arc::downgrade(&lane),
            });
            before
        });
        let mut lanes = self
            .lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(before) = before.and_then(|weak| weak.upgrade()) {
            lanes.retain(|kept| !Arc::ptr_eq(kept, &before));
        }
        lanes.push(Arc::clone(&lane));
        lane
    }
}

/// The lane a read goes through: the store's own, borrowed (no count of
/// references moved on the hot path), or this thread's.
enum LaneRef<'a> {
    Main(&'a Lane),
    Own(Arc<Lane>),
}

impl std::ops::Deref for LaneRef<'_> {
    type Target = Lane;

    fn deref(&self) -> &Lane {
        match self {
            LaneRef::Main(lane) => lane,
            LaneRef::Own(lane) => lane,
        }
    }
}

/// A thread's lane of one store, on the runtime it was made on.
struct ThreadLane {
    store: u64,
    runtime: tokio::runtime::Id,
    lane: Weak<Lane>,
}

/// One connection's batching: its reads in flight and its batching task.
struct Lane {
    link: Link,
    /// Reads sent at once and not yet answered, plus queued reads.
    busy: AtomicUsize,
    /// The queue of the task that sends the batches, made on the first read
    /// that queues, and again if that task's runtime has gone.
    queue: RwLock<Option<mpsc::UnboundedSender<Waiter>>>,
}

thread_local! {
    /// This thread's lanes, one per store with a connection per thread.
    static LANES: RefCell<Vec<ThreadLane>> = const { RefCell::new(Vec::new()) };
}

/// The ids of stores in [`LANES`].
static NEXT_STORE: AtomicU64 = AtomicU64::new(0);

/// Counts a read as busy until it is dropped.
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Lane {
    fn new(link: Link) -> Self {
        Self {
            link,
            busy: AtomicUsize::new(0),
            queue: RwLock::new(None),
        }
    }
}

impl Gets {
    /// Batches the reads over `link`; with `per_thread`, each thread that
    /// reads opens a connection of its own with that configuration.
    pub(crate) fn new(link: Link, timeout: Duration, per_thread: Option<RedisConfig>) -> Self {
        Self(Arc::new(Shared {
            timeout,
            main: Lane::new(link),
            per_thread: per_thread.map(|config| PerThread {
                id: NEXT_STORE.fetch_add(1, Ordering::Relaxed),
                config,
                lanes: Mutex::new(Vec::new()),
            }),
        }))
    }

    /// The value of `key` (not the version key: the caller checks).
    pub(crate) async fn get(&self, key: &CacheKey) -> Reply {
        let shared = &*self.0;
        let lane = self.lane();
        let before = lane.busy.fetch_add(1, Ordering::AcqRel);
        let _busy = Busy(&lane.busy);
        if before == 0 {
            return get_one(&lane.link, shared.timeout, key).await;
        }
        let (reply, answer) = oneshot::channel();
        enqueue(
            &lane,
            shared.timeout,
            Waiter {
                key: key.clone(),
                reply,
                deadline: Instant::now() + shared.timeout,
            },
        )?;
        // Answered by its deadline (see `Waiter::deadline`).
        answer.await.unwrap_or_else(|_| {
            // The task went with its runtime before it answered.
            Err(CacheError::Unavailable(
                "the task batching reads stopped before it answered".into(),
            ))
        })
    }

    /// This thread's lane once its connection is made, else the store's.
    /// The first read of a thread on a runtime starts its connection there;
    /// a lane belongs to the runtime it was made on (its connection's tasks
    /// run there), so a thread on a new runtime makes a new one.
    fn lane(&self) -> LaneRef<'_> {
        let shared = &*self.0;
        let Some(per_thread) = &shared.per_thread else {
            return LaneRef::Main(&shared.main);
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return LaneRef::Main(&shared.main);
        };
        let here = runtime.id();
        let mine = LANES.with_borrow(|lanes| {
            lanes
                .iter()
                .find(|mine| mine.store == per_thread.id && mine.runtime == here)
                .map(|mine| mine.lane.upgrade())
        });
        let lane = match mine {
            Some(Some(lane)) => lane,
            // The store that made it is gone: so is its id.
            Some(None) => return LaneRef::Main(&shared.main),
            None => per_thread.open(&runtime),
        };
        if lane.link.is_made() {
            LaneRef::Own(lane)
        } else {
            LaneRef::Main(&shared.main)
        }
    }

    /// How many connections of its own reading threads have made.
    pub(crate) fn thread_connections(&self) -> usize {
        self.0.per_thread.as_ref().map_or(0, |p| {
            p.lanes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .filter(|lane| lane.link.is_made())
                .count()
        })
    }
}

fn enqueue(lane: &Lane, timeout: Duration, waiter: Waiter) -> Result<(), CacheError> {
    let waiter = {
        let queue = lane
            .queue
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match queue.as_ref() {
            Some(tx) => match tx.send(waiter) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(waiter)) => waiter,
            },
            None => waiter,
        }
    };
    // No task yet, or its runtime has shut down: start one on this
    // runtime (a read runs on one).
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| CacheError::Unavailable("a batched read needs a tokio runtime".into()))?;
    let mut queue = lane
        .queue
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tx = match queue.as_ref() {
        Some(tx) if !tx.is_closed() => tx.clone(),
        _ => {
            let (tx, rx) = mpsc::unbounded_channel();
            runtime.spawn(send_batches(rx, lane.link.clone(), timeout));
            *queue = Some(tx.clone());
            tx
        }
    };
    tx.send(waiter)
        .map_err(|_| CacheError::Unavailable("the task batching reads stopped at once".into()))
}

/// One `GET` of `key`, bounded by `timeout`: a read with none in flight,
/// a batch of one, and every read of a store that does not batch.
pub(crate) async fn get_one(link: &Link, timeout: Duration, key: &CacheKey) -> Reply {
    let get = command("GET", std::slice::from_ref(key));
    call_on(link, timeout, |mut conn: Conn| async move {
        match get.query_async::<Option<Vec<u8>>>(&mut conn).await {
            // A key of another type holds nothing lwcache wrote: a miss, as
            // `MGET` answers it, which the fill then replaces.
            Err(e) if e.code() == Some("WRONGTYPE") => Ok(None),
            read => Ok(read?),
        }
    })
    .await
}

/// Sends what is queued, up to [`IN_FLIGHT`] `MGET`s at a time, until
/// every store clone (and so every sender) is gone.
async fn send_batches(mut rx: mpsc::UnboundedReceiver<Waiter>, link: Link, timeout: Duration) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // Reads queue while every slot is taken: the next batch takes them all.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let link = link.clone();
        tokio::spawn(async move {
            send_batch(batch, &link, timeout).await;
            drop(slot);
        });
    }
}

/// One batch: a `GET` for one read, an `MGET` for more, given until the
/// earliest deadline of its reads; a read already past its deadline is
/// answered that it timed out, and one that gave up needs no value.
async fn send_batch(mut batch: Vec<Waiter>, link: &Link, timeout: Duration) {
    let now = Instant::now();
    batch.retain(|w| !w.reply.is_closed());
    for late in batch.extract_if(.., |w| w.deadline <= now) {
        let _ = late.reply.send(Err(CacheError::Timeout(timeout)));
    }
    let Some(first) = batch.iter().map(|w| w.deadline).min() else {
        return;
    };
    let left = first - now;
    let timed_out = |e: CacheError| match e {
        // The batch's own bound is a read's: the store's timeout.
        CacheError::Timeout(_) => CacheError::Timeout(timeout),
        other => other,
    };
    match batch.len() {
        0 => {}
        1 => {
            if let Some(waiter) = batch.pop() {
                let reply = get_one(link, left, &waiter.key).await;
                let _ = waiter.reply.send(reply.map_err(timed_out));
            }
        }
        n => {
            let mget = command_of("MGET", batch.iter().map(|w| &w.key));
            let values = call_on(link, left, |mut conn: Conn| async move {
                let values: Vec<Option<Vec<u8>>> = mget.query_async(&mut conn).await?;
                if values.len() != n {
                    return Err(Failure::Refused(format!(
                        "MGET of {n} keys answered {} values",
                        values.len()
                    )));
                }
                Ok(values)
            })
            .await;
            match values {
                Ok(values) => {
                    for (waiter, value) in batch.into_iter().zip(values) {
                        let _ = waiter.reply.send(Ok(value));
                    }
                }
                Err(e) => {
                    let e = timed_out(e);
                    for waiter in batch {
                        let _ = waiter.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}
