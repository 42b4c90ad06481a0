//! The oracle: the domain's reference [`WorldModel`], fed every commit the
//! repository makes in commit order, the history of every key's value by
//! version, the log of acknowledged writes, and the checks.
//!
//! - Every value a read returns must be the source's value of its key at the
//!   version the read reports (a cache entry never lies about its version).
//! - Read your writes, across instances: a read that starts after a write's
//!   acknowledgement reports a version at or above that write's, for every
//!   key the write changed. The one window `docs/consistency.md` declares is
//!   kept: a write whose cache step failed binds a reader only once the
//!   reader has seen the fault that failed it (a failed call of its own in
//!   the same outage), or once the write's outbox entry was settled.
//! - Reads served by the source (`Miss`, `Fallback`) are at least as new as
//!   the source was when the read started.
//! - At quiescence every cached entry equals the source, and nothing is
//!   owed.

use std::collections::{HashMap, HashSet};

use lwcache_core::codec::{self, Slot};
use lwcache_domain::world::apply_to;
use lwcache_domain::{
    CacheKey, CachedValue, Committed, KeyTarget, Mutation, OwedId, SensitivityPolicy, WorldModel,
};

use crate::config::Known;

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// A read returned a version older than an acknowledged write that
    /// binds it.
    Stale,
    /// A read's value is not the source's value at the version it reports.
    WrongValue,
    /// A read served by the source is older than the source at its start.
    OldSourceRead,
    /// A key was answered absent (by the source or a negative entry) when
    /// it existed at every version the read may reflect.
    WrongAbsence,
    /// The repository committed something the reference model would not.
    Diverged,
    /// At quiescence, a cached entry differs from the source.
    NotConverged,
    /// At quiescence, owed steps were left in the outbox.
    OutboxNotDrained,
}

/// A violation the protocol is known to have (see [`crate::Known`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnownIssue {
    /// A timeline read after an entity's re-creation returned the deleted
    /// entity's events: the delete's step was still owed.
    RecreateAfterDelete,
    /// A reader that saw a store outage for everyone read a value whose
    /// write's step failed in that outage and was not replayed yet.
    OutageForEveryone,
    /// A commit sent after a store restart landed an older value than the
    /// one the restart lost. Not recognised by a signature: its trigger (a
    /// store write delayed before it is sent) is left out unless exposed.
    CommitAcrossRestart,
}

impl KnownIssue {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            KnownIssue::RecreateAfterDelete => "recreate-after-delete",
            KnownIssue::OutageForEveryone => "outage-for-everyone",
            KnownIssue::CommitAcrossRestart => "commit-across-restart",
        }
    }

    /// Every known issue.
    pub const ALL: [KnownIssue; 3] = [
        KnownIssue::RecreateAfterDelete,
        KnownIssue::OutageForEveryone,
        KnownIssue::CommitAcrossRestart,
    ];

    /// The issue named `name`.
    pub fn parse(name: &str) -> Option<KnownIssue> {
        KnownIssue::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One violation, with what the oracle knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Its kind.
    pub kind: ViolationKind,
    /// The known issue it matches, when that issue is not exposed: it is
    /// then reported but does not fail the run.
    pub known: Option<KnownIssue>,
    /// The trace position (event count) at which it was found.
    pub at_event: u64,
    /// What happened, in words.
    pub detail: String,
}

/// An acknowledged write of one key.
#[derive(Debug, Clone)]
struct Ack {
    /// The trace position of the acknowledgement.
    tick: u64,
    /// The version it committed as.
    version: u64,
    /// When its cache step failed: the fault ids that failed it, and its
    /// outbox entry.
    failed: Option<(Vec<u64>, OwedId)>,
}

/// Who reads: an instance's incarnation.
pub(crate) type Reader = (usize, u32);

/// When a read started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadStart {
    /// Trace position.
    pub tick: u64,
    /// Simulated time, in microseconds.
    pub at_us: u64,
    /// The source's version then.
    pub source_version: u64,
    /// The instance.
    pub reader: Reader,
}

/// What a read returned, as the oracle sees it.
#[derive(Debug, Clone)]
pub(crate) enum ReadResult {
    /// A value, the version it reports, and whether the source served it.
    Value {
        /// The value (a timeline already cut to the read's limit).
        value: CachedValue,
        /// The version reported.
        version: u64,
        /// Served by the source (`Miss` or `Fallback`).
        from_source: bool,
        /// How it was served, for the report.
        outcome: &'static str,
    },
    /// The source said the key's entity does not exist.
    Absent,
}

