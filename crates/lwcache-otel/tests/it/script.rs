//! The scripted sequence: misses, hits, writes that invalidate, a fallback
//! while the store fails, and a world activation. Expectations are tallied
//! as the script runs, from what each step asks for, and cross-checked
//! against the core's `Counters` fed the same events.

use std::collections::BTreeMap;
use std::sync::Arc;

use lwcache_core::metrics::Both;
use lwcache_core::{CacheManager, Counters, Fields, Outcome, Written};
use lwcache_domain::{CacheKey, Document, EntityKind, KeyKind, Op, Value, plan};
use lwcache_memory::{MemoryRepository, MemoryStore};
use lwcache_otel::{DURATION_BOUNDARIES, OtelMetrics};
use lwcache_testkit::decorators::Faulty;
use lwcache_testkit::fixtures::{character, doc, entity, event_kind, flag, seed_ops};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::support::{Labels, Series, all_attribute_text, attr, l, metrics};

/// Planted in documents; must never show up in telemetry.
const SECRET: &str = "Zq9-secret-diary-entry-7731";

type Manager = CacheManager<Arc<Faulty<Arc<MemoryStore>>>, Arc<MemoryRepository>>;

/// What the script did, tallied as it went.
#[derive(Default)]
struct Tally {
    hits: BTreeMap<Labels, u64>,
    misses: BTreeMap<Labels, u64>,
    fallbacks: BTreeMap<Labels, u64>,
    invalidations: BTreeMap<Labels, u64>,
    warm_count: u64,
    cache_errors: u64,
    /// `[stage, key_kind]` → how many measurements.
    durations: BTreeMap<Labels, u64>,
    /// `(world, key_kind, outcome)` of each read, in order.
    reads: Vec<(String, String, String)>,
    /// `(world, key_kind, op)` of each write, in order.
    writes: Vec<(String, String, String)>,
}

fn kind_label(kind: KeyKind) -> Labels {
    l(&[("key_kind", kind.as_str())])
}

impl Tally {
    fn duration(&mut self, stage: &str, kind: KeyKind) {
        *self
            .durations
            .entry(l(&[("stage", stage), ("key_kind", kind.as_str())]))
            .or_default() += 1;
    }

    async fn read(&mut self, m: &Manager, key: CacheKey, want: Outcome) {
        let kind = key.kind();
        let read = m.read(&key, Fields::Cacheable).await.unwrap();
        assert_eq!(read.outcome, want, "{key}");
        self.duration("cache_read", kind);
        match want {
            Outcome::Hit => *self.hits.entry(kind_label(kind)).or_default() += 1,
            Outcome::Miss => {
                *self.misses.entry(kind_label(kind)).or_default() += 1;
                self.duration("source_read", kind);
                self.duration("fill", kind);
            }
            Outcome::Fallback => {
                *self.fallbacks.entry(kind_label(kind)).or_default() += 1;
                self.cache_errors += 1;
                self.duration("source_read", kind);
            }
            Outcome::Stale | Outcome::FailSafe(_) | Outcome::NearHit => {
                unreachable!("the script serves nothing stale and has no near cache")
            }
        }
        self.reads.push((
            key.world().to_string(),
            kind.as_str().to_owned(),
            want.as_str().to_owned(),
        ));
    }

    fn wrote(&mut self, m: &Manager, op: &str, kind: KeyKind, written: &Written) {
        self.duration("source_write", kind);
        for step in plan(&written.committed, &m.config().policy).steps {
            *self
                .invalidations
                .entry(l(&[
                    ("key_kind", step.key.kind().as_str()),
                    ("cause", step.cause.as_str()),
                ]))
                .or_default() += 1;
        }
        self.writes.push((
            written.committed.world.to_string(),
            kind.as_str().to_owned(),
            op.to_owned(),
        ));
    }
}

