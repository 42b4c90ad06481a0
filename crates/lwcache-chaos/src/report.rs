//! The run's report: every read checked against the history, grouped by
//! key kind and by fault window, with the convergence figures the runner
//! measured; rendered as JSON and markdown.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{KeyHistory, Kind, Nines, Observed, Verdict, Window, nines_within, window_of};

/// Horizons of the "consistent within T" lines, in microseconds.
pub const HORIZONS_US: [u64; 4] = [0, 100_000, 1_000_000, 10_000_000];
/// Examples kept per window.
const EXAMPLES: usize = 5;
/// The name of the time before the first fault.
pub const BASELINE: &str = "baseline";

/// One key the workload uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeySpec {
    /// Its kind.
    pub kind: Kind,
    /// A readable name: `w1/state`, `w1/flags/f3`, `w1/characters/c2`, ...
    pub name: String,
}

/// How one read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    /// 2xx (or the 404 of an unset flag): checked.
    Ok(Observed),
    /// An error status, or 0 for a transport error or timeout: counted as
    /// unavailability, never as a violation.
    Failed(u16),
}

/// One read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// Index into the key table.
    pub key: usize,
    /// Which service instance answered.
    pub instance: usize,
    /// When it was sent.
    pub start_us: u64,
    /// When its answer arrived.
    pub end_us: u64,
    /// What it returned.
    pub result: ReadResult,
    /// Whether the instance's near cache answered (`x-cache-tier: near`).
    pub near: bool,
}

/// One violation, for the report's examples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    /// The key.
    pub key: String,
    /// The instance that answered.
    pub instance: usize,
    /// When the read started, in ms since the run started.
    pub at_ms: u64,
    /// `stale`, `missing`, `unordered` or `phantom`.
    pub what: &'static str,
    /// The sequence number the read had to reach (0 when not applicable).
    pub expected_seq: u64,
    /// The sequence number it returned.
    pub got_seq: u64,
    /// How long it was behind, in ms (stale reads only).
    pub behind_ms: u64,
    /// How many of the key's writes it missed (stale reads only).
    pub behind_versions: u64,
}

/// Counts for one key kind in one window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    /// Reads checked.
    pub checked: u64,
    /// Checked reads that were violations.
    pub violations: u64,
    /// Reads that failed.
    pub failed: u64,
}

/// Everything about one window (or the baseline).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowReport {
    /// The fault's name, or [`BASELINE`].
    pub name: String,
    /// When it started and was healed, in ms since the run started.
    pub start_ms: u64,
    /// When it was healed.
    pub heal_ms: u64,
    /// When the next window started.
    pub end_ms: u64,
    /// Per kind.
    pub kinds: BTreeMap<&'static str, KindCounts>,
    /// Reads checked in all.
    pub checked: u64,
    /// Violations in all.
    pub violations: u64,
    /// Reads that failed, in all.
    pub failed: u64,
    /// Share of reads answered: `checked / (checked + failed)`.
    pub availability: f64,
    /// `(horizon in ms, nines consistent within it)`.
    pub nines: Vec<(u64, Nines)>,
    /// The stalest read: ms behind.
    pub max_behind_ms: u64,
    /// The stalest read: versions behind.
    pub max_behind_versions: u64,
    /// From the heal until the cache equalled the source, measured by the
    /// runner; `None` when it did not within its bound.
    pub converged_after_heal_ms: Option<u64>,
    /// When it did not: what still differed at the bound (the first few).
    pub still_different: Vec<String>,
    /// The first violations.
    pub examples: Vec<Example>,
}

impl WindowReport {
    fn new(name: &str, start_us: u64, heal_us: u64, end_us: u64) -> Self {
        WindowReport {
            name: name.to_owned(),
            start_ms: start_us / 1000,
            heal_ms: heal_us / 1000,
            end_ms: end_us / 1000,
            kinds: Kind::ALL
                .iter()
                .map(|k| (k.as_str(), KindCounts::default()))
                .collect(),
            checked: 0,
            violations: 0,
            failed: 0,
            availability: 1.0,
            nines: Vec::new(),
            max_behind_ms: 0,
            max_behind_versions: 0,
            converged_after_heal_ms: None,
            still_different: Vec::new(),
            examples: Vec::new(),
        }
    }

    /// The Polaris-style line: `N nines consistent within T`.
    pub fn nines_line(&self) -> String {
        let parts: Vec<String> = self
            .nines
            .iter()
            .map(|(ms, n)| format!("{} nines consistent within {}", n.render(), horizon(*ms)))
            .collect();
        format!("{}: {}", self.name, parts.join("; "))
    }
}

fn horizon(ms: u64) -> String {
    match ms {
        0 => "0 ms".to_owned(),
        ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
        ms => format!("{ms} ms"),
    }
}

/// The checked reads, grouped: the whole run and each window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// The whole run.
    pub total: WindowReport,
    /// The baseline, then one per fault.
    pub windows: Vec<WindowReport>,
    /// Violations in windows not declared as allowed to have them.
    pub undeclared_violations: u64,
    /// The reads the instances' near caches answered, when they had one.
    pub near: NearReport,
}

