//! Telemetry setup: the OpenTelemetry SDK, its exporters and the tracing
//! subscriber, configured the OpenTelemetry way, from the environment.
//!
//! - Metrics: an SDK meter provider is always installed, read on demand by
//!   [`Telemetry::prometheus_text`] (what `GET /metrics` returns), and also
//!   pushed by OTLP when an endpoint is configured.
//! - Traces: the cache manager's `tracing` spans become OpenTelemetry spans
//!   only when OTLP is on; otherwise no tracer provider exists and spans cost
//!   what `tracing` alone costs.
//! - Logs: `tracing`'s fmt layer to stderr, filtered by `RUST_LOG`.
//!
//! OTLP speaks http/protobuf over a small blocking HTTP/1.1 client that needs
//! no async runtime: the SDK exports from threads of its own. It reaches
//! `http://` endpoints (a collector beside the service); TLS, when needed,
//! ends at that collector.
//!
//! [`Telemetry::build`] does all of this without touching any global state,
//! so tests can run side by side in one process; [`Telemetry::install`] adds
//! the global subscriber and providers, for the binary.

mod http;
mod prometheus;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use lwcache_core::MetricsSink;
use lwcache_otel::OtelMetrics;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, PeriodicReader, Pipeline, SdkMeterProvider, Temporality,
};
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The service name when neither `OTEL_SERVICE_NAME` nor a `service.name`
/// resource attribute says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "lwcache";

/// The `Content-Type` of [`Telemetry::prometheus_text`].
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus::CONTENT_TYPE;

/// The instrumentation scope of lwcache's meter and tracer.
pub const SCOPE: &str = "lwcache";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_LOG_FILTER: &str = "info";

/// Telemetry settings, read from the standard OpenTelemetry variables.
///
/// Honoured: `OTEL_SDK_DISABLED`, `OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
/// `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_TRACES_EXPORTER`,
/// `OTEL_METRICS_EXPORTER`, `OTEL_METRIC_EXPORT_INTERVAL`, and `RUST_LOG`
/// for the stderr log. Values are checked by [`Telemetry::build`], which
/// names the variable at fault.
#[derive(Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    vars: HashMap<String, String>,
}

impl fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Headers often carry credentials: show which variables are set,
        // never their values.
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("TelemetryConfig")
            .field("set", &names)
            .finish()
    }
}

/// Where OTLP sends each signal; `None` for a signal that is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpTargets {
    /// The URL traces are posted to, e.g. `http://127.0.0.1:4318/v1/traces`.
    pub traces: Option<String>,
    /// The URL metrics are posted to, e.g. `http://127.0.0.1:4318/v1/metrics`.
    pub metrics: Option<String>,
}

/// Whether an error about a variable may repeat its value.
#[derive(Debug, Clone, Copy)]
enum Shown {
    /// The value is safe to show.
    Value,
    /// The value may hold a credential.
    Hidden,
}

