//! The pure parts of the benchmarks: percentiles, the stale-read
//! bookkeeping, and the report rendered from fixed samples as JSON,
//! markdown and SVG. No timing is asserted.

mod freshness;

use std::time::Duration;

use lwcache_bench::date;
use lwcache_bench::render::{self, fmt_us};
use lwcache_bench::report::{
    ActivationRow, HitRatioRow, HttpRow, LatencyComparison, Measured, MemoryRow, NotMeasured,
    PlayersRow, Report, TargetCheck, ThroughputRow, players_target,
};
use lwcache_bench::stats::{Samples, Summary, percentile, ratio};

#[test]
fn percentiles_follow_the_nearest_rank_method() {
    let sorted: Vec<u64> = (1..=100).collect();
    assert_eq!(percentile(&sorted, 0.50), 50);
    assert_eq!(percentile(&sorted, 0.99), 99);
    assert_eq!(percentile(&sorted, 0.999), 100);
    assert_eq!(percentile(&sorted, 0.0), 1);
    assert_eq!(percentile(&sorted, 1.0), 100);
    assert_eq!(percentile(&[7], 0.5), 7);
    assert_eq!(percentile(&[], 0.5), 0);
    assert_eq!(percentile(&[10, 20, 30, 40], 0.5), 20);
    assert_eq!(percentile(&[10, 20, 30, 40], 0.51), 30);
}

#[test]
fn a_summary_sorts_its_samples_first() {
    // 1..=1000 µs, recorded in a scrambled order.
    let samples: Samples = (0..1_000u64)
        .map(|i| Duration::from_micros((i * 7_919) % 1_000 + 1))
        .collect();
    assert_eq!(samples.len(), 1_000);
    let s = samples.summary();
    assert_eq!(s.count, 1_000);
    assert_eq!(s.min_us, 1.0);
    assert_eq!(s.p50_us, 500.0);
    assert_eq!(s.p90_us, 900.0);
    assert_eq!(s.p99_us, 990.0);
    assert_eq!(s.p999_us, 999.0);
    assert_eq!(s.max_us, 1_000.0);
    assert!((s.mean_us - 500.5).abs() < 1e-9);
    assert_eq!(Samples::default().summary(), Summary::default());
}

#[test]
fn ratios_refuse_a_zero_baseline() {
    assert_eq!(ratio(3.0, 2.0), Some(1.5));
    assert_eq!(ratio(3.0, 0.0), None);
    assert_eq!(ratio(f64::NAN, 1.0), None);
}

#[test]
fn dates_are_utc_calendar_dates() {
    assert_eq!(date::utc(0), "1970-01-01 00:00 UTC");
    assert_eq!(date::utc(951_782_400), "2000-02-29 00:00 UTC");
    assert_eq!(
        date::utc(1_767_225_600 + 3_600 + 120),
        "2026-01-01 01:02 UTC"
    );
}

fn summary(p50: f64, p99: f64) -> Summary {
    Summary {
        count: 1_000,
        min_us: p50 / 2.0,
        p50_us: p50,
        p90_us: (p50 + p99) / 2.0,
        p99_us: p99,
        p999_us: p99 * 1.5,
        max_us: p99 * 2.0,
        mean_us: p50 * 1.1,
    }
}

