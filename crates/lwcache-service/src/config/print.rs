//! The resolved settings as a TOML configuration file, secrets masked:
//! what `lwcache serve --print-config` prints.
//!
//! Every setting is written, defaults included, under the file key that
//! sets it, so the text can be read back with `--config`. Passwords (in
//! URLs too) and tokens are written as `***`; a setting that is not set
//! appears as a comment.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::Settings;
use crate::backend::redact_url;

/// What a masked secret is written as.
pub const MASK: &str = "***";

/// A TOML basic string: JSON's escapes are all TOML escapes too.
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

struct Out(String);

impl Out {
    fn raw(&mut self, key: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{key} = {value}");
    }

    fn text(&mut self, key: &str, value: &str) {
        self.raw(key, quoted(value));
    }

    fn path(&mut self, key: &str, value: Option<&Path>, absent: &str) {
        match value {
            Some(p) => self.text(key, &p.display().to_string()),
            None => self.unset(key, absent),
        }
    }

    fn unset(&mut self, key: &str, why: &str) {
        let _ = writeln!(self.0, "# {key}: not set ({why})");
    }

    fn section(&mut self, title: &str) {
        let _ = writeln!(self.0, "\n# {title}");
    }
}

/// The settings as TOML, every secret masked.
pub fn to_toml(s: &Settings) -> String {
    let mut o = Out(String::from(
        "# lwcache: the resolved configuration (flags over environment over file)\n",
    ));
    o.text("listen", &s.listen.to_string());
    match &s.https {
        Some(h) => {
            o.path("tls_cert", Some(&h.cert), "");
            o.path("tls_key", Some(&h.key), "");
        }
        None => o.unset("tls_cert, tls_key", "plain HTTP"),
    }
    match &s.auth_token {
        Some(_) => o.text("auth_token", MASK),
        None => o.unset("auth_token", "/v1 is open"),
    }
    match &s.admin_token {
        Some(_) => o.text("admin_token", MASK),
        None => o.unset("admin_token", "the admin routes take the auth token"),
    }
    o.raw("max_body_bytes", s.max_body_bytes);
    o.raw("worker_threads", s.runtime.count());
    o.text("runtime", s.runtime.model().as_str());

    let b = &s.backends;
    o.section("backends");
    match (&b.redis_url, &b.redis_cluster) {
        (Some(url), _) => o.text("redis_url", &url.redacted()),
        (None, Some(urls)) => {
            let list: Vec<String> = urls
                .expose()
                .iter()
                .map(|u| quoted(&redact_url(u)))
                .collect();
            o.raw("redis_cluster", format!("[{}]", list.join(", ")));
        }
        (None, None) => o.unset("redis_url", "the in-memory cache"),
    }
    o.path(
        "redis_ca_file",
        b.redis_tls.ca_file.as_deref(),
        "the system's roots",
    );
    match &b.redis_tls.client {
        Some(c) => {
            o.path("redis_client_cert", Some(&c.cert), "");
            o.path("redis_client_key", Some(&c.key), "");
        }
        None => o.unset(
            "redis_client_cert, redis_client_key",
            "no client certificate",
        ),
    }
    match &b.neo4j {
        Some(n) => {
            o.text("neo4j_uri", &redact_url(&n.uri));
            match &n.user {
                Some(user) => o.text("neo4j_user", user),
                None => o.unset("neo4j_user", "the user neo4j"),
            }
            match n.password {
                Some(_) => o.text("neo4j_password", MASK),
                None => o.unset("neo4j_password", "an empty password"),
            }
            o.path("neo4j_ca_file", n.ca_file.as_deref(), "the system's roots");
        }
        None => o.unset("neo4j_uri", "the in-memory repository"),
    }
    let mode = match b.write_mode {
        super::WriteModes::Spec => "spec",
        super::WriteModes::Invalidate => "invalidate",
    };
    o.text("write_mode", mode);

    let p = &b.policy;
    o.section("cache policy (TTLs in ms, 0: none)");
    let ttl = |t: Option<Duration>| t.map_or(0, ms);
    o.raw("state_ttl_ms", ttl(p.state_ttl));
    o.raw("flags_ttl_ms", ttl(p.flags_ttl));
    o.raw("entity_ttl_ms", ttl(p.entity_ttl));
    o.raw("timeline_ttl_ms", ms(p.timeline_ttl));
    o.raw("timeline_top_k", p.timeline_top_k);
    o.raw("cache_timeout_ms", ms(p.cache_timeout));
    o.raw("source_timeout_ms", ms(p.source_timeout));
    o.raw("write_behind_capacity", p.write_behind_capacity);
    o.raw("warm_budget_keys", p.warm_budget.unwrap_or(0));
    o.raw("decode_memo_bytes", p.decode_memo_bytes);

    let r = &b.reads;
    o.section("fail-safe reads and stampede control");
    o.raw("fail_safe_grace_ms", ms(r.fail_safe_grace));
    o.raw("ttl_jitter_percent", r.ttl_jitter_percent);
    o.raw("negative_ttl_ms", r.negative_ttl.map_or(0, ms));
    o.raw("lease_wait_ms", ms(r.lease_wait));
    match r.near {
        Some(n) => {
            o.raw("near_cache_bytes", n.bytes);
            o.raw("near_max_lag_ms", ms(n.max_lag));
            o.raw("near_heartbeat_ms", ms(n.heartbeat));
        }
        None => {
            o.raw("near_cache_bytes", 0);
            o.unset(
                "near_max_lag_ms, near_heartbeat_ms",
                "the near cache is off",
            );
        }
    }

    o.section("the circuit breaker");
    o.raw("breaker_failures", b.breaker.failures);
    o.raw("breaker_open_ms", ms(b.breaker.open));

    // A table comes after every top-level key.
    let p = &s.privacy_given;
    let list = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|i| quoted(i)).collect();
        format!("[{}]", quoted.join(", "))
    };
    o.section("privacy: added to the built-in sensitive names, never replacing them");
    let _ = writeln!(o.0, "[privacy]");
    o.raw("sensitive_names", list(&p.sensitive_names));
    o.raw("sensitive_prefixes", list(&p.sensitive_prefixes));
    o.raw("private_event_kinds", list(&p.private_event_kinds));
    if !p.allow.is_empty() {
        let _ = writeln!(o.0, "\n[privacy.allow]");
        for (kind, fields) in &p.allow {
            o.raw(&quoted(kind), list(fields));
        }
    }
    o.0
}