impl TelemetryConfig {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(std::env::vars())
    }

    /// Reads the given variables, as if they were the environment. Only the
    /// `OTEL_*` ones and `RUST_LOG` are kept.
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, _)| k.starts_with("OTEL_") || k == "RUST_LOG")
            .collect();
        TelemetryConfig { vars }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn sdk_disabled(&self) -> bool {
        self.get("OTEL_SDK_DISABLED")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The service name: `OTEL_SERVICE_NAME`, else `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES`, else [`DEFAULT_SERVICE_NAME`].
    pub fn service_name(&self) -> String {
        if let Some(name) = self.get("OTEL_SERVICE_NAME") {
            return name.to_owned();
        }
        self.resource_attributes()
            .ok()
            .and_then(|attrs| {
                attrs
                    .into_iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v)
            })
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned())
    }

    /// `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs separated by commas,
    /// values percent-decoded.
    pub fn resource_attributes(&self) -> Result<Vec<(String, String)>, TelemetryError> {
        self.key_values("OTEL_RESOURCE_ATTRIBUTES", Shown::Value)
    }

    /// Where OTLP sends traces and metrics, or `None` when OTLP is off: no
    /// endpoint configured, the SDK disabled, or both signals' exporters set
    /// to `none`.
    pub fn otlp_targets(&self) -> Result<Option<OtlpTargets>, TelemetryError> {
        if self.sdk_disabled() {
            return Ok(None);
        }
        if let Some(p) = self.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            && p != "http/protobuf"
        {
            return Err(TelemetryError::InvalidVariable {
                name: "OTEL_EXPORTER_OTLP_PROTOCOL",
                value: p.to_owned(),
                reason: "only http/protobuf is supported",
            });
        }
        let base = self.get("OTEL_EXPORTER_OTLP_ENDPOINT");
        let traces = self.signal_target(
            "OTEL_TRACES_EXPORTER",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            base,
            "v1/traces",
        )?;
        let metrics = self.signal_target(
            "OTEL_METRICS_EXPORTER",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            base,
            "v1/metrics",
        )?;
        Ok((traces.is_some() || metrics.is_some()).then_some(OtlpTargets { traces, metrics }))
    }

    /// One signal's URL: its own endpoint variable as is, else the base
    /// endpoint with the signal's path appended.
    fn signal_target(
        &self,
        exporter_var: &'static str,
        endpoint_var: &'static str,
        base: Option<&str>,
        path: &str,
    ) -> Result<Option<String>, TelemetryError> {
        match self.get(exporter_var) {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(TelemetryError::InvalidVariable {
                    name: exporter_var,
                    value: other.to_owned(),
                    reason: "only otlp and none are supported",
                });
            }
        }
        let (var, url) = match (self.get(endpoint_var), base) {
            (Some(url), _) => (endpoint_var, url.to_owned()),
            (None, Some(base)) => (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("{}/{path}", base.trim_end_matches('/')),
            ),
            (None, None) => return Ok(None),
        };
        http::check_url(&url).map_err(|reason| TelemetryError::InvalidVariable {
            name: var,
            value: url.clone(),
            reason,
        })?;
        Ok(Some(url))
    }

    fn millis(&self, name: &'static str, default: Duration) -> Result<Duration, TelemetryError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| TelemetryError::InvalidVariable {
                    name,
                    value: v.to_owned(),
                    reason: "expected a positive number of milliseconds",
                }),
        }
    }

    /// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs separated by commas,
    /// values percent-decoded.
    fn headers(&self) -> Result<HashMap<String, String>, TelemetryError> {
        // The value may hold a credential: errors never repeat it.
        Ok(self
            .key_values("OTEL_EXPORTER_OTLP_HEADERS", Shown::Hidden)?
            .into_iter()
            .collect())
    }

    /// The variable `name` in the OpenTelemetry list format: `key=value`
    /// pairs separated by commas, blanks around them ignored, keys not
    /// empty, values percent-decoded.
    fn key_values(
        &self,
        name: &'static str,
        shown: Shown,
    ) -> Result<Vec<(String, String)>, TelemetryError> {
        let Some(raw) = self.get(name) else {
            return Ok(Vec::new());
        };
        let invalid = |reason: &'static str| TelemetryError::InvalidVariable {
            name,
            value: match shown {
                Shown::Value => raw.to_owned(),
                Shown::Hidden => "(hidden)".to_owned(),
            },
            reason,
        };
        raw.split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| invalid("every entry must be key=value"))?;
                let k = k.trim();
                if k.is_empty() {
                    return Err(invalid("a key is empty"));
                }
                let v = percent_decode(v.trim())
                    .ok_or_else(|| invalid("a value is not valid percent-encoded UTF-8"))?;
                Ok((k.to_owned(), v))
            })
            .collect()
    }

    fn log_filter(&self) -> &str {
        self.get("RUST_LOG").unwrap_or(DEFAULT_LOG_FILTER)
    }
}

