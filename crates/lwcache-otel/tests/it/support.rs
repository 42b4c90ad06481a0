//! Reading what the SDK's in-memory exporters hold, as plain maps.

use std::collections::BTreeMap;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::trace::SpanData;

/// A series' attributes, sorted: `[("key_kind", "state"), ...]`.
pub(crate) type Labels = Vec<(String, String)>;

/// Sorted `(key, value)` pairs of some attributes.
pub(crate) fn labels<'a>(attrs: impl Iterator<Item = &'a KeyValue>) -> Labels {
    let mut out: Labels = attrs
        .map(|kv| (kv.key.as_str().to_owned(), kv.value.as_str().into_owned()))
        .collect();
    out.sort();
    out
}

/// Labels from literal pairs.
pub(crate) fn l(pairs: &[(&str, &str)]) -> Labels {
    let mut out: Labels = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.sort();
    out
}

/// What one metric holds, by series.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Series {
    /// A monotonic `u64` sum.
    Counter(BTreeMap<Labels, u64>),
    /// A `u64` gauge.
    Gauge(BTreeMap<Labels, u64>),
    /// An `f64` histogram: the count of each series, and its bounds.
    Histogram(BTreeMap<Labels, u64>, Vec<f64>),
}

/// Every metric of one collection, by name, with its unit.
pub(crate) fn metrics(rm: &ResourceMetrics) -> BTreeMap<String, (String, Series)> {
    let mut out = BTreeMap::new();
    for scope in rm.scope_metrics() {
        for metric in scope.metrics() {
            let series = match metric.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                    assert!(sum.is_monotonic(), "{} is a counter", metric.name());
                    Series::Counter(
                        sum.data_points()
                            .map(|p| (labels(p.attributes()), p.value()))
                            .collect(),
                    )
                }
                AggregatedMetrics::U64(MetricData::Gauge(gauge)) => Series::Gauge(
                    gauge
                        .data_points()
                        .map(|p| (labels(p.attributes()), p.value()))
                        .collect(),
                ),
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    let mut bounds = Vec::new();
                    let counts = h
                        .data_points()
                        .map(|p| {
                            bounds = p.bounds().collect();
                            assert_eq!(
                                p.bucket_counts().sum::<u64>(),
                                p.count(),
                                "buckets add up to the count"
                            );
                            (labels(p.attributes()), p.count())
                        })
                        .collect();
                    Series::Histogram(counts, bounds)
                }
                other => panic!("unexpected data for {}: {other:?}", metric.name()),
            };
            out.insert(metric.name().to_owned(), (metric.unit().to_owned(), series));
        }
    }
    out
}

/// Every attribute value of a span and of its events, as text.
pub(crate) fn all_attribute_text(span: &SpanData) -> Vec<String> {
    span.attributes
        .iter()
        .chain(span.events.iter().flat_map(|e| e.attributes.iter()))
        .map(|kv| format!("{}={}", kv.key, kv.value.as_str()))
        .chain(span.events.iter().map(|e| e.name.to_string()))
        .chain(std::iter::once(span.name.to_string()))
        .collect()
}

/// A span's attribute, as text.
pub(crate) fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}
