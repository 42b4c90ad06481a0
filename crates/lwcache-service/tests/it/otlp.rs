//! OTLP export: to a stub receiver when an endpoint is set, and nothing
//! built at all when it is not.

use lwcache_service::telemetry::{OtlpTargets, Telemetry, TelemetryConfig};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::workload::{self, Received, Stub};

#[tokio::test]
async fn metrics_and_traces_arrive_at_the_configured_endpoint() {
    let stub = Stub::start();
    let endpoint = format!("http://{}", stub.addr);
    let config = TelemetryConfig::from_vars([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "lwcache-otlp-test"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=harbor%20one"),
        // Only the flush at shutdown exports metrics.
        ("OTEL_METRIC_EXPORT_INTERVAL", "3600000"),
    ]);
    let t = Telemetry::build(&config).unwrap();
    assert_eq!(
        t.otlp(),
        Some(&OtlpTargets {
            traces: Some(format!("{endpoint}/v1/traces")),
            metrics: Some(format!("{endpoint}/v1/metrics")),
        })
    );
    let subscriber = tracing_subscriber::registry().with(t.otel_layer());
    let workload = {
        let _guard = tracing::subscriber::set_default(subscriber);
        workload::run(t.metrics(), 1).await
    };
    t.shutdown();

    let got = stub.collect(|got: &[Received]| {
        ["/v1/metrics", "/v1/traces"]
            .iter()
            .all(|p| got.iter().any(|r| r.path == *p))
    });
    for path in ["/v1/metrics", "/v1/traces"] {
        let r = got
            .iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("nothing posted to {path}: {got:?}"));
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/x-protobuf")
        );
        assert_eq!(
            r.headers.get("x-tenant").map(String::as_str),
            Some("harbor one")
        );
        // Protobuf keeps strings as UTF-8 bytes: the resource's service name
        // is in every export.
        assert!(contains(&r.body, b"lwcache-otlp-test"), "{path}");
    }
    // The SDK may split a signal over several requests: look at them all.
    let posted = |path: &str| -> Vec<u8> {
        got.iter()
            .filter(|r| r.path == path)
            .flat_map(|r| r.body.iter().copied())
            .collect()
    };
    assert!(contains(&posted("/v1/metrics"), b"cache_hits"));
    let traces = posted("/v1/traces");
    assert!(contains(&traces, b"lwcache.read"));
    assert!(contains(&traces, b"lwcache.write"));
    let world = workload.world.unwrap();
    assert!(contains(&traces, world.as_str().as_bytes()));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_built_to_export() {
    for vars in [
        vec![("OTEL_SERVICE_NAME", "quiet")],
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
            ("OTEL_SDK_DISABLED", "true"),
        ],
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
    ] {
        let config = TelemetryConfig::from_vars(vars.clone());
        assert_eq!(config.otlp_targets().unwrap(), None, "{vars:?}");
        let t = Telemetry::build(&config).unwrap();
        assert!(t.otlp().is_none(), "{vars:?}");
        assert!(t.tracer().is_none(), "no tracer provider: {vars:?}");
        assert!(
            t.otel_layer::<tracing_subscriber::Registry>().is_none(),
            "no span export layer: {vars:?}"
        );
        // Metrics still work, for /metrics.
        workload::run(t.metrics(), 1).await;
        assert!(t.prometheus_text().contains("cache_hits_total"));
        t.shutdown();
    }
}

#[test]
fn one_signal_can_be_turned_off() {
    let config = TelemetryConfig::from_vars([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        ("OTEL_TRACES_EXPORTER", "none"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://metrics:4318/custom/path",
        ),
    ]);
    assert_eq!(
        config.otlp_targets().unwrap(),
        Some(OtlpTargets {
            traces: None,
            metrics: Some("http://metrics:4318/custom/path".to_owned()),
        })
    );
    let config = TelemetryConfig::from_vars([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ]);
    let t = Telemetry::build(&config).unwrap();
    assert_eq!(
        t.otlp(),
        Some(&OtlpTargets {
            traces: Some("http://collector:4318/v1/traces".to_owned()),
            metrics: None,
        })
    );
    assert!(t.tracer().is_some());
}

/// The installed subscriber makes the read path's info spans only when a
/// layer wants them: with OTLP traces off and `RUST_LOG=warn`, none is;
/// with OTLP traces on, they are, whatever the log's filter.
#[tokio::test]
async fn info_spans_are_made_only_when_otlp_traces_want_them() {
    let off = Telemetry::build(&TelemetryConfig::from_vars([("RUST_LOG", "warn")])).unwrap();
    let disabled = tracing::subscriber::with_default(off.subscriber().unwrap(), || {
        tracing::info_span!("lwcache.read").is_disabled()
    });
    assert!(disabled, "an info span is made with nothing to take it");
    off.shutdown();

    let on = Telemetry::build(&TelemetryConfig::from_vars([
        ("RUST_LOG", "warn"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ]))
    .unwrap();
    let disabled = tracing::subscriber::with_default(on.subscriber().unwrap(), || {
        tracing::info_span!("lwcache.read").is_disabled()
    });
    assert!(!disabled, "OTLP traces are on: the span is exported");
    on.shutdown();
}