/// Decodes `%XX` escapes; `None` when an escape is malformed or the result
/// is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// A variable holds a value that cannot be used.
    #[error("{name}={value:?}: {reason}")]
    InvalidVariable {
        /// The variable.
        name: &'static str,
        /// Its value (hidden when it may hold a credential).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An OTLP exporter could not be built.
    #[error("cannot build the OTLP {signal} exporter: {source}")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// The exporter's error.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// `RUST_LOG` is not a valid filter.
    #[error("RUST_LOG is not a valid log filter: {0}")]
    LogFilter(#[from] tracing_subscriber::filter::ParseError),
    /// A global tracing subscriber was already installed.
    #[error("a global tracing subscriber is already installed: {0}")]
    SubscriberInstalled(#[from] tracing_subscriber::util::TryInitError),
}

/// A [`ManualReader`] the provider owns and [`Telemetry`] reads: the SDK
/// takes its readers by value.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// The installed telemetry: the meter provider, the tracer provider when
/// OTLP traces are on, and the metrics sink for the cache manager.
pub struct Telemetry {
    meter_provider: SdkMeterProvider,
    tracer_provider: Option<SdkTracerProvider>,
    reader: SharedReader,
    metrics: Arc<OtelMetrics>,
    targets: Option<OtlpTargets>,
    log_filter: String,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("otlp", &self.targets)
            .finish_non_exhaustive()
    }
}

/// Points an OTLP exporter builder of either signal at `url`: http/protobuf
/// over lwcache's own client, with the configured timeout and headers.
fn otlp_http<B: WithExportConfig + WithHttpConfig>(
    builder: B,
    client: &http::Client,
    url: &str,
    timeout: Duration,
    headers: &HashMap<String, String>,
) -> B {
    builder
        .with_http_client(client.clone())
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(timeout)
        .with_headers(headers.clone())
}

impl Telemetry {
    /// Installs the SDK meter provider (always, for /metrics), the OTLP
    /// exporters when an endpoint is configured, and the tracing subscriber
    /// (fmt to stderr + tracing-opentelemetry layer only when OTLP is on).
    ///
    /// Call it once, from the binary: it sets the process's global
    /// subscriber, meter provider and tracer provider.
    pub fn install(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        let telemetry = Telemetry::build(config)?;
        let filter = tracing_subscriber::EnvFilter::try_new(&telemetry.log_filter)?;
        // Each layer has its own filter: `RUST_LOG=warn` quiets the log
        // without losing the info-level spans that OTLP exports.
        tracing_subscriber::registry()
            .with(
                telemetry
                    .otel_layer()
                    .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init()?;
        opentelemetry::global::set_meter_provider(telemetry.meter_provider.clone());
        if let Some(provider) = &telemetry.tracer_provider {
            opentelemetry::global::set_tracer_provider(provider.clone());
        }
        Ok(telemetry)
    }

    /// Builds the providers and exporters [`install`](Self::install) would,
    /// without setting any global state: no subscriber, no global provider.
    pub fn build(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        let targets = config.otlp_targets()?;
        let log_filter = config.log_filter().to_owned();
        // Checked here too, so a bad RUST_LOG fails `build` as it fails
        // `install`.
        tracing_subscriber::EnvFilter::try_new(&log_filter)?;
        let mut attributes: Vec<KeyValue> = config
            .resource_attributes()?
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        attributes.retain(|kv| kv.key.as_str() != "service.name");
        let resource = Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(attributes)
            .with_service_name(config.service_name())
            .build();

        let reader = SharedReader(Arc::new(ManualReader::builder().build()));
        let mut meters = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(reader.clone());
        let mut tracer_provider = None;
        if let Some(targets) = &targets {
            let timeout = config.millis("OTEL_EXPORTER_OTLP_TIMEOUT", DEFAULT_TIMEOUT)?;
            let headers = config.headers()?;
            let client = http::Client::new(timeout);
            if let Some(url) = &targets.metrics {
                let interval =
                    config.millis("OTEL_METRIC_EXPORT_INTERVAL", DEFAULT_METRIC_INTERVAL)?;
                let exporter = otlp_http(
                    opentelemetry_otlp::MetricExporter::builder().with_http(),
                    &client,
                    url,
                    timeout,
                    &headers,
                )
                .build()
                .map_err(|source| TelemetryError::Exporter {
                    signal: "metrics",
                    source,
                })?;
                meters = meters.with_reader(
                    PeriodicReader::builder(exporter)
                        .with_interval(interval)
                        .build(),
                );
            }
            if let Some(url) = &targets.traces {
                let exporter = otlp_http(
                    opentelemetry_otlp::SpanExporter::builder().with_http(),
                    &client,
                    url,
                    timeout,
                    &headers,
                )
                .build()
                .map_err(|source| TelemetryError::Exporter {
                    signal: "traces",
                    source,
                })?;
                tracer_provider = Some(
                    SdkTracerProvider::builder()
                        .with_resource(resource)
                        .with_batch_exporter(exporter)
                        .build(),
                );
            }
        }
        let meter_provider = meters.build();
        let metrics = Arc::new(OtelMetrics::new(&meter_provider.meter(SCOPE)));
        Ok(Telemetry {
            meter_provider,
            tracer_provider,
            reader,
            metrics,
            targets,
            log_filter,
        })
    }

    /// The sink to hand to the cache manager's builder.
    pub fn metrics(&self) -> Arc<dyn MetricsSink> {
        self.metrics.clone()
    }

    /// The current metrics in the Prometheus text exposition format (what
    /// GET /metrics returns).
    pub fn prometheus_text(&self) -> String {
        let mut rm = ResourceMetrics::default();
        match self.reader.collect(&mut rm) {
            Ok(()) => prometheus::encode(&rm),
            Err(e) => {
                // A scrape after shutdown: nothing to show, and no reason to
                // fail the caller.
                tracing::warn!(error = %e, "metrics collection failed");
                String::new()
            }
        }
    }

    /// Where OTLP sends each signal, or `None` when OTLP is off.
    pub fn otlp(&self) -> Option<&OtlpTargets> {
        self.targets.as_ref()
    }

    /// The SDK meter provider, for meters of other components.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meter_provider
    }

    /// lwcache's tracer, when OTLP traces are on.
    pub fn tracer(&self) -> Option<SdkTracer> {
        self.tracer_provider.as_ref().map(|p| p.tracer(SCOPE))
    }

    /// The layer that turns `tracing` spans into OpenTelemetry spans, when
    /// OTLP traces are on; `None` (a layer that does nothing) otherwise.
    pub fn otel_layer<S>(&self) -> Option<tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        self.tracer()
            .map(|tracer| tracing_opentelemetry::layer().with_tracer(tracer))
    }

    /// Exports what is buffered now, without shutting down.
    pub fn flush(&self) {
        if let Some(provider) = &self.tracer_provider
            && let Err(e) = provider.force_flush()
        {
            tracing::warn!(error = %e, "flushing traces failed");
        }
        if let Err(e) = self.meter_provider.force_flush() {
            tracing::warn!(error = %e, "flushing metrics failed");
        }
    }

    /// Flushes the exporters and shuts the providers down.
    pub fn shutdown(self) {
        if let Some(provider) = &self.tracer_provider
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "shutting down traces failed");
        }
        if let Err(e) = self.meter_provider.shutdown() {
            tracing::warn!(error = %e, "shutting down metrics failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_follows_the_spec() {
        assert_eq!(percent_decode("a%20b%2Cc").as_deref(), Some("a b,c"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }
}