/// What the near caches answered: how many reads, and of those that were
/// behind an acknowledged write, how far (the broadcast delay as readers
/// saw it). A near read behind by at most `bound_ms` is declared in every
/// window; one further behind counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NearReport {
    /// The declared bound (the near cache's `max_lag`), when near caches ran.
    pub bound_ms: Option<u64>,
    /// Checked reads the near caches answered.
    pub reads: u64,
    /// Of those, the reads behind an acknowledged write.
    pub stale: u64,
    /// How far those were behind, in milliseconds: p50, p99, max.
    pub behind_p50_ms: u64,
    /// p99 of the same.
    pub behind_p99_ms: u64,
    /// The most.
    pub behind_max_ms: u64,
}

/// A window the consistency model declares: in the fault window `window`,
/// a read may be stale by at most `within_ms` (the time since the first
/// acknowledged write it missed), for the reason given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Declared {
    /// The fault window's name.
    pub window: String,
    /// The most a read there may be behind, in milliseconds.
    pub within_ms: u64,
    /// Why the model allows it.
    pub why: String,
}

impl Declared {
    /// Whether the declaration covers the window `name`: the fault itself,
    /// or one of its repetitions (`name#2`) in a long run.
    pub fn covers(&self, name: &str) -> bool {
        name.strip_prefix(self.window.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('#'))
    }
}

