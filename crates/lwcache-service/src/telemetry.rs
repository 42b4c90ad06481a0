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

mod config;
mod http;
mod prometheus;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

pub use config::{OtlpTargets, TelemetryConfig};

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
        telemetry.subscriber()?.try_init()?;
        opentelemetry::global::set_meter_provider(telemetry.meter_provider.clone());
        if let Some(provider) = &telemetry.tracer_provider {
            opentelemetry::global::set_tracer_provider(provider.clone());
        }
        Ok(telemetry)
    }

    /// The subscriber [`install`](Self::install) sets: the log to stderr,
    /// filtered by `RUST_LOG`, and the OpenTelemetry layer when OTLP traces
    /// are on. Each layer has its own filter: `RUST_LOG=warn` quiets the log
    /// without losing the info-level spans that OTLP exports; with OTLP off
    /// no layer wants them, and the read path's spans are not even made.
    pub fn subscriber(
        &self,
    ) -> Result<impl tracing::Subscriber + Send + Sync + 'static, TelemetryError> {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log_filter)?;
        Ok(tracing_subscriber::registry()
            .with(
                self.otel_layer()
                    .map(|layer| layer.with_filter(tracing_subscriber::filter::LevelFilter::INFO)),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    // Colours for a terminal only: a log file or collector
                    // gets plain text.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_filter(filter),
            ))
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

    /// Flushes the exporters and shuts the providers down; what is recorded
    /// after is dropped. Once: a second call only logs that they are shut.
    pub fn shutdown(&self) {
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