fn fixed_report() -> Report {
    Report {
        mode: "quick".to_owned(),
        environment: vec![
            ("CPU".to_owned(), "Test CPU | 3 GHz".to_owned()),
            ("logical cores".to_owned(), "2".to_owned()),
            ("date".to_owned(), "2026-01-01 00:00 UTC".to_owned()),
        ],
        latency: vec![
            LatencyComparison {
                id: "read_hit_vs_redis_get".to_owned(),
                title: "cached read <Redis tier>".to_owned(),
                subject: Measured {
                    label: "CacheManager::entity & hit".to_owned(),
                    summary: summary(55.0, 210.0),
                },
                baseline: Measured {
                    label: "redis-rs GET".to_owned(),
                    summary: summary(50.0, 200.0),
                },
                note: "same key".to_owned(),
            },
            LatencyComparison {
                id: "read_hit_vs_source_read".to_owned(),
                title: "cached read vs Neo4j".to_owned(),
                subject: Measured {
                    label: "CacheManager::entity".to_owned(),
                    summary: summary(55.0, 210.0),
                },
                baseline: Measured {
                    label: "Neo4j read".to_owned(),
                    summary: summary(1_100.0, 4_400.0),
                },
                note: String::new(),
            },
        ],
        throughput: vec![ThroughputRow {
            topology: "standalone".to_owned(),
            concurrency: 16,
            requests: 20_000,
            lwcache_ops_per_s: 40_000.0,
            redis_rs_ops_per_s: 50_000.0,
            redis_benchmark_ops_per_s: Some(80_000.0),
            lwcache_fallbacks: 0,
        }],
        http: vec![HttpRow {
            near: false,
            worker_threads: 1,
            sharded: true,
            connections: 64,
            requests: 60_000,
            http_ops_per_s: 30_000.0,
            http_p50_us: 900.0,
            http_p99_us: 2_500.0,
            redis_benchmark_ops_per_s: Some(60_000.0),
            ceiling_ops_per_s: Some(45_000.0),
            ceiling_service_cpu_us: Some(6.5),
            ceiling_wrk_cpu_us: Some(5.0),
            service_cpu_us: Some(14.5),
            redis_cpu_us: Some(2.0),
            wrk_cpu_us: Some(6.0),
            redis_benchmark_cpu_us: Some(6.0),
            redis_benchmark_redis_cpu_us: Some(5.5),
        }],
        activation: vec![ActivationRow {
            source: "Neo4j 5.26".to_owned(),
            entities: 1_000,
            events_per_entity: 100,
            keys: 2_002,
            bytes: 1_336_320,
            activation: summary(300_000.0, 320_000.0),
            activation_round_trips: 10,
            image_read: summary(200_000.0, 210_000.0),
            naive: summary(600_000.0, 650_000.0),
            naive_round_trips: 2_002,
            pipelined: summary(30_000.0, 31_000.0),
        }],
        memory: Some(MemoryRow {
            entities: 150,
            what: "characters".to_owned(),
            lwcache_memory_usage: 220.0,
            json_memory_usage: 240.0,
            lwcache_value_bytes: 106.0,
            json_value_bytes: 112.0,
        }),
        hit_ratio: vec![HitRatioRow {
            source: "in-memory source".to_owned(),
            workload: "Zipf(1.0), 10% writes".to_owned(),
            turns: 10_000,
            warmup_turns: 1_000,
            reads: 9_000,
            cache_served: 8_100,
            hits: 8_000,
            reads_after_warmup: 8_000,
            cache_served_after_warmup: 7_600,
            writes: 1_000,
            fills_rejected: 12,
            fallbacks: 0,
        }],
        players: vec![
            players_row(1, 2_000, 1_900, 0),
            players_row(64, 2_000, 1_862, 0),
        ],
        targets: vec![
            TargetCheck {
                name: "overhead p50".to_owned(),
                goal: "≤ 15%".to_owned(),
                measured: "+10.0%".to_owned(),
                met: true,
                why: None,
            },
            TargetCheck {
                name: "p99".to_owned(),
                goal: "< 1 ms".to_owned(),
                measured: "1.20 ms".to_owned(),
                met: false,
                why: Some("scheduling tail".to_owned()),
            },
        ],
        not_measured: vec![NotMeasured {
            scenario: "redis-benchmark baseline".to_owned(),
            why: "redis-benchmark was not found".to_owned(),
        }],
        notes: vec!["interleaved blocks".to_owned()],
    }
}

fn players_row(players: usize, reads: u64, hits: u64, stale_reads: u64) -> PlayersRow {
    PlayersRow {
        source: "in-memory source".to_owned(),
        players,
        turns: 2_200,
        warmup_turns: 220,
        reads,
        hits,
        writes: 200,
        fills_rejected: players as u64,
        fallbacks: 0,
        stale_reads,
        misses_by_kind: vec![("timeline".to_owned(), reads - hits)],
        unwritten_key_misses: 0,
    }
}

#[test]
fn the_players_target_compares_the_most_players_with_the_fewest() {
    // 0.931 / 0.95 = 0.98: met.
    let met = players_target(&[
        players_row(1, 2_000, 1_900, 0),
        players_row(16, 2_000, 1_700, 0),
        players_row(64, 2_000, 1_862, 0),
    ])
    .unwrap();
    assert!(met.met, "{met:?}");
    assert_eq!(met.goal, "≥ 0.97, 0 stale reads");
    assert!(
        met.measured.starts_with("0.980 (93.1% vs 95.0%)"),
        "{}",
        met.measured
    );
    assert!(met.name.contains("64 players") && met.name.contains("in-memory source"));
    assert_eq!(met.why, None);

    // 0.912 / 0.95 = 0.96: missed, and said why.
    let low = players_target(&[
        players_row(1, 2_000, 1_900, 0),
        players_row(64, 2_000, 1_824, 0),
    ])
    .unwrap();
    assert!(!low.met);
    let why = low.why.unwrap();
    assert!(why.contains("64 fills rejected with 64 players"), "{why}");
    assert!(
        why.contains("timeline 176 (0 of keys never written)"),
        "{why}"
    );

    // A stale read at any level misses it, whatever the ratio.
    let stale = players_target(&[
        players_row(1, 2_000, 1_900, 0),
        players_row(16, 2_000, 1_900, 1),
        players_row(64, 2_000, 1_900, 0),
    ])
    .unwrap();
    assert!(!stale.met);
    assert!(
        stale.measured.ends_with("1 stale reads"),
        "{}",
        stale.measured
    );

    assert_eq!(players_target(&[]), None);
    assert_eq!(players_target(&[players_row(1, 0, 0, 0)]), None);
}

