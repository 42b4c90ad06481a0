//! The stale-read bookkeeping of the players scenario, with integer clocks.

use lwcache_bench::freshness::Freshness;

#[test]
fn a_read_is_stale_only_against_writes_of_its_key_acknowledged_before_it() {
    let mut f: Freshness<&str, u32> = Freshness::new();
    assert!(f.is_empty());
    f.acknowledged("flags", 10, 5);
    // Started after the ack: older is stale, as old or newer is not.
    assert!(f.is_stale(&"flags", 11, 4));
    assert!(!f.is_stale(&"flags", 11, 5));
    assert!(!f.is_stale(&"flags", 11, 9));
    // Started at or before the ack: the write does not bind it.
    assert!(!f.is_stale(&"flags", 10, 1));
    assert!(!f.is_stale(&"flags", 3, 1));
    // Another key's writes never make a read stale, however new: an entry
    // keeps the version it was written at.
    f.acknowledged("entity:a", 12, 40);
    assert!(!f.is_stale(&"entity:b", 20, 1));
    assert!(f.is_stale(&"entity:a", 20, 39));
    assert_eq!(f.newest_before(&"entity:b", 20), None);
    assert!(f.was_written(&"entity:a") && !f.was_written(&"entity:b"));
    assert_eq!(f.len(), 2);
}

#[test]
fn the_newest_acknowledged_version_counts_whatever_the_order_of_acks() {
    let mut f: Freshness<&str, u32> = Freshness::new();
    // v8 acknowledged at t=20, then v7 at t=30 (two writers raced), then
    // v9 at t=40, noted out of time order.
    f.acknowledged("k", 20, 8);
    f.acknowledged("k", 40, 9);
    f.acknowledged("k", 30, 7);
    assert_eq!(f.newest_before(&"k", 20), None);
    assert_eq!(f.newest_before(&"k", 21), Some(8));
    // The later ack of an older version does not lower the bar.
    assert_eq!(f.newest_before(&"k", 35), Some(8));
    assert!(f.is_stale(&"k", 35, 7));
    assert!(!f.is_stale(&"k", 35, 8));
    assert_eq!(f.newest_before(&"k", 41), Some(9));
    assert!(f.is_stale(&"k", 41, 8));
    // An ack noted late, before the others in time, raises every later bar.
    f.acknowledged("k", 5, 12);
    assert_eq!(f.newest_before(&"k", 6), Some(12));
    assert_eq!(f.newest_before(&"k", 41), Some(12));
    assert!(f.is_stale(&"k", 41, 9));
    assert_eq!(f.len(), 4);
}
