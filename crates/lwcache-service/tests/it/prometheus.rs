//! `Telemetry::prometheus_text`: what `GET /metrics` returns.

use std::io::Write;
use std::process::{Command, Stdio};

use lwcache_otel::DURATION_BOUNDARIES;
use lwcache_service::telemetry::{Telemetry, TelemetryConfig};

use crate::support;

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
    let w = support::run(t.metrics(), hits_per_key).await;
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
    support::run(t.metrics(), 2).await;
    let text = t.prometheus_text();
    assert!(text.contains("cache_hits_total"), "{text}");

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
                "SKIPPED: promtool_accepts_the_text: promtool cannot run ({e}); install Debian's prometheus package"
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

#[test]
fn an_idle_service_exposes_only_its_target_info() {
    let text = telemetry().prometheus_text();
    assert!(text.starts_with("# HELP target_info"), "{text}");
    assert_eq!(
        text.lines().filter(|l| !l.starts_with('#')).count(),
        1,
        "{text}"
    );
}