#[test]
fn the_json_report_carries_every_figure_and_ratio() {
    let json = render::to_json(&fixed_report());
    let text = serde_json::to_string_pretty(&json).unwrap();
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back["mode"], "quick");
    assert_eq!(back["environment"]["CPU"], "Test CPU | 3 GHz");
    let read = &back["latency"][0];
    assert_eq!(read["subject"]["latency"]["p50_us"], 55.0);
    assert_eq!(read["baseline"]["latency"]["p99_us"], 200.0);
    assert_eq!(read["ratio_p50"], 1.1);
    assert_eq!(read["ratio_p99"], 1.05);
    assert_eq!(back["latency"][1]["ratio_p50"], 0.05);
    assert_eq!(back["throughput"][0]["ratio_to_redis_benchmark"], 0.5);
    assert_eq!(back["throughput"][0]["ratio_to_redis_rs"], 0.8);
    assert_eq!(back["http"][0]["connections"], 64);
    assert_eq!(back["http"][0]["ratio_to_redis_benchmark"], 0.5);
    assert_eq!(back["http"][0]["ceiling_to_redis_benchmark"], 0.75);
    assert_eq!(back["http"][0]["service_cpu_us"], 14.5);
    assert_eq!(back["http"][0]["redis_benchmark_redis_cpu_us"], 5.5);
    assert_eq!(back["http"][0]["worker_threads"], 1);
    assert_eq!(back["http"][0]["runtime"], "sharded");
    // wrk 5 + service 6.5 (a /healthz request) + redis-server 2 (a read):
    // 2 cores serve at most 148,148 reads/s, 2.469× of redis-benchmark.
    assert_eq!(back["http"][0]["least_cpu_per_read_us"], 13.5);
    assert_eq!(back["http"][0]["cpu_bound_to_redis_benchmark"], 2.469);
    assert_eq!(back["activation"][0]["activation_round_trips"], 10);
    assert_eq!(back["activation"][0]["naive_round_trips"], 2_002);
    assert_eq!(back["memory"]["ratio"], 0.917);
    assert_eq!(back["hit_ratio"][0]["hit_ratio_overall"], 0.9);
    assert_eq!(back["hit_ratio"][0]["hit_ratio_after_warmup"], 0.95);
    assert_eq!(back["hit_ratio"][0]["fills_rejected"], 12);
    assert_eq!(back["players"][0]["hit_ratio"], 0.95);
    assert_eq!(back["players"][0]["hit_ratio_over_fewest_players"], 1.0);
    assert_eq!(back["players"][1]["players"], 64);
    assert_eq!(back["players"][1]["hit_ratio"], 0.931);
    assert_eq!(back["players"][1]["hit_ratio_over_fewest_players"], 0.98);
    assert_eq!(back["players"][1]["stale_reads"], 0);
    assert_eq!(back["players"][1]["fills_rejected"], 64);
    assert_eq!(back["players"][1]["misses_by_kind"]["timeline"], 138);
    assert_eq!(back["targets"][1]["met"], false);
    assert_eq!(back["targets"][1]["why"], "scheduling tail");
    assert_eq!(back["targets"][0]["why"], serde_json::Value::Null);
    assert_eq!(
        back["not_measured"][0]["scenario"],
        "redis-benchmark baseline"
    );
}

