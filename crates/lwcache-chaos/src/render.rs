//! The report as a whole, and its markdown page.

use std::fmt::Write as _;

use serde::Serialize;

use crate::report::{Analysis, WindowReport};

/// Write attempts, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WriteCounts {
    /// Sent.
    pub attempted: u64,
    /// Acknowledged.
    pub acked: u64,
    /// Ended in an error or a timeout.
    pub unknown: u64,
}

/// The cache compared with the source once everything was healed and the
/// writers had stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Convergence {
    /// Whether every cached key equalled the source within the bound.
    pub converged: bool,
    /// When it did, in ms after the comparisons began.
    pub after_ms: Option<u64>,
    /// The bound, in ms.
    pub bound_ms: u64,
    /// Cached keys compared in the last comparison.
    pub keys_compared: u64,
    /// What differed in the last comparison (the first few).
    pub mismatches: Vec<String>,
    /// How many keys differed in the last comparison.
    pub mismatch_count: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `quick` or `full`.
    pub mode: String,
    /// The workload's seed.
    pub seed: u64,
    /// `standalone` or `cluster`.
    pub topology: String,
    /// Service processes.
    pub instances: usize,
    /// Wall time of the workload, in ms.
    pub duration_ms: u64,
    /// Writes.
    pub writes: WriteCounts,
    /// Reads sent.
    pub reads: u64,
    /// The checked reads.
    pub analysis: Analysis,
    /// The final comparison.
    pub convergence: Convergence,
    /// Anything the reader should know about the run.
    pub notes: Vec<String>,
    /// No undeclared violation and converged.
    pub passed: bool,
}

impl Report {
    /// Whether the run passes: no violation outside declared windows, and
    /// the cache converged.
    pub fn judge(&mut self) {
        self.passed = self.analysis.undeclared_violations == 0 && self.convergence.converged;
    }
}