/// The oracle of one run.
pub(crate) struct Oracle {
    /// The reference world, fed every commit.
    model: Option<WorldModel>,
    /// The keys checked, in a fixed order.
    keys: Vec<CacheKey>,
    index: HashMap<CacheKey, usize>,
    top_k: usize,
    privacy: SensitivityPolicy,
    /// Per key: `(version, value)` at each version the value changed.
    history: Vec<Vec<(u64, Option<CachedValue>)>>,
    /// Per key: acknowledged writes, in acknowledgement order.
    acks: Vec<Vec<Ack>>,
    /// The keys whose value each version changed.
    changed: HashMap<u64, Vec<usize>>,
    /// Outbox entries settled, with the trace position.
    settled: HashMap<OwedId, u64>,
    /// Fault ids each incarnation has seen, with when: `(time in µs, trace
    /// position)`; a failure the caller notices only at its timeout is
    /// stamped at that time, with the position `u64::MAX`.
    seen: HashMap<Reader, HashMap<u64, (u64, u64)>>,
    /// Every violation found.
    pub violations: Vec<Violation>,
    /// Which known issues count as violations.
    exposed: Known,
    /// Fault ids of outages that struck every instance.
    shared_faults: HashSet<u64>,
    /// For each timeline key, its entity's key.
    entity_of: HashMap<usize, usize>,
    /// Reads checked, and reads stale only inside the declared window.
    pub checked: u64,
    /// Reads older than an acknowledged write whose failed step the reader
    /// had not seen and that was not replayed yet: the declared window.
    pub declared: u64,
}

impl Oracle {
    /// An oracle over `keys`, from `model` (the world as loaded).
    pub(crate) fn new(
        model: WorldModel,
        keys: Vec<CacheKey>,
        top_k: usize,
        privacy: SensitivityPolicy,
        exposed: Known,
    ) -> Self {
        let index: HashMap<CacheKey, usize> = keys
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect();
        let entity_of = keys
            .iter()
            .enumerate()
            .filter_map(|(t, key)| match key.target() {
                KeyTarget::Timeline(id) => keys
                    .iter()
                    .position(
                        |k| matches!(k.target(), KeyTarget::Entity(e) if e.entity_id() == *id),
                    )
                    .map(|e| (t, e)),
                _ => None,
            })
            .collect();
        let mut oracle = Self {
            history: vec![Vec::new(); keys.len()],
            acks: vec![Vec::new(); keys.len()],
            changed: HashMap::new(),
            model: Some(model),
            keys,
            index,
            top_k,
            privacy,
            settled: HashMap::new(),
            seen: HashMap::new(),
            violations: Vec::new(),
            exposed,
            shared_faults: HashSet::new(),
            entity_of,
            checked: 0,
            declared: 0,
        };
        oracle.record_values();
        oracle
    }

    /// The keys checked.
    pub(crate) fn keys(&self) -> &[CacheKey] {
        &self.keys
    }

    /// The source's current version.
    pub(crate) fn version(&self) -> u64 {
        self.model.as_ref().map_or(0, WorldModel::version)
    }

    /// What the source holds for `key` now, as the cache would hold it.
    pub(crate) fn current(&self, key: &CacheKey) -> Option<CachedValue> {
        let model = self.model.as_ref()?;
        model
            .read(key, self.top_k)
            .map(|v| self.privacy.redact(key.kind(), &v).0)
    }

    fn record_values(&mut self) {
        let version = self.version();
        for i in 0..self.keys.len() {
            let value = self.current(&self.keys[i]);
            let history = &mut self.history[i];
            if history.last().is_none_or(|(_, last)| *last != value) {
                history.push((version, value));
                self.changed.entry(version).or_default().push(i);
            }
        }
    }

    fn violate(&mut self, kind: ViolationKind, at_event: u64, detail: String) {
        self.violations.push(Violation {
            kind,
            known: None,
            at_event,
            detail,
        });
    }

    /// Notes that fault `id` is an outage of every instance.
    pub(crate) fn shared_fault(&mut self, id: u64) {
        self.shared_faults.insert(id);
    }

    /// Feeds a commit the repository made: the model applies the same
    /// mutation and must commit the same thing.
    pub(crate) fn commit(&mut self, mutation: &Mutation, committed: &Committed, tick: u64) {
        let expected = apply_to(&mut self.model, mutation.clone());
        if expected.as_ref() != Ok(committed) {
            self.violate(
                ViolationKind::Diverged,
                tick,
                format!("the repository committed {committed:?}; the model: {expected:?}"),
            );
        }
        self.record_values();
    }

    /// Notes that an outbox entry is gone.
    pub(crate) fn settled(&mut self, id: OwedId, tick: u64) {
        self.settled.entry(id).or_insert(tick);
    }

