//! `Telemetry::prometheus_text`: what `GET /metrics` returns.

use std::io::Write;
use std::process::{Command, Stdio};

use lwcache_otel::DURATION_BOUNDARIES;
use lwcache_service::telemetry::{Telemetry, TelemetryConfig};

use crate::workload;

fn telemetry() -> Telemetry {
    Telemetry::build(&TelemetryConfig::from_vars([
        ("OTEL_SERVICE_NAME", "lwcache-prom-test"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test,team=a%2C%22b%22",
        ),
    ]))
    .unwrap()
}

/// The value of the sample written exactly as `series`, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn samples_match_a_scripted_workload() {
    let t = telemetry();
    let hits_per_key = 4;
    let w = workload::run(t.metrics(), hits_per_key).await;
    let text = t.prometheus_text();

    for (kind, n) in &w.hits {
        let series = format!("cache_hits_total{{key_kind=\"{kind}\"}}");
        assert_eq!(sample(&text, &series), Some(*n as f64), "{series}\n{text}");
    }
    for (kind, n) in &w.misses {
        let series = format!("cache_misses_total{{key_kind=\"{kind}\"}}");
        assert_eq!(sample(&text, &series), Some(*n as f64), "{series}\n{text}");
    }
    for ((kind, cause), n) in &w.invalidations {
        let series = format!("invalidations_total{{cause=\"{cause}\",key_kind=\"{kind}\"}}");
        assert_eq!(sample(&text, &series), Some(*n as f64), "{series}\n{text}");
    }
    for (kind, n) in &w.cache_reads {
        let labels = format!("key_kind=\"{kind}\",stage=\"cache_read\"");
        let count = format!("cache_stage_duration_seconds_count{{{labels}}}");
        assert_eq!(sample(&text, &count), Some(*n as f64), "{count}\n{text}");
        let inf = format!("cache_stage_duration_seconds_bucket{{{labels},le=\"+Inf\"}}");
        assert_eq!(sample(&text, &inf), Some(*n as f64), "{inf}");
        // Cumulative: each bucket holds at least the one before it.
        let mut last = 0.0;
        for bound in DURATION_BOUNDARIES {
            let bucket = format!("cache_stage_duration_seconds_bucket{{{labels},le=\"{bound}\"}}");
            let v = sample(&text, &bucket).unwrap_or_else(|| panic!("{bucket}\n{text}"));
            assert!(v >= last && v <= *n as f64, "{bucket} = {v}");
            last = v;
        }
        let sum = format!("cache_stage_duration_seconds_sum{{{labels}}}");
        assert!(sample(&text, &sum).is_some_and(|s| s >= 0.0), "{sum}");
    }
    for (name, kind) in [
        ("cache_hits_total", "counter"),
        ("cache_misses_total", "counter"),
        ("invalidations_total", "counter"),
        ("cache_stage_duration_seconds", "histogram"),
        ("target_info", "gauge"),
    ] {
        assert!(
            text.contains(&format!("\n# TYPE {name} {kind}\n")),
            "{name}\n{text}"
        );
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
    }
    // Resource attributes: decoded from OTEL_RESOURCE_ATTRIBUTES, escaped
    // for the text format.
    let target = text
        .lines()
        .find(|l| l.starts_with("target_info{"))
        .unwrap();
    for label in [
        r#"service_name="lwcache-prom-test""#,
        r#"deployment_environment="test""#,
        r#"team="a,\"b\"""#,
    ] {
        assert!(target.contains(label), "{label} in {target}");
    }
    // No world id, key or content in any label.
    let world = w.world.unwrap();
    assert!(!text.contains(world.as_str()), "{text}");
}

#[tokio::test]
async fn promtool_accepts_the_text() {
    let t = telemetry();
    workload::run(t.metrics(), 2).await;
    let text = t.prometheus_text();
    assert!(text.contains("cache_hits_total"), "{text}");

    promtool_check(&text);
}