#[test]
fn the_markdown_page_has_a_table_row_per_figure() {
    let md = render::to_markdown(&fixed_report(), "target/bench/report.json");
    assert!(md.starts_with("# Benchmarks\n"));
    assert!(md.contains("`target/bench/report.json`"));
    assert!(md.contains(&format!("]({})", render::CHART_FILE)));
    // A pipe inside a value is escaped, so the table keeps its columns.
    assert!(md.contains("| CPU | Test CPU \\| 3 GHz |"));
    assert!(md.contains(
        "| cached read <Redis tier> | CacheManager::entity & hit | 55.0 µs | 210.0 µs | redis-rs GET | 50.0 µs | 200.0 µs | 1.10× | 1.05× | 1000 |"
    ));
    assert!(md.contains("| 16 | 20000 | 40,000 | 50,000 | 80,000 | 0.50× | 0.80× |"));
    assert!(md.contains("## The service's HTTP read path"));
    assert!(md.contains(
        "| off | sharded, 1 | 64 | 60000 | 30,000 | 900.0 µs | 2.50 ms | 60,000 | 0.50× | 45,000 | 0.75× |"
    ));
    assert!(
        md.contains(
            "| off | sharded, 1 | 64 | 5.0 µs | 6.5 µs | 6.0 µs | 14.5 µs | 2.0 µs | 13.5 µs | 2.47× | 6.0 µs | 5.5 µs |"
        ),
        "{md}"
    );
    assert!(md.contains("what 2 busy cores could serve"), "{md}");
    assert!(md.contains("| 2002 (1305 KiB) | 300.00 ms | 10 |"));
    assert!(md.contains("| 220 B | 240 B | 0.92× |"));
    assert!(md.contains("| 90.0% | 95.0% | 12 | 0 |"));
    assert!(md.contains("## Players in one world"));
    assert!(md.contains("after 220 warm-up turns"));
    assert!(
        md.contains("| in-memory source | 64 | 2200 | 2000 | 200 | 93.1% | 0.980 | 64 | 0 | 0 | timeline 138 | 0 |")
    );
    assert!(md.contains("| p99 | < 1 ms | 1.20 ms | **missed** | scheduling tail |"));
    assert!(md.contains("- redis-benchmark baseline: redis-benchmark was not found"));
    // Every row of a table has as many cells as its header.
    let mut columns = None;
    for line in md.lines() {
        if !line.starts_with('|') {
            columns = None;
            continue;
        }
        let pipes = line.matches('|').count() - line.matches("\\|").count();
        assert_eq!(*columns.get_or_insert(pipes), pipes, "{line}");
    }
}

#[test]
fn fallbacks_during_throughput_are_reported_not_hidden() {
    let mut report = fixed_report();
    let clean = render::to_markdown(&report, "target/bench/report.json");
    assert!(!clean.contains("fell back"), "no note without fallbacks");
    report.throughput[0].lwcache_fallbacks = 3;
    let md = render::to_markdown(&report, "target/bench/report.json");
    assert!(
        md.contains("- 16 tasks (standalone): 3 of 20000 lwcache reads fell back to the source"),
        "{md}"
    );
    let json = render::to_json(&report);
    assert_eq!(json["throughput"][0]["lwcache_fallbacks"], 3);
}

#[test]
fn the_svg_chart_is_well_formed_and_shows_every_bar() {
    let svg = render::to_svg(&fixed_report(), "quick mode & test");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_balanced(&svg);
    // Text is escaped: no raw `&` or `<` from the labels.
    assert!(svg.contains("cached read &lt;Redis tier&gt;"));
    assert!(svg.contains("CacheManager::entity &amp; hit"));
    assert!(svg.contains("quick mode &amp; test"));
    assert!(!svg.contains("<Redis"));
    // Two bars (p50 and p50..p99) per side, two sides per comparison.
    assert_eq!(svg.matches("<title>").count(), 2 * 2 * 2);
    for value in [
        "55.0 µs / 210.0 µs",
        "1.10 ms / 4.40 ms",
        "50.0 µs / 200.0 µs",
    ] {
        assert!(svg.contains(value), "{value} missing");
    }
    assert!(svg.contains("1 ms</text>"));
    assert!(svg.contains("NFR: cache access &lt; 1 ms"));
}

/// Checks that every element is closed, in order: the chart is XML.
fn assert_balanced(svg: &str) {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("an unterminated tag") + start;
        let tag = &rest[start + 1..end];
        assert!(!tag.contains('<'), "a tag inside a tag: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name), "closing {name}");
        } else if !tag.ends_with('/') {
            open.push(tag.split_whitespace().next().expect("a tag name"));
        }
        rest = &rest[end + 1..];
    }
    assert!(open.is_empty(), "left open: {open:?}");
}

#[test]
fn durations_pick_a_unit_that_fits() {
    assert_eq!(fmt_us(42.25), "42.2 µs");
    assert_eq!(fmt_us(1_500.0), "1.50 ms");
    assert_eq!(fmt_us(2_500_000.0), "2.50 s");
    assert_eq!(fmt_us(-1_500.0), "-1.50 ms");
}
