//! The read check, the timeline check and the nines, without servers.

use super::*;

fn acked(seq: u64, sent_us: u64, at_us: u64) -> WriteAttempt {
    WriteAttempt {
        seq,
        sent_us,
        outcome: Outcome::Acked {
            at_us,
            version: seq * 10,
        },
    }
}

fn unknown(seq: u64, sent_us: u64) -> WriteAttempt {
    WriteAttempt {
        seq,
        sent_us,
        outcome: Outcome::Unknown,
    }
}

/// Writes 1..=3 acknowledged at 100, 200, 300; write 4 unknown, sent at 350.
fn history() -> KeyHistory {
    let mut h = KeyHistory::default();
    assert!(h.push(acked(1, 50, 100)));
    assert!(h.push(acked(2, 150, 200)));
    assert!(h.push(acked(3, 250, 300)));
    assert!(h.push(unknown(4, 350)));
    h
}

fn timeline(seqs: &[u64], limit: usize) -> Observed {
    Observed::Timeline {
        seqs: seqs.to_vec(),
        newest_first: true,
        limit,
    }
}

#[test]
fn attempts_must_come_in_sequence() {
    let mut h = history();
    assert!(!h.push(unknown(6, 400)));
    assert!(!h.push(unknown(4, 400)));
    assert_eq!(h.next_seq(), 5);
}

#[test]
fn a_read_after_an_ack_must_see_that_write_or_a_later_one() {
    let h = history();
    // Started at 250: write 2 (acked at 200) is the newest acknowledged.
    assert_eq!(
        h.check(250, 260, &Observed::Register(2)),
        Verdict::Consistent
    );
    assert_eq!(
        h.check(250, 400, &Observed::Register(3)),
        Verdict::Consistent
    );
    // Write 4 was never acknowledged, but it was sent before the read ended.
    assert_eq!(
        h.check(360, 400, &Observed::Register(4)),
        Verdict::Consistent
    );
    assert_eq!(
        h.check(250, 260, &Observed::Register(1)),
        Verdict::Stale(Staleness {
            expected: 2,
            got: 1,
            behind_us: 50,
            versions: 1,
        })
    );
    // Before any write: the initial value, 0 versions behind 3.
    assert_eq!(
        h.check(1_000, 1_010, &Observed::Register(0)),
        Verdict::Stale(Staleness {
            expected: 3,
            got: 0,
            behind_us: 900,
            versions: 3,
        })
    );
}

#[test]
fn a_read_concurrent_with_an_ack_may_return_the_older_value() {
    let h = history();
    // Write 2 was acknowledged at 200; a read that started at 200 is not
    // after it.
    assert_eq!(
        h.check(200, 210, &Observed::Register(1)),
        Verdict::Consistent
    );
    assert_eq!(h.check(10, 20, &Observed::Register(0)), Verdict::Consistent);
}

#[test]
fn an_unknown_write_never_raises_what_must_be_read() {
    let h = history();
    assert_eq!(
        h.check(10_000, 10_010, &Observed::Register(3)),
        Verdict::Consistent
    );
}

#[test]
fn a_value_no_write_had_carried_yet_is_a_phantom() {
    let h = history();
    assert_eq!(
        h.check(300, 340, &Observed::Register(4)),
        Verdict::Phantom { got: 4 }
    );
    assert_eq!(
        h.check(300, 9_999, &Observed::Register(5)),
        Verdict::Phantom { got: 5 }
    );
}

#[test]
fn a_timeline_must_list_the_newest_acknowledged_event() {
    let h = history();
    assert_eq!(
        h.check(310, 320, &timeline(&[3, 2, 1], 20)),
        Verdict::Consistent
    );
    // The newest is later than expected but 3 is missing: a hole.
    assert_eq!(
        h.check(360, 400, &timeline(&[4, 2, 1], 20)),
        Verdict::Missing { expected: 3 }
    );
    // Behind: 2 is the newest listed.
    assert_eq!(
        h.check(310, 320, &timeline(&[2, 1], 20)),
        Verdict::Stale(Staleness {
            expected: 3,
            got: 2,
            behind_us: 10,
            versions: 1,
        })
    );
    assert!(matches!(
        h.check(310, 320, &timeline(&[], 20)),
        Verdict::Stale(_)
    ));
}

#[test]
fn a_full_list_of_newer_events_may_leave_the_expected_one_out() {
    let h = history();
    // Started at 210 (expects 2); the list of 2 holds only newer events.
    assert_eq!(
        h.check(210, 400, &timeline(&[4, 3], 2)),
        Verdict::Consistent
    );
    // Not full: 2 should be there.
    assert_eq!(
        h.check(210, 400, &timeline(&[4, 3], 3)),
        Verdict::Missing { expected: 2 }
    );
}

#[test]
fn a_timeline_must_be_newest_first() {
    let h = history();
    let unordered = Observed::Timeline {
        seqs: vec![1, 3, 2],
        newest_first: false,
        limit: 20,
    };
    assert_eq!(h.check(310, 320, &unordered), Verdict::Unordered);
}

#[test]
fn nines_count_bad_reads_and_claim_only_what_was_checked() {
    assert_eq!(Nines::of(1_000, 1), Nines::Exact(3.0));
    assert_eq!(Nines::of(100, 10), Nines::Exact(1.0));
    assert_eq!(Nines::of(10_000, 0), Nines::AtLeast(4.0));
    assert_eq!(Nines::of(0, 0), Nines::NoData);
    assert_eq!(Nines::of(5, 5), Nines::Exact(0.0));
    assert_eq!(Nines::of(1_000, 1).render(), "3.00");
    assert_eq!(Nines::of(10_000, 0).render(), "≥ 4.00");
}

#[test]
fn nines_within_a_horizon_forgive_only_short_staleness() {
    let stale = |behind_us| {
        Verdict::Stale(Staleness {
            expected: 2,
            got: 1,
            behind_us,
            versions: 1,
        })
    };
    let mut verdicts = vec![Verdict::Consistent; 98];
    verdicts.push(stale(500));
    verdicts.push(stale(5_000_000));
    assert_eq!(nines_within(&verdicts, 0), Nines::of(100, 2));
    assert_eq!(nines_within(&verdicts, 1_000), Nines::of(100, 1));
    assert_eq!(nines_within(&verdicts, 10_000_000), Nines::of(100, 0));
    // A hole or a wrong order is wrong at any horizon.
    verdicts.push(Verdict::Unordered);
    assert_eq!(nines_within(&verdicts, u64::MAX - 1), Nines::of(101, 1));
}

#[test]
fn reads_fall_in_the_window_of_the_last_fault_started() {
    let w = |name: &str, start_us, end_us| Window {
        name: name.to_owned(),
        start_us,
        heal_us: start_us + 1,
        end_us,
    };
    let windows = [w("a", 100, 200), w("b", 200, 300)];
    assert_eq!(window_of(&windows, 50), None);
    assert_eq!(window_of(&windows, 100), Some(0));
    assert_eq!(window_of(&windows, 199), Some(0));
    assert_eq!(window_of(&windows, 200), Some(1));
    assert_eq!(window_of(&windows, 300), None);
}