#[tokio::test]
async fn a_scripted_sequence_is_counted_exactly_and_traced_without_content() {
    let metric_exporter = InMemoryMetricExporter::default();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metric_exporter.clone()).build())
        .build();
    let span_exporter = InMemorySpanExporter::default();
    let tracer_provider = SdkTracerProvider::builder()
        .with_simple_exporter(span_exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("lwcache-test")));
    // This test's thread only: other tests in the binary run untraced.
    let _guard = tracing::subscriber::set_default(subscriber);
    // Callsite interest is cached process-wide by the first thread to reach
    // a callsite; make every registered one ask this subscriber again.
    tracing::callsite::rebuild_interest_cache();

    let counters = Arc::new(Counters::new());
    let otel = Arc::new(OtelMetrics::new(&meter_provider.meter("lwcache")));
    let store = Arc::new(Faulty::new(Arc::new(MemoryStore::new())));
    let repo = Arc::new(MemoryRepository::new());
    // Stale reads opted into, so that the write-behind queue (and its
    // depth gauge) has work.
    let mut config = lwcache_core::ManagerConfig::default();
    config.stale_reads = lwcache_core::StaleReads::WhileQueued;
    let m: Manager = CacheManager::builder(store.clone(), repo.clone())
        .config(config)
        .metrics(Arc::new(Both(counters.clone(), otel)))
        .build()
        .unwrap();
    let mut t = Tally::default();

    let c1 = character("c1");
    let harbor = seed_ops(
        &repo,
        vec![
            Op::ReplaceSnapshot(doc("name", SECRET)),
            Op::SetFlag(flag("door_open"), Value::Bool(false)),
            Op::CreateEntity(c1.clone(), doc("diary", SECRET)),
        ],
    )
    .await;
    let (state, flags, c1_key) = (
        CacheKey::state(&harbor),
        CacheKey::flags(&harbor),
        CacheKey::entity(&harbor, &c1),
    );

    // 3 misses, then 5 hits.
    for key in [&state, &flags, &c1_key] {
        t.read(&m, key.clone(), Outcome::Miss).await;
    }
    for key in [&state, &state, &flags, &c1_key, &c1_key] {
        t.read(&m, key.clone(), Outcome::Hit).await;
    }

    // Writes whose cache steps invalidate.
    let w = m
        .set_flag(&harbor, flag("door_open"), Value::Bool(true))
        .await
        .unwrap();
    t.wrote(&m, "set_flag", KeyKind::Flags, &w);
    let w = m
        .update_entity(
            &harbor,
            c1.clone(),
            doc("diary", &format!("{SECRET}, again")),
        )
        .await
        .unwrap();
    t.wrote(&m, "update_entity", KeyKind::Character, &w);
    let w = m
        .add_event(
            &harbor,
            c1.entity_id(),
            event_kind("wrote"),
            doc("text", SECRET),
        )
        .await
        .unwrap();
    t.wrote(&m, "add_event", KeyKind::Timeline, &w);
    m.settle().await;

    // The store fails: the read falls back to the source.
    store.set_failing(true);
    t.read(&m, state.clone(), Outcome::Fallback).await;
    store.set_failing(false);

    // A world of a snapshot, flags and three entities: each entity warms
    // its state and its recent timeline.
    let entities = [
        character("c2"),
        entity(EntityKind::Location, "l1"),
        entity(EntityKind::Object, "o1"),
    ];
    let mut ops = vec![
        Op::ReplaceSnapshot(Document::new()),
        Op::SetFlag(flag("storm"), Value::Bool(true)),
    ];
    ops.extend(
        entities
            .iter()
            .map(|e| Op::CreateEntity(e.clone(), doc("note", SECRET))),
    );
    let pier = seed_ops(repo.as_ref(), ops).await;
    let report = m.activate(&pier).await.unwrap();
    t.warm_count = 2 + 2 * entities.len() as u64;
    assert_eq!(report.keys as u64, t.warm_count);

    // ---- metrics ----------------------------------------------------------
    meter_provider.force_flush().unwrap();
    let collected = metric_exporter.get_finished_metrics().unwrap();
    let got = metrics(collected.last().expect("one collection"));
    // Every label set is exported from 0: the series the script moved are
    // compared below, the others must be there at 0.
    let every = |name: &str| match got.get(name) {
        Some((_, Series::Counter(series))) => series.clone(),
        None => panic!("{name} is not exported"),
        Some(other) => panic!("{name} is not a counter: {other:?}"),
    };
    for name in [
        "cache_hits",
        "cache_misses",
        "cache_fallbacks",
        "cache_stale_reads",
    ] {
        assert_eq!(every(name).len(), KeyKind::ALL.len(), "{name}");
    }
    assert_eq!(
        every("invalidations").len(),
        KeyKind::ALL.len() * lwcache_domain::InvalidationCause::ALL.len()
    );
    let counter = |name: &str| -> BTreeMap<Labels, u64> {
        every(name).into_iter().filter(|(_, n)| *n > 0).collect()
    };
    let total = |series: &BTreeMap<Labels, u64>| series.values().sum::<u64>();
    let reference = counters.snapshot();

    assert_eq!(counter("cache_hits"), t.hits);
    assert_eq!(counter("cache_misses"), t.misses);
    assert_eq!(counter("cache_fallbacks"), t.fallbacks);
    assert_eq!(counter("invalidations"), t.invalidations);
    assert_eq!(
        counter("warm_count"),
        BTreeMap::from([(vec![], t.warm_count)])
    );
    assert_eq!(
        counter("cache_errors"),
        BTreeMap::from([(vec![], t.cache_errors)])
    );
    for nothing in [
        "cache_stale_reads",
        "cache_fills_rejected",
        "write_behind_drops",
    ] {
        assert_eq!(total(&counter(nothing)), 0, "{nothing}");
    }
    // The same events, counted by the core's reference sink.
    assert_eq!(
        (
            total(&counter("cache_hits")),
            total(&counter("cache_misses")),
            total(&counter("cache_fallbacks")),
            total(&counter("invalidations")),
            total(&counter("warm_count")),
            total(&counter("cache_errors")),
            total(&counter("cache_stale_reads")),
            total(&counter("cache_fills_rejected")),
            total(&counter("write_behind_drops")),
        ),
        (
            reference.hits,
            reference.misses,
            reference.fallbacks,
            reference.invalidations,
            reference.warm_count,
            reference.cache_errors,
            reference.stale,
            reference.fills_rejected,
            reference.write_behind_dropped,
        )
    );
    assert!(
        t.invalidations.len() >= 3,
        "the writes touched three kinds: {:?}",
        t.invalidations
    );

    match got.get("cache_stage_duration") {
        Some((unit, Series::Histogram(counts, bounds))) => {
            assert_eq!(unit, "s");
            assert_eq!(bounds, &DURATION_BOUNDARIES.to_vec());
            assert_eq!(counts, &t.durations);
        }
        other => panic!("no duration histogram: {other:?}"),
    }
    match got.get("write_behind_depth") {
        Some((_, Series::Gauge(series))) => assert_eq!(
            series,
            &BTreeMap::from([(vec![], m.write_behind_depth() as u64)]),
            "the last depth recorded is the queue's depth once settled"
        ),
        other => panic!("no write-behind depth gauge: {other:?}"),
    }

    // ---- spans ------------------------------------------------------------
    let spans = span_exporter.get_finished_spans().unwrap();
    let named = |name: &str| {
        let mut v: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
        v.sort_by_key(|s| s.start_time);
        v
    };
    let reads: Vec<_> = named("lwcache.read")
        .iter()
        .map(|s| {
            (
                attr(s, "world").unwrap(),
                attr(s, "key_kind").unwrap(),
                attr(s, "outcome").unwrap(),
            )
        })
        .collect();
    assert_eq!(reads, t.reads);
    let writes: Vec<_> = named("lwcache.write")
        .iter()
        .map(|s| {
            (
                attr(s, "world").unwrap(),
                attr(s, "key_kind").unwrap(),
                attr(s, "op").unwrap(),
            )
        })
        .collect();
    assert_eq!(writes, t.writes);
    let activations = named("lwcache.activate");
    assert_eq!(activations.len(), 1);
    assert_eq!(attr(activations[0], "world"), Some(pier.to_string()));
    assert_eq!(attr(activations[0], "keys"), Some(report.keys.to_string()));

    let mut seen = 0;
    for span in &spans {
        for text in all_attribute_text(span) {
            seen += 1;
            assert!(
                !text.contains(SECRET),
                "span {} carries document content: {text}",
                span.name
            );
        }
    }
    assert!(seen > spans.len(), "attributes were searched");
}