    /// Notes that `reader` has seen fault `id` (at `at_us`, trace position
    /// `tick`).
    pub(crate) fn saw(&mut self, reader: Reader, id: u64, at_us: u64, tick: u64) {
        self.seen
            .entry(reader)
            .or_default()
            .entry(id)
            .or_insert((at_us, tick));
    }

    /// Records an acknowledged write committed as `version`; `failed` holds
    /// the fault ids that failed its cache step, if it failed.
    pub(crate) fn ack(&mut self, committed: &Committed, failed: Option<Vec<u64>>, tick: u64) {
        let id = OwedId {
            world: committed.world.clone(),
            version: committed.version,
        };
        let changed = self
            .changed
            .get(&committed.version)
            .cloned()
            .unwrap_or_default();
        for i in changed {
            self.acks[i].push(Ack {
                tick,
                version: committed.version,
                failed: failed.clone().map(|f| (f, id.clone())),
            });
        }
    }

    /// Whether an acknowledged write binds a read that started at `start`,
    /// and why.
    fn binds(&self, ack: &Ack, start: &ReadStart) -> Option<Binding> {
        let Some((faults, id)) = &ack.failed else {
            return Some(Binding::Applied);
        };
        if self.settled.get(id).is_some_and(|&t| t < start.tick) {
            return Some(Binding::Applied);
        }
        let seen = self.seen.get(&start.reader);
        let saw = |f: &u64| {
            seen.and_then(|s| s.get(f)).is_some_and(|&(at_us, tick)| {
                at_us < start.at_us || (at_us == start.at_us && tick < start.tick)
            })
        };
        if faults
            .iter()
            .any(|f| saw(f) && !self.shared_faults.contains(f))
        {
            Some(Binding::SawOwnFault)
        } else if faults.iter().any(saw) {
            Some(Binding::SawSharedOutage)
        } else {
            None
        }
    }

    /// The known issue a stale read of key `k` at `version`, bound by the
    /// acknowledged writes `binding`, matches, if any.
    fn known_issue(
        &self,
        k: usize,
        version: u64,
        binding: &[(u64, Binding)],
    ) -> Option<KnownIssue> {
        let newer: Vec<&(u64, Binding)> = binding.iter().filter(|(v, _)| *v > version).collect();
        if !self.exposed.outage_for_everyone
            && newer.iter().all(|(_, b)| *b == Binding::SawSharedOutage)
        {
            return Some(KnownIssue::OutageForEveryone);
        }
        let need = newer.iter().map(|(v, _)| *v).max()?;
        let entity = *self.entity_of.get(&k)?;
        // The entity was deleted after the version read and is there again
        // at the binding write: the timeline belongs to its previous life.
        let deleted_between = self.history[entity]
            .iter()
            .any(|(v, value)| *v > version && *v <= need && value.is_none());
        (!self.exposed.recreate_after_delete && deleted_between)
            .then_some(KnownIssue::RecreateAfterDelete)
    }

    fn value_at(&self, key: usize, version: u64) -> Option<&Option<CachedValue>> {
        let h = &self.history[key];
        let i = h.partition_point(|(v, _)| *v <= version);
        i.checked_sub(1).map(|i| &h[i].1)
    }

