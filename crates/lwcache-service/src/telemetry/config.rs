//! The telemetry settings: the standard OpenTelemetry variables, read,
//! checked and turned into OTLP targets, headers and a log filter.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use super::{DEFAULT_SERVICE_NAME, TelemetryError, http};

const DEFAULT_LOG_FILTER: &str = "info";

/// Telemetry settings, read from the standard OpenTelemetry variables.
///
/// Honoured: `OTEL_SDK_DISABLED`, `OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
/// `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_TRACES_EXPORTER`,
/// `OTEL_METRICS_EXPORTER`, `OTEL_METRIC_EXPORT_INTERVAL`, and `RUST_LOG`
/// for the stderr log. Values are checked by [`Telemetry::build`](super::Telemetry::build), which
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

    pub(super) fn millis(
        &self,
        name: &'static str,
        default: Duration,
    ) -> Result<Duration, TelemetryError> {
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
    pub(super) fn headers(&self) -> Result<HashMap<String, String>, TelemetryError> {
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

    pub(super) fn log_filter(&self) -> &str {
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
