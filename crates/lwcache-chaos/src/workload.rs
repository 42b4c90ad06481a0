//! The workload: writers that own their keys and write each in sequence,
//! readers that read any key from any instance, all over plain HTTP, every
//! attempt recorded on one clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lwcache_chaos::model::{KeyHistory, Kind, Observed, Outcome, WriteAttempt};
use lwcache_chaos::report::{KeySpec, ReadRecord, ReadResult};
use serde_json::{Value, json};
use tokio::sync::watch;

/// How long a key rests after a write of unknown outcome: that write may
/// still be running in a service or in Neo4j, and a next write of the same
/// key racing it would break the one-write-at-a-time rule the check rests
/// on.
const UNKNOWN_COOLDOWN: Duration = Duration::from_secs(10);
/// The timeline `limit` readers ask for: the cached top-k.
pub(crate) const TIMELINE_LIMIT: usize = 20;
/// Pads a snapshot so that it is not trivially small.
const PAD: &str = "the quick brown fox jumps over the lazy dog";

/// A small deterministic generator (SplitMix64): no dependency, and a seed
/// reproduces the workload's choices.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One key: where it lives over HTTP.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) spec: KeySpec,
    /// The path of reads and writes, under `/v1/worlds/`.
    path: String,
    /// The timeline's read path (`recent`), for timelines.
    read_path: String,
}

/// The keys of `worlds` worlds: one snapshot, four flags, six entities of
/// three kinds and three timelines each.
pub(crate) fn keys(run: &str, worlds: usize) -> Vec<Key> {
    let mut out = Vec::new();
    for w in 0..worlds {
        let world = format!("{run}-w{w}");
        let mut add = |kind, name: String, path: String, read_path: String| {
            out.push(Key {
                spec: KeySpec { kind, name },
                path,
                read_path,
            });
        };
        let state = format!("{world}/state");
        add(Kind::State, state.clone(), state.clone(), state);
        for f in 0..4 {
            let p = format!("{world}/flags/f{f}");
            add(Kind::Flag, p.clone(), p.clone(), p);
        }
        for (plural, prefix) in [("characters", "c"), ("locations", "l"), ("objects", "o")] {
            for i in 0..2 {
                let p = format!("{world}/{plural}/{prefix}{i}");
                add(Kind::Entity, p.clone(), p.clone(), p);
            }
        }
        for t in 0..3 {
            add(
                Kind::Timeline,
                format!("{world}/timeline/t{t}"),
                format!("{world}/timeline/t{t}/events"),
                format!("{world}/timeline/t{t}/recent?limit={TIMELINE_LIMIT}"),
            );
        }
    }
    out
}

/// Creates the worlds and every entity (state `n = 0`, the value before
/// any write), through the first instance.
pub(crate) async fn setup(http: &reqwest::Client, base: &str, keys: &[Key]) -> Result<()> {
    let mut creates: Vec<String> = Vec::new();
    for k in keys {
        match k.spec.kind {
            Kind::State => creates.push(k.path.clone()),
            Kind::Entity => creates.push(k.path.clone()),
            Kind::Timeline => {
                let world = k.path.split('/').next().unwrap_or_default();
                let id = k.path.split('/').nth(2).unwrap_or_default();
                creates.push(format!("{world}/characters/{id}"));
            }
            Kind::Flag => {}
        }
    }
    // Worlds first: the state paths come first in each world's keys.
    for path in creates {
        let url = format!("{base}/v1/worlds/{path}");
        let r = http
            .put(&url)
            .json(&json!({ "n": 0, "pad": PAD }))
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        if !r.status().is_success() {
            bail!("setup PUT {url}: {}", r.status());
        }
    }
    Ok(())
}

/// What the tasks share: the instances, the clock, stop and pause.
pub(crate) struct Shared {
    pub(crate) http: reqwest::Client,
    pub(crate) bases: Vec<String>,
    pub(crate) keys: Vec<Key>,
    pub(crate) epoch: Instant,
    pub(crate) stop: AtomicBool,
    /// Writers wait while it holds true (the convergence checks).
    pub(crate) paused: watch::Sender<bool>,
    /// Checked (successful) reads so far.
    pub(crate) reads_ok: AtomicU64,
}

