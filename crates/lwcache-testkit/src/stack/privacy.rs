//! Privacy by configuration through the manager: extra sensitive names,
//! an allow-list and a private event kind keep their data out of every
//! byte handed to the store, and a read that needs everything is served by
//! the source, as for the built-in names.

use std::sync::Arc;

use lwcache_core::{Fields, ManagerConfig, Outcome};
use lwcache_domain::{
    CacheKey, CachedValue, Document, KeyKind, SensitivityPolicy, TimelineEvent, Value,
};

use super::manager_with;
use crate::Harness;
use crate::decorators::Recording;
use crate::fixtures::{character, doc, event_kind, flag, fresh_world};

fn kinds(events: &[TimelineEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

/// With `trauma_history` sensitive, characters cached by an allow-list of
/// `name` and `journal_entry` events private: nothing of them reaches the
/// store; the cacheable view lacks them from the cache and the source
/// alike; `Fields::All` reads of the entity and of the timeline (a batch)
/// get them from the source.
pub async fn configured_privacy_keeps_data_out_and_serves_it_from_the_source(h: &Harness) {
    let world = fresh_world();
    let recording = Arc::new(Recording::new(h.store.clone()));
    let mut config = ManagerConfig::default();
    config.policy.privacy = SensitivityPolicy::default()
        .with_names(["trauma_history"])
        .with_allow_list(KeyKind::Character, ["name", "hp"])
        .with_private_events(["journal_entry"]);
    let (m, _) = manager_with(recording.clone(), h.repo.clone(), config);
    let c1 = character("c1");
    let full = Document::new()
        .with("name", Value::Text("Ada".into()))
        .with("hp", Value::Int(7))
        .with("mood", Value::Text("SECRET-mood".into()))
        .with("trauma_history", Value::Text("SECRET-1".into()));
    m.replace_snapshot(
        &world,
        Document::new().with(
            "log",
            Value::List(vec![Value::Map(
                [("trauma_history".to_owned(), Value::Text("SECRET-2".into()))].into(),
            )]),
        ),
    )
    .await
    .unwrap();
    m.create_entity(&world, c1.clone(), full.clone())
        .await
        .unwrap();
    m.set_flag(
        &world,
        flag("trauma_history"),
        Value::Text("SECRET-3".into()),
    )
    .await
    .unwrap();
    for (kind, text) in [
        ("spoke", "hello"),
        ("journal_entry", "I feel SECRET-4"),
        ("spoke", "bye"),
    ] {
        m.add_event(&world, c1.entity_id(), event_kind(kind), doc("text", text))
            .await
            .unwrap();
    }
    m.settle().await;
    m.activate(&world).await.unwrap();
    let timeline = CacheKey::timeline(&world, &c1.entity_id());
    h.store
        .remove(&[CacheKey::entity(&world, &c1), timeline.clone()])
        .await
        .unwrap();

    let public = m.entity(&world, &c1, Fields::Cacheable).await.unwrap();
    assert_eq!(public.outcome, Outcome::Miss);
    assert_eq!(
        public.value,
        Document::new()
            .with("name", Value::Text("Ada".into()))
            .with("hp", Value::Int(7)),
        "only the allow-list"
    );
    let recent = m.recent(&world, &c1.entity_id(), 10).await.unwrap();
    assert_eq!(recent.outcome, Outcome::Miss);
    assert_eq!(kinds(&recent.value), ["spoke", "spoke"]);
    let recent = m.recent(&world, &c1.entity_id(), 10).await.unwrap();
    assert_eq!(recent.outcome, Outcome::Hit);
    assert_eq!(kinds(&recent.value), ["spoke", "spoke"]);
    let past_top_k = m.recent(&world, &c1.entity_id(), 1000).await.unwrap();
    assert_eq!(
        kinds(&past_top_k.value),
        ["spoke", "spoke"],
        "the source's answer is the cacheable view too"
    );

    let written = recording.written();
    assert!(written.len() >= 5, "the check saw the writes");
    for bytes in &written {
        for needle in [&b"SECRET"[..], b"trauma_history", b"journal_entry", b"mood"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} reached the store",
                String::from_utf8_lossy(needle)
            );
        }
    }

    let all = m.entity(&world, &c1, Fields::All).await.unwrap();
    assert_eq!(all.outcome, Outcome::Miss, "the cached copy is redacted");
    assert_eq!(all.value, full, "the source gives every field");
    let batch = m
        .read_many(&world, std::slice::from_ref(&timeline), Fields::All)
        .await
        .unwrap();
    let read = batch.into_iter().next().unwrap().unwrap();
    assert_eq!(
        read.outcome,
        Outcome::Miss,
        "the cached timeline lacks events"
    );
    let CachedValue::Timeline(events) = read.value else {
        panic!("a timeline key answered {:?}", read.value)
    };
    assert_eq!(kinds(&events), ["spoke", "journal_entry", "spoke"]);
    let cacheable = m
        .read_many(&world, std::slice::from_ref(&timeline), Fields::Cacheable)
        .await
        .unwrap();
    let read = cacheable.into_iter().next().unwrap().unwrap();
    assert_eq!(read.outcome, Outcome::Hit);
}
