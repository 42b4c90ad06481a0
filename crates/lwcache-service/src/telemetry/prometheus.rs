//! The Prometheus text exposition format (version 0.0.4) of collected SDK
//! metrics, following OpenTelemetry's rules for Prometheus:
//!
//! - names keep `[a-zA-Z0-9_:]`, anything else becomes `_`; the unit is
//!   appended (`s` → `_seconds`, `By` → `_bytes`; `{annotations}` vanish);
//!   monotonic sums are counters and end in `_total`;
//! - histograms have cumulative `_bucket{le=..}` series ending in `+Inf`,
//!   then `_sum` and `_count`;
//! - label values escape `\`, `"` and newlines; HELP escapes `\` and
//!   newlines;
//! - the resource's attributes are one `target_info` series.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};

/// The content type of what [`encode`] returns.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family: its HELP, TYPE and samples.
struct Family {
    help: String,
    kind: &'static str,
    samples: String,
}

/// Encodes every metric of `rm`. Families come in name order.
pub(crate) fn encode(rm: &ResourceMetrics) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for scope in rm.scope_metrics() {
        for metric in scope.metrics() {
            add_metric(&mut families, metric);
        }
    }
    let mut out = String::new();
    let resource: Vec<KeyValue> = rm
        .resource()
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    if !resource.is_empty() {
        out.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\n");
        out.push_str("target_info");
        write_labels(&mut out, resource.iter(), None);
        out.push_str(" 1\n");
    }
    for (name, family) in families {
        if family.samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {}", escape_help(&family.help));
        let _ = writeln!(out, "# TYPE {name} {}", family.kind);
        out.push_str(&family.samples);
    }
    out
}

fn add_metric(families: &mut BTreeMap<String, Family>, metric: &Metric) {
    match metric.data() {
        AggregatedMetrics::F64(data) => add_data(families, metric, data),
        AggregatedMetrics::U64(data) => add_data(families, metric, data),
        AggregatedMetrics::I64(data) => add_data(families, metric, data),
    }
}

fn add_data<T: Sample>(
    families: &mut BTreeMap<String, Family>,
    metric: &Metric,
    data: &MetricData<T>,
) {
    let base = metric_name(metric.name(), metric.unit());
    let (name, kind) = match data {
        MetricData::Sum(sum) if sum.is_monotonic() => {
            let name = if base.ends_with("_total") {
                base
            } else {
                format!("{base}_total")
            };
            (name, "counter")
        }
        MetricData::Sum(_) | MetricData::Gauge(_) => (base, "gauge"),
        MetricData::Histogram(_) => (base, "histogram"),
        // Not produced by lwcache's instruments; the text format has no
        // exact equivalent.
        MetricData::ExponentialHistogram(_) => return,
    };
    let family = families.entry(name.clone()).or_insert_with(|| Family {
        help: metric.description().to_owned(),
        kind,
        samples: String::new(),
    });
    if family.kind != kind {
        // Two instruments map to one name with different types: the text
        // format cannot hold both, keep the first.
        return;
    }
    let out = &mut family.samples;
    match data {
        MetricData::Sum(sum) => {
            for point in sum.data_points() {
                write_sample(out, &name, point.attributes(), None, point.value());
            }
        }
        MetricData::Gauge(gauge) => {
            for point in gauge.data_points() {
                write_sample(out, &name, point.attributes(), None, point.value());
            }
        }
        MetricData::Histogram(histogram) => {
            let bucket = format!("{name}_bucket");
            for point in histogram.data_points() {
                let mut cumulative = 0u64;
                for (bound, count) in point.bounds().zip(point.bucket_counts()) {
                    cumulative += count;
                    let le = format_f64(bound);
                    write_sample(out, &bucket, point.attributes(), Some(&le), cumulative);
                }
                write_sample(
                    out,
                    &bucket,
                    point.attributes(),
                    Some("+Inf"),
                    point.count(),
                );
                write_sample(
                    out,
                    &format!("{name}_sum"),
                    point.attributes(),
                    None,
                    point.sum(),
                );
                write_sample(
                    out,
                    &format!("{name}_count"),
                    point.attributes(),
                    None,
                    point.count(),
                );
            }
        }
        MetricData::ExponentialHistogram(_) => {}
    }
}