impl Shared {
    pub(crate) fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// Writes the keys `mine` (indices into `shared.keys`) until stopped, one
/// write at a time, to random instances; returns each key's history.
pub(crate) async fn writer(
    shared: Arc<Shared>,
    mine: Vec<usize>,
    seed: u64,
) -> Vec<(usize, KeyHistory)> {
    let mut rng = Rng::new(seed);
    let mut histories: Vec<(usize, KeyHistory)> =
        mine.iter().map(|&k| (k, KeyHistory::default())).collect();
    let mut resting: HashMap<usize, Instant> = HashMap::new();
    let mut paused = shared.paused.subscribe();
    while !shared.stop.load(Ordering::Relaxed) && !histories.is_empty() {
        if *paused.borrow_and_update() {
            let _ = tokio::time::timeout(Duration::from_millis(200), paused.changed()).await;
            continue;
        }
        let slot = rng.below(histories.len());
        let key_index = histories[slot].0;
        if resting
            .get(&key_index)
            .is_some_and(|until| Instant::now() < *until)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let instance = rng.below(shared.bases.len());
        let history = &mut histories[slot].1;
        let seq = history.next_seq();
        let key = &shared.keys[key_index];
        let url = format!("{}/v1/worlds/{}", shared.bases[instance], key.path);
        let request = match key.spec.kind {
            Kind::Timeline => shared
                .http
                .post(&url)
                .json(&json!({ "kind": "spoke", "data": { "n": seq } })),
            Kind::Flag => shared.http.put(&url).json(&json!({ "n": seq })),
            Kind::State | Kind::Entity => {
                shared.http.put(&url).json(&json!({ "n": seq, "pad": PAD }))
            }
        };
        let sent_us = shared.now_us();
        let outcome = match request.send().await {
            Ok(r) if r.status().is_success() => {
                let at_us = shared.now_us();
                let version = r
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v.get("version").and_then(Value::as_u64))
                    .unwrap_or(0);
                Outcome::Acked { at_us, version }
            }
            _ => {
                resting.insert(key_index, Instant::now() + UNKNOWN_COOLDOWN);
                Outcome::Unknown
            }
        };
        history.push(WriteAttempt {
            seq,
            sent_us,
            outcome,
        });
    }
    histories
}

/// Reads random keys from random instances until stopped.
pub(crate) async fn reader(shared: Arc<Shared>, seed: u64) -> Vec<ReadRecord> {
    let mut rng = Rng::new(seed);
    let mut records = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let key = rng.below(shared.keys.len());
        let instance = rng.below(shared.bases.len());
        let k = &shared.keys[key];
        let url = format!("{}/v1/worlds/{}", shared.bases[instance], k.read_path);
        let start_us = shared.now_us();
        let (result, near) = read_one(&shared.http, &url, k.spec.kind).await;
        let end_us = shared.now_us();
        if matches!(result, ReadResult::Ok(_)) {
            shared.reads_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            // Do not spin against an instance that is down.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        records.push(ReadRecord {
            key,
            instance,
            start_us,
            end_us,
            result,
            near,
        });
    }
    records
}

/// Status used for an answer that arrived but could not be understood.
pub(crate) const UNREADABLE: u16 = 1;

/// One read, and whether the near cache answered it.
async fn read_one(http: &reqwest::Client, url: &str, kind: Kind) -> (ReadResult, bool) {
    let response = match http.get(url).send().await {
        Ok(r) => r,
        Err(_) => return (ReadResult::Failed(0), false),
    };
    let near = response
        .headers()
        .get("x-cache-tier")
        .is_some_and(|v| v.as_bytes() == b"near");
    (parse(response, kind).await, near)
}

async fn parse(response: reqwest::Response, kind: Kind) -> ReadResult {
    let status = response.status().as_u16();
    let Ok(body) = response.json::<Value>().await else {
        return ReadResult::Failed(if status >= 400 { status } else { UNREADABLE });
    };
    if kind == Kind::Flag && status == 404 {
        let code = body.pointer("/error/code").and_then(Value::as_str);
        return if code == Some("unknown_flag") {
            ReadResult::Ok(Observed::Register(0))
        } else {
            ReadResult::Failed(status)
        };
    }
    if status >= 300 {
        return ReadResult::Failed(status);
    }
    match kind {
        Kind::Timeline => {
            let Some(events) = body.as_array() else {
                return ReadResult::Failed(UNREADABLE);
            };
            let versions: Vec<u64> = events
                .iter()
                .map(|e| e.get("seq").and_then(Value::as_u64).unwrap_or(0))
                .collect();
            let seqs = events
                .iter()
                .map(|e| e.pointer("/data/n").and_then(Value::as_u64).unwrap_or(0))
                // The entity's creation is no event; 0 never appears.
                .filter(|&n| n > 0)
                .collect();
            ReadResult::Ok(Observed::Timeline {
                seqs,
                newest_first: versions.windows(2).all(|w| w[0] > w[1]),
                limit: TIMELINE_LIMIT,
            })
        }
        _ => match body.get("n").and_then(Value::as_u64) {
            Some(n) => ReadResult::Ok(Observed::Register(n)),
            None => ReadResult::Failed(UNREADABLE),
        },
    }
}
