//! A rolling upgrade between entry formats: instances writing format 1 and
//! format 2 share one real Redis. Each reads the other's entries as hits,
//! none is deleted as garbage or counted as a decode failure, and the
//! version rule orders the two formats alike (the Lua script reads both).

use std::sync::Arc;

use lwcache_core::codec::{self, Format};
use lwcache_core::ports::WorldRepository;
use lwcache_core::{CacheManager, Counters, Fields, ManagerConfig, Outcome};
use lwcache_domain::CacheKey;
use lwcache_memory::MemoryRepository;
use lwcache_testkit::fixtures::{character, doc};

use crate::support::{seed_world, standalone_store, standalone_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_of_two_formats_read_each_others_entries_as_hits() {
    let Some(url) = standalone_url() else { return };
    let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
    let world = seed_world(repo.as_ref(), 4).await;
    let instance = |format: Format| {
        let (url, repo) = (url.clone(), Arc::clone(&repo));
        async move {
            let counters = Arc::new(Counters::new());
            let m = CacheManager::builder(standalone_store(&url).await, repo)
                .config(ManagerConfig {
                    entry_format: format,
                    ..ManagerConfig::default()
                })
                .metrics(counters.clone())
                .build()
                .unwrap();
            (m, counters)
        }
    };
    let (old, old_counts) = instance(Format::V1).await;
    let (new, new_counts) = instance(Format::V2).await;
    let raw = standalone_store(&url).await;
    let format_of = |key: CacheKey| {
        let raw = raw.clone();
        async move {
            let bytes = lwcache_core::CacheStore::get(&raw, &key)
                .await
                .unwrap()
                .expect("the key is cached");
            codec::decode_fresh(&bytes).expect("every instance's entry decodes");
            bytes[2]
        }
    };

    old.activate(&world).await.unwrap();
    let c0 = character("c0");
    let key = CacheKey::entity(&world, &c0);
    assert_eq!(format_of(key.clone()).await, 1);
    // The new release reads the old format as a hit.
    let read = new.entity(&world, &c0, Fields::Cacheable).await.unwrap();
    assert_eq!(read.outcome, Outcome::Hit);

    for round in 0..10 {
        let (writer, reader, format) = if round % 2 == 0 {
            (&new, &old, 2)
        } else {
            (&old, &new, 1)
        };
        let mood = format!("mood-{round}");
        let w = writer
            .update_entity(&world, c0.clone(), doc("mood", &mood))
            .await
            .unwrap();
        // The commit's put is in the writer's format.
        assert_eq!(format_of(key.clone()).await, format, "round {round}");
        let read = reader.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        assert_eq!(
            read.outcome,
            Outcome::Hit,
            "round {round}: the other format is a hit"
        );
        assert_eq!(read.version, w.committed.version);
        assert_eq!(read.value, doc("mood", &mood));
    }
    for counts in [old_counts.snapshot(), new_counts.snapshot()] {
        assert_eq!(counts.decode_failures, 0, "{counts:?}");
        assert_eq!(
            counts.invalidations - counts.decode_failures,
            counts.invalidations
        );
    }
}