/// Runs `promtool check metrics` on `text` and fails on any complaint.
/// Skips loudly when promtool cannot run, unless servers are required.
pub(crate) fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var("LWCACHE_REQUIRE_SERVERS").as_deref() == Ok("1") => {
            panic!("promtool is required (LWCACHE_REQUIRE_SERVERS=1) but cannot run: {e}")
        }
        Err(e) => {
            eprintln!(
                "SKIPPED: promtool check: promtool cannot run ({e}); install Debian's prometheus package"
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {said}\n{text}");
    assert_eq!(said.trim(), "", "promtool found problems\n{text}");
}

/// The counters and gauges `docs/metrics.md` lists: their Prometheus
/// names and attributes.
fn documented() -> Vec<(String, Vec<String>)> {
    let doc = include_str!("../../../../docs/metrics.md");
    let ticked = |cell: &str| -> Vec<String> {
        // Backticked words outside parentheses: `to` (`closed`, ...) is `to`.
        let mut depth = 0usize;
        let mut out = Vec::new();
        for (i, part) in cell.split('`').enumerate() {
            if i % 2 == 1 {
                if depth == 0 {
                    out.push(part.to_owned());
                }
            } else {
                depth += part.matches('(').count();
                depth -= part.matches(')').count().min(depth);
            }
        }
        out
    };
    let mut series = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 7 {
            continue; // another table: the variables
        }
        let (name_cell, kind, attrs) = (cells[1], cells[2], cells[4]);
        if kind != "counter" && kind != "gauge" {
            continue;
        }
        let names: Vec<String> = name_cell
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        let name = names.last().unwrap().clone();
        series.push((name, ticked(attrs)));
    }
    assert!(series.len() >= 20, "the table was read: {series:?}");
    series
}

/// How many values each documented attribute takes.
fn values(attr: &str) -> usize {
    match attr {
        "key_kind" => lwcache_domain::KeyKind::ALL.len(),
        "cause" => lwcache_domain::InvalidationCause::ALL.len(),
        "result" => 2,
        "to" => 3,
        "operation" => lwcache_otel::AdminOperation::ALL.len(),
        other => panic!("an attribute the test does not know: {other}"),
    }
}

/// Every sample of `name`, with its value.
fn samples<'a>(text: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series, value.parse().unwrap())
        })
        .collect()
}

/// Checks that every documented series of `text` is there, at 0 unless
/// `moved` names it; answers how many were checked.
fn every_series_at_zero(text: &str, skip: &[&str], moved: &[&str]) -> usize {
    let mut checked = 0;
    for (name, attrs) in documented() {
        if skip.iter().any(|s| name.starts_with(s)) {
            continue;
        }
        let found = samples(text, &name);
        let expected: usize = attrs.iter().map(|a| values(a)).product();
        assert_eq!(found.len(), expected, "{name} {attrs:?}: {found:?}\n{text}");
        if !moved.contains(&name.as_str()) {
            for (series, value) in &found {
                assert_eq!(*value, 0.0, "{series}");
            }
        }
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        checked += found.len();
    }
    checked
}

#[test]
fn an_idle_telemetry_exposes_every_documented_series_at_zero() {
    let text = telemetry().prometheus_text();
    assert!(text.starts_with("# HELP target_info"), "{text}");
    // The admin counter is the service's, not the cache manager's.
    let checked = every_series_at_zero(&text, &["admin_"], &[]);
    assert!(checked > 100, "{checked}");
    // No histogram sample before a measurement.
    assert!(
        !text.contains("cache_stage_duration_seconds_count"),
        "{text}"
    );
    promtool_check(&text);
}

#[tokio::test]
async fn a_fresh_service_exports_every_documented_series_before_any_request() {
    let s = crate::support::Server::start(&[]);
    let text = s.get("/metrics").await.expect(200, None).text;
    // The start warmed the demo world: the one counter that moved.
    let checked = every_series_at_zero(&text, &[], &["warm_count_total"]);
    assert!(checked > 100, "{checked}");
    assert!(samples(&text, "warm_count_total")[0].1 > 0.0, "{text}");
    promtool_check(&text);
}