/// Checks every read against its key's history and groups the verdicts.
/// A violation is declared when its window is declared and it is no more
/// behind than the declaration allows; every other violation counts.
pub fn analyse(
    keys: &[KeySpec],
    histories: &[KeyHistory],
    reads: &[ReadRecord],
    windows: &[Window],
    run_end_us: u64,
    declared: &[Declared],
    near_bound_ms: Option<u64>,
) -> Analysis {
    let mut near = NearReport {
        bound_ms: near_bound_ms,
        ..NearReport::default()
    };
    let mut near_behind: Vec<u64> = Vec::new();
    let first = windows.first().map_or(run_end_us, |w| w.start_us);
    let mut total = WindowReport::new("whole run", 0, 0, run_end_us);
    let mut groups = vec![WindowReport::new(BASELINE, 0, 0, first)];
    groups.extend(
        windows
            .iter()
            .map(|w| WindowReport::new(&w.name, w.start_us, w.heal_us, w.end_us)),
    );
    let mut verdicts: Vec<Vec<Verdict>> = vec![Vec::new(); groups.len()];
    let mut undeclared_violations = 0;
    let mut all = Vec::with_capacity(reads.len());
    for read in reads {
        let (Some(spec), Some(history)) = (keys.get(read.key), histories.get(read.key)) else {
            continue;
        };
        let g = window_of(windows, read.start_us).map_or(0, |i| i + 1);
        let kind = spec.kind.as_str();
        let observed = match &read.result {
            ReadResult::Failed(_) => {
                for r in [&mut total, &mut groups[g]] {
                    r.failed += 1;
                    if let Some(k) = r.kinds.get_mut(kind) {
                        k.failed += 1;
                    }
                }
                continue;
            }
            ReadResult::Ok(observed) => observed,
        };
        let verdict = history.check(read.start_us, read.end_us, observed);
        verdicts[g].push(verdict);
        all.push(verdict);
        near.reads += u64::from(read.near);
        if verdict != Verdict::Consistent {
            let behind_ms = example(spec, read, &verdict).behind_ms;
            let stale = matches!(verdict, Verdict::Stale(_));
            if read.near && stale {
                near.stale += 1;
                near_behind.push(behind_ms);
            }
            let allowed = stale
                && (declared
                    .iter()
                    .any(|d| d.covers(&groups[g].name) && behind_ms <= d.within_ms)
                    || (read.near && near_bound_ms.is_some_and(|b| behind_ms <= b)));
            undeclared_violations += u64::from(!allowed);
        }
        for r in [&mut total, &mut groups[g]] {
            r.checked += 1;
            let bad = verdict != Verdict::Consistent;
            if let Some(k) = r.kinds.get_mut(kind) {
                k.checked += 1;
                k.violations += u64::from(bad);
            }
            if !bad {
                continue;
            }
            r.violations += 1;
            let example = example(spec, read, &verdict);
            r.max_behind_ms = r.max_behind_ms.max(example.behind_ms);
            r.max_behind_versions = r.max_behind_versions.max(example.behind_versions);
            if r.examples.len() < EXAMPLES {
                r.examples.push(example);
            }
        }
    }
    finish(&mut total, &all);
    for (r, v) in groups.iter_mut().zip(&verdicts) {
        finish(r, v);
    }
    near_behind.sort_unstable();
    let at = |q: f64| {
        near_behind
            .get(((near_behind.len().saturating_sub(1)) as f64 * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    near.behind_p50_ms = at(0.5);
    near.behind_p99_ms = at(0.99);
    near.behind_max_ms = near_behind.last().copied().unwrap_or(0);
    Analysis {
        total,
        windows: groups,
        undeclared_violations,
        near,
    }
}

fn finish(r: &mut WindowReport, verdicts: &[Verdict]) {
    let answered = r.checked + r.failed;
    r.availability = if answered == 0 {
        1.0
    } else {
        r.checked as f64 / answered as f64
    };
    r.nines = HORIZONS_US
        .iter()
        .map(|&h| (h / 1000, nines_within(verdicts, h)))
        .collect();
}

fn example(spec: &KeySpec, read: &ReadRecord, verdict: &Verdict) -> Example {
    let mut e = Example {
        key: spec.name.clone(),
        instance: read.instance,
        at_ms: read.start_us / 1000,
        what: "stale",
        expected_seq: 0,
        got_seq: 0,
        behind_ms: 0,
        behind_versions: 0,
    };
    match verdict {
        Verdict::Consistent => {}
        Verdict::Stale(s) => {
            e.expected_seq = s.expected;
            e.got_seq = s.got;
            e.behind_ms = s.behind_us / 1000;
            e.behind_versions = s.versions;
        }
        Verdict::Unordered => e.what = "unordered",
        Verdict::Missing { expected } => {
            e.what = "missing";
            e.expected_seq = *expected;
        }
        Verdict::Phantom { got } => {
            e.what = "phantom";
            e.got_seq = *got;
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Outcome, WriteAttempt};

    #[test]
    fn reads_are_grouped_by_window_and_failures_are_not_violations() {
        let keys = vec![KeySpec {
            kind: Kind::Flag,
            name: "w/flags/f".to_owned(),
        }];
        let mut h = KeyHistory::default();
        h.push(WriteAttempt {
            seq: 1,
            sent_us: 10,
            outcome: Outcome::Acked {
                at_us: 20,
                version: 5,
            },
        });
        let windows = vec![Window {
            name: "redis-partition".to_owned(),
            start_us: 1_000,
            heal_us: 2_000,
            end_us: 3_000,
        }];
        let read = |start_us, result| ReadRecord {
            near: false,
            key: 0,
            instance: 0,
            start_us,
            end_us: start_us + 5,
            result,
        };
        let reads = vec![
            read(30, ReadResult::Ok(Observed::Register(1))),
            read(1_500, ReadResult::Ok(Observed::Register(0))),
            read(1_600, ReadResult::Failed(503)),
        ];
        let histories = [h];
        let a = analyse(&keys, &histories, &reads, &windows, 3_000, &[], None);
        assert_eq!(
            (a.total.checked, a.total.violations, a.total.failed),
            (2, 1, 1)
        );
        assert_eq!(a.windows[0].violations, 0);
        assert_eq!(a.windows[1].violations, 1);
        assert_eq!(a.windows[1].kinds["flag"].failed, 1);
        assert_eq!(a.windows[1].availability, 0.5);
        assert_eq!(a.windows[1].examples[0].expected_seq, 1);
        assert_eq!(a.undeclared_violations, 1);
        let declare = |within_ms| {
            vec![Declared {
                window: "redis-partition".to_owned(),
                within_ms,
                why: "a test".to_owned(),
            }]
        };
        let behind = a.windows[1].examples[0].behind_ms;
        let a = analyse(
            &keys,
            &histories,
            &reads,
            &windows,
            3_000,
            &declare(behind),
            None,
        );
        assert_eq!(a.total.violations, 1);
        assert_eq!(a.undeclared_violations, 0, "within the declared bound");
        let a = analyse(
            &keys,
            &histories,
            &reads,
            &windows,
            3_000,
            &declare(behind.saturating_sub(1)),
            None,
        );
        assert_eq!(a.undeclared_violations, 1, "staler than the bound allows");
        // A near cache's stale read is declared in any window, within its
        // bound, and counted apart; another tier's is not.
        let mut near_reads = reads.clone();
        near_reads[1].near = true;
        let a = analyse(
            &keys,
            &histories,
            &near_reads,
            &windows,
            3_000,
            &[],
            Some(behind),
        );
        assert_eq!(a.undeclared_violations, 0);
        assert_eq!((a.near.reads, a.near.stale), (1, 1));
        assert_eq!(a.near.behind_max_ms, behind);
        let a = analyse(
            &keys,
            &histories,
            &near_reads,
            &windows,
            3_000,
            &[],
            Some(behind.saturating_sub(1)),
        );
        assert_eq!(a.undeclared_violations, 1, "staler than the near bound");
        let a = analyse(
            &keys,
            &histories,
            &reads,
            &windows,
            3_000,
            &[],
            Some(behind),
        );
        assert_eq!(a.undeclared_violations, 1, "not a near read");
    }

    #[test]
    fn a_declaration_covers_its_fault_and_its_repetitions_only() {
        let d = Declared {
            window: "redis-partition".to_owned(),
            within_ms: 1,
            why: String::new(),
        };
        assert!(d.covers("redis-partition"));
        assert!(d.covers("redis-partition#2"));
        assert!(!d.covers("redis-partition-one-instance"));
        assert!(!d.covers("redis-partition-one-instance#1"));
        assert!(!d.covers("baseline"));
    }
}