/// The markdown page.
pub fn to_markdown(r: &Report) -> String {
    let mut s = String::new();
    let t = &r.analysis.total;
    let _ = writeln!(s, "# lwcache consistency check ({} mode)\n", r.mode);
    let _ = writeln!(
        s,
        "**{}**: {} violations in {} checked reads ({} undeclared); cache {} the source.\n",
        if r.passed { "PASSED" } else { "FAILED" },
        t.violations,
        t.checked,
        r.analysis.undeclared_violations,
        if r.convergence.converged {
            "converged with"
        } else {
            "did not converge with"
        },
    );
    let _ = writeln!(
        s,
        "Seed {}, topology {}, {} service instances, workload {:.1} s. Writes: {} sent, {} acknowledged, {} unknown. Reads: {} sent, {} checked, {} failed (availability {:.4}). Stalest read: {} ms, {} versions behind.\n",
        r.seed,
        r.topology,
        r.instances,
        r.duration_ms as f64 / 1000.0,
        r.writes.attempted,
        r.writes.acked,
        r.writes.unknown,
        r.reads,
        t.checked,
        t.failed,
        t.availability,
        t.max_behind_ms,
        t.max_behind_versions,
    );
    let near = &r.analysis.near;
    if let Some(bound) = near.bound_ms {
        let _ = writeln!(
            s,
            "Near caches on (max_lag {bound} ms): {} checked reads answered near, {} of them behind an acknowledged write, by p50 {} ms, p99 {} ms, max {} ms (the broadcast delay as readers saw it; declared up to {bound} ms in every window).\n",
            near.reads, near.stale, near.behind_p50_ms, near.behind_p99_ms, near.behind_max_ms,
        );
    }
    s.push_str("## Per fault window\n\n");
    s.push_str("A window runs from the fault's start until the next fault starts, so the recovery after the heal counts as the fault's.\n\n");
    s.push_str("| window | start s | heal s | checked | violations | state | flag | entity | timeline | failed | availability | max behind ms | max behind versions | converged after heal |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for w in &r.analysis.windows {
        row(&mut s, w);
    }
    row(&mut s, t);
    s.push_str("\n## Consistent within T\n\n");
    for w in r.analysis.windows.iter().chain(std::iter::once(t)) {
        let _ = writeln!(s, "- {}", w.nines_line());
    }
    s.push_str("\n## Examples\n\n");
    for w in &r.analysis.windows {
        for e in &w.examples {
            let _ = writeln!(
                s,
                "- {}: `{}` on instance {} at {} ms: {} (expected seq ≥ {}, got {}; {} ms, {} versions behind)",
                w.name,
                e.key,
                e.instance,
                e.at_ms,
                e.what,
                e.expected_seq,
                e.got_seq,
                e.behind_ms,
                e.behind_versions
            );
        }
    }
    s.push_str("\n## Not converged after a heal\n\n");
    let mut none = true;
    for w in &r.analysis.windows {
        for d in &w.still_different {
            none = false;
            let _ = writeln!(s, "- {}: {d}", w.name);
        }
    }
    if none {
        s.push_str("Every window converged within its bound.\n");
    }
    let c = &r.convergence;
    s.push_str("\n## Convergence at the end\n\n");
    let _ = writeln!(
        s,
        "{} cached keys compared with Neo4j; {} (bound {} ms); {} differ.",
        c.keys_compared,
        c.after_ms.map_or_else(
            || "not equal within the bound".to_owned(),
            |ms| format!("equal after {ms} ms")
        ),
        c.bound_ms,
        c.mismatch_count
    );
    for m in &c.mismatches {
        let _ = writeln!(s, "- {m}");
    }
    if !r.notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

fn row(s: &mut String, w: &WindowReport) {
    let kind = |k: &str| w.kinds.get(k).map_or(0, |c| c.violations);
    let _ = writeln!(
        s,
        "| {} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {} | {} | {} |",
        w.name,
        w.start_ms as f64 / 1000.0,
        w.heal_ms as f64 / 1000.0,
        w.checked,
        w.violations,
        kind("state"),
        kind("flag"),
        kind("entity"),
        kind("timeline"),
        w.failed,
        w.availability,
        w.max_behind_ms,
        w.max_behind_versions,
        w.converged_after_heal_ms
            .map_or_else(|| "—".to_owned(), |ms| format!("{ms} ms")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyHistory, Kind, Observed, Outcome, Window, WriteAttempt};
    use crate::report::{KeySpec, ReadRecord, ReadResult, analyse};

    fn report(got: u64) -> Report {
        let keys = vec![KeySpec {
            kind: Kind::Entity,
            name: "w/characters/c0".to_owned(),
        }];
        let mut h = KeyHistory::default();
        h.push(WriteAttempt {
            seq: 1,
            sent_us: 0,
            outcome: Outcome::Acked {
                at_us: 10,
                version: 2,
            },
        });
        let windows = vec![Window {
            name: "redis-partition".to_owned(),
            start_us: 100,
            heal_us: 200,
            end_us: 300,
        }];
        let reads = vec![ReadRecord {
            near: false,
            key: 0,
            instance: 1,
            start_us: 150,
            end_us: 160,
            result: ReadResult::Ok(Observed::Register(got)),
        }];
        let mut r = Report {
            mode: "quick".to_owned(),
            seed: 1,
            topology: "standalone".to_owned(),
            instances: 2,
            duration_ms: 1,
            writes: WriteCounts::default(),
            reads: 1,
            analysis: analyse(&keys, &[h], &reads, &windows, 300, &[], None),
            convergence: Convergence {
                converged: true,
                ..Convergence::default()
            },
            notes: Vec::new(),
            passed: false,
        };
        r.judge();
        r
    }

    #[test]
    fn a_violation_fails_the_run_and_is_shown_with_its_window() {
        let r = report(0);
        assert!(!r.passed);
        let page = to_markdown(&r);
        assert!(page.contains("**FAILED**: 1 violations in 1 checked reads"));
        assert!(page.contains("`w/characters/c0` on instance 1"));
        assert!(page.contains("redis-partition: 0.00 nines consistent within 0 ms"));
    }

    #[test]
    fn a_clean_converged_run_passes() {
        let r = report(1);
        assert!(r.passed);
        assert!(to_markdown(&r).contains("**PASSED**"));
        let mut unconverged = r.clone();
        unconverged.convergence.converged = false;
        unconverged.judge();
        assert!(!unconverged.passed);
    }
}
