//! Configuration from the standard variables, and the errors that name
//! what is wrong.

use lwcache_service::telemetry::{
    DEFAULT_SERVICE_NAME, Telemetry, TelemetryConfig, TelemetryError,
};

fn build_error(vars: &[(&str, &str)]) -> TelemetryError {
    Telemetry::build(&TelemetryConfig::from_vars(vars.iter().copied())).unwrap_err()
}

#[test]
fn the_service_name_follows_the_conventions() {
    let name =
        |vars: &[(&str, &str)]| TelemetryConfig::from_vars(vars.iter().copied()).service_name();
    assert_eq!(name(&[]), DEFAULT_SERVICE_NAME);
    assert_eq!(
        name(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,a=b")]),
        "from-attrs"
    );
    assert_eq!(
        name(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
            ("OTEL_SERVICE_NAME", "from-name"),
        ]),
        "from-name",
        "OTEL_SERVICE_NAME wins"
    );
}

#[test]
fn resource_attributes_are_decoded() {
    let config = TelemetryConfig::from_vars([(
        "OTEL_RESOURCE_ATTRIBUTES",
        " region = eu%2Dwest ,, note=a%3Db ",
    )]);
    assert_eq!(
        config.resource_attributes().unwrap(),
        vec![
            ("region".to_owned(), "eu-west".to_owned()),
            ("note".to_owned(), "a=b".to_owned()),
        ]
    );
}

#[test]
fn unusable_values_are_refused_by_name() {
    let cases: [(&[(&str, &str)], &str); 8] = [
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
            ],
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_TRACES_EXPORTER", "zipkin"),
            ],
            "OTEL_TRACES_EXPORTER",
        ),
        (
            &[("OTEL_RESOURCE_ATTRIBUTES", "novalue")],
            "OTEL_RESOURCE_ATTRIBUTES",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%ZZsecret",
                ),
            ],
            "OTEL_EXPORTER_OTLP_HEADERS",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "=secret"),
            ],
            "OTEL_EXPORTER_OTLP_HEADERS",
        ),
    ];
    for (vars, variable) in cases {
        let e = build_error(vars);
        assert!(
            matches!(&e, TelemetryError::InvalidVariable { name, .. } if *name == variable),
            "{vars:?}: {e:?}"
        );
        assert!(e.to_string().contains(variable), "{e}");
        assert!(
            !e.to_string().contains("secret"),
            "credentials stay out: {e}"
        );
    }
    assert!(matches!(
        build_error(&[("RUST_LOG", "lwcache=notalevel")]),
        TelemetryError::LogFilter(_)
    ));
}

#[test]
fn debug_output_hides_values() {
    let config = TelemetryConfig::from_vars([
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer secret-token",
        ),
        ("HOME", "/root"),
    ]);
    let shown = format!("{config:?}");
    assert!(shown.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{shown}");
    assert!(!shown.contains("secret-token"), "{shown}");
    assert!(
        !shown.contains("HOME"),
        "only OTEL_* and RUST_LOG are kept: {shown}"
    );
}

#[test]
fn install_sets_the_global_subscriber_once() {
    let config = TelemetryConfig::from_vars([("RUST_LOG", "warn")]);
    let t = Telemetry::install(&config).unwrap();
    assert!(matches!(
        Telemetry::install(&config),
        Err(TelemetryError::SubscriberInstalled(_))
    ));
    t.shutdown();
}