/// A sample value, written as Prometheus reads it.
trait Sample: Copy {
    fn write(self, out: &mut String);
}

impl Sample for u64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Sample for i64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Sample for f64 {
    fn write(self, out: &mut String) {
        out.push_str(&format_f64(self));
    }
}

fn format_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

fn write_sample<'a>(
    out: &mut String,
    name: &str,
    attributes: impl Iterator<Item = &'a KeyValue>,
    le: Option<&str>,
    value: impl Sample,
) {
    out.push_str(name);
    write_labels(out, attributes, le);
    out.push(' ');
    value.write(out);
    out.push('\n');
}

/// Writes `{k="v",...}` with keys sanitized and sorted (then `le`), or
/// nothing when there are no labels. Keys that sanitize alike have their values joined
/// with `;`.
fn write_labels<'a>(
    out: &mut String,
    attributes: impl Iterator<Item = &'a KeyValue>,
    le: Option<&str>,
) {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for kv in attributes {
        let key = label_name(kv.key.as_str());
        let value = kv.value.as_str();
        labels
            .entry(key)
            .and_modify(|v| {
                v.push(';');
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    // `le` goes last, where readers of the text look for it.
    let le = le.map(|le| ("le".to_owned(), le.to_owned()));
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    for (i, (k, v)) in labels
        .iter()
        .chain(le.as_ref().map(|(k, v)| (k, v)))
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(out, v);
        out.push('"');
    }
    out.push('}');
}

fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`: anything else becomes `_`.
fn metric_name(name: &str, unit: &str) -> String {
    let mut out = sanitize(name, true);
    let suffix = unit_suffix(unit);
    if !suffix.is_empty() && !out.ends_with(&format!("_{suffix}")) {
        out.push('_');
        out.push_str(&suffix);
    }
    out
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: anything else becomes `_`.
fn label_name(name: &str) -> String {
    sanitize(name, false)
}

fn sanitize(name: &str, colons: bool) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The suffix a UCUM unit adds to a name; empty for none.
fn unit_suffix(unit: &str) -> String {
    // `{request}` and the like annotate a count: no unit.
    let unit = unit.trim();
    if unit.is_empty() || unit == "1" || (unit.starts_with('{') && unit.ends_with('}')) {
        return String::new();
    }
    let word = match unit {
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "min" => "minutes",
        "h" => "hours",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "%" => "percent",
        other => return sanitize(other, false).trim_matches('_').to_owned(),
    };
    word.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_their_unit_and_lose_invalid_characters() {
        assert_eq!(
            metric_name("cache_stage_duration", "s"),
            "cache_stage_duration_seconds"
        );
        assert_eq!(metric_name("cache_hits", "{read}"), "cache_hits");
        assert_eq!(
            metric_name("http.server.duration", "s"),
            "http_server_duration_seconds"
        );
        assert_eq!(metric_name("size_bytes", "By"), "size_bytes");
        assert_eq!(metric_name("9lives", ""), "_9lives");
        assert_eq!(label_name("service.name"), "service_name");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        let kv = [KeyValue::new("v", "a\\b\"c\nd")];
        write_labels(&mut out, kv.iter(), None);
        assert_eq!(out, r#"{v="a\\b\"c\nd"}"#);
    }

    #[test]
    fn floats_use_prometheus_spellings() {
        assert_eq!(format_f64(f64::INFINITY), "+Inf");
        assert_eq!(format_f64(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_f64(f64::NAN), "NaN");
        assert_eq!(format_f64(0.00025), "0.00025");
        assert_eq!(format_f64(1.0), "1");
    }
}