    /// Checks a read of `key` that started at `start`, ended at trace
    /// position `tick`, asked for at most `limit` timeline events and
    /// returned `result`.
    pub(crate) fn check_read(
        &mut self,
        key: &CacheKey,
        limit: usize,
        start: ReadStart,
        result: ReadResult,
        tick: u64,
    ) {
        let Some(&k) = self.index.get(key) else {
            return;
        };
        self.checked += 1;
        let now = self.version();
        match result {
            ReadResult::Absent => {
                // The answer holds at some version the key was absent at:
                // from the source, at or after the read's start; from a
                // negative entry, at or after the newest acknowledged write
                // of the key that binds the read (`docs/consistency.md`).
                let absent_since = |floor: u64| {
                    let h = &self.history[k];
                    let first = h.partition_point(|(v, _)| *v <= floor).saturating_sub(1);
                    h[first..].iter().any(|(_, value)| value.is_none())
                };
                if absent_since(start.source_version) {
                    return;
                }
                let before: Vec<&Ack> = self.acks[k]
                    .iter()
                    .filter(|a| a.tick < start.tick)
                    .collect();
                let need = before
                    .iter()
                    .filter(|a| self.binds(a, &start).is_some())
                    .map(|a| a.version)
                    .max()
                    .unwrap_or(0);
                if absent_since(need) {
                    self.declared += 1;
                    return;
                }
                self.violate(
                    ViolationKind::WrongAbsence,
                    tick,
                    format!(
                        "{key}: answered absent, but it existed from v{need} (an acknowledged write this read must see) to v{now}"
                    ),
                );
            }
            ReadResult::Value {
                value,
                version,
                from_source,
                outcome,
            } => {
                let expected = self
                    .value_at(k, version)
                    .cloned()
                    .flatten()
                    .map(|v| cut(v, limit));
                if version > now || expected.as_ref() != Some(&value) {
                    self.violate(
                        ViolationKind::WrongValue,
                        tick,
                        format!(
                            "{key}: a {outcome} read returned {value:?} as v{version}; the source had {expected:?} (now v{now})"
                        ),
                    );
                    return;
                }
                if from_source && version < start.source_version {
                    self.violate(
                        ViolationKind::OldSourceRead,
                        tick,
                        format!(
                            "{key}: a {outcome} read served by the source at v{version}, below v{} when it started",
                            start.source_version
                        ),
                    );
                }
                let before: Vec<&Ack> = self.acks[k]
                    .iter()
                    .filter(|a| a.tick < start.tick)
                    .collect();
                let binding: Vec<(u64, Binding)> = before
                    .iter()
                    .filter_map(|a| self.binds(a, &start).map(|b| (a.version, b)))
                    .collect();
                let need = binding.iter().map(|(v, _)| *v).max().unwrap_or(0);
                let any = before.iter().map(|a| a.version).max().unwrap_or(0);
                if version < need {
                    let known = self.known_issue(k, version, &binding);
                    let (slot, life) = start.reader;
                    self.violate(
                        ViolationKind::Stale,
                        tick,
                        format!(
                            "{key}: a {outcome} read on i{slot}.{life} returned v{version}, older than the acknowledged v{need}"
                        ),
                    );
                    if let Some(v) = self.violations.last_mut() {
                        v.known = known;
                    }
                } else if version < any {
                    self.declared += 1;
                }
            }
        }
    }

    /// Checks one cached entry at quiescence against the source.
    pub(crate) fn check_entry(&mut self, key: &CacheKey, bytes: &[u8], tick: u64) {
        let now = self.version();
        match codec::decode_slot(bytes) {
            Ok(Slot::Tombstone { .. }) => {}
            // A negative entry: right only while the source has no such
            // entity.
            Ok(Slot::Absent { entity }) => {
                if let Some(source) = self.current(key) {
                    self.violate(
                        ViolationKind::NotConverged,
                        tick,
                        format!("{key}: cached as absent ({entity}); the source holds {source:?} at v{now}"),
                    );
                }
            }
            Ok(Slot::Value(entry)) => {
                let source = self.current(key);
                if source.as_ref() != Some(&entry.value) || entry.version > now {
                    self.violate(
                        ViolationKind::NotConverged,
                        tick,
                        format!(
                            "{key}: cached {:?} at v{}; the source holds {source:?} at v{now}",
                            entry.value, entry.version
                        ),
                    );
                }
            }
            Err(e) => self.violate(
                ViolationKind::NotConverged,
                tick,
                format!("{key}: the cached bytes do not decode: {e}"),
            ),
        }
    }

    /// Notes that `n` owed steps were left at quiescence.
    pub(crate) fn undrained(&mut self, n: usize, tick: u64) {
        if n > 0 {
            self.violate(
                ViolationKind::OutboxNotDrained,
                tick,
                format!("{n} owed steps left in the outbox after the replay loops ran"),
            );
        }
    }

    /// Notes a key in the store that no operation names.
    pub(crate) fn unknown_key(&mut self, name: &str, tick: u64) {
        self.violate(
            ViolationKind::NotConverged,
            tick,
            format!("the store holds a key no operation names: {name}"),
        );
    }

    /// Whether a key is one the oracle checks.
    pub(crate) fn knows(&self, key: &CacheKey) -> bool {
        self.index.contains_key(key)
    }
}

/// Why an acknowledged write binds a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    /// Its cache step was carried out (by the write or a replay).
    Applied,
    /// Its step failed on a fault the reader saw itself.
    SawOwnFault,
    /// Its step failed in an outage of every instance, which the reader saw
    /// (the reader may be the writer).
    SawSharedOutage,
}

/// A timeline cut to `limit` events; other values as they are.
fn cut(value: CachedValue, limit: usize) -> CachedValue {
    match value {
        CachedValue::Timeline(mut events) => {
            events.truncate(limit);
            CachedValue::Timeline(events)
        }
        other => other,
    }
}
