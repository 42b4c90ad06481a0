//! What `/readyz` answers: the service's state, from its backends' health
//! and the cache's circuit breaker, decided in one place ([`Readiness::of`]).
//!
//! The answer's JSON:
//!
//! ```json
//! { "status": "ready" | "degraded" | "unavailable",
//!   "serving": "cache_and_source" | "source" | "cache" | "nothing",
//!   "reason": null | "cache_unreachable" | "breaker_open" | "cache_catching_up"
//!             | "source_unreachable" | "cache_and_source_unreachable",
//!   "cache":  { "backend": "...", "ok": true | false, "error": "...", "breaker": "closed" | "half_open" | "open",
//!               "eviction": { "ok": true | false | null, "warnings": ["..."], "nodes": [...] } },
//!   "source": { "backend": "...", "ok": true | false, "error": "..." } }
//! ```
//!
//! `status` is what a load balancer needs (200 unless `unavailable`);
//! `serving` says what answers reads, and `reason` why the service is not
//! `ready`. With the source down and the cache answering, cached reads are
//! still served (and entries past their TTL as fail-safe answers) while
//! writes and misses fail: `degraded`, `serving: "cache"`.
//!
//! On Redis, `cache.eviction` says whether its memory settings may lose
//! keys the protocol keeps ([`EvictionCheck`]): a warning, not a state, so
//! it changes neither `status` nor the HTTP status.

use std::sync::Arc;

use axum::http::StatusCode;
use lwcache_core::{BreakerState, CacheError, SourceError};
use lwcache_redis::{Eviction, NodeMemory, RedisConfig, ServerProbe};
use serde_json::{Value as JsonValue, json};

/// What the backends said, as the manager saw them.
#[derive(Debug, Clone)]
pub struct Health {
    /// The cache store's ping.
    pub cache: Result<(), CacheError>,
    /// The circuit breaker around the cache store, after that ping.
    pub breaker: BreakerState,
    /// The source's ping.
    pub source: Result<(), SourceError>,
    /// Whether the manager owes the cache what failed calls left undone
    /// ([`lwcache_core::CacheManager::in_trouble`]).
    pub trouble: bool,
}

/// Why the service serves, but not in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Degradation {
    /// The cache store does not answer: reads are served by the source.
    CacheUnreachable,
    /// The breaker around the cache store is open (or probing): cache calls
    /// fail at once and reads are served by the source.
    BreakerOpen,
    /// The cache answers and the breaker is closed, but what failed calls
    /// left undone is still being made (owed steps, a drop): reads are
    /// served by the source until it is.
    CatchingUp,
    /// The source does not answer, the cache does: cached reads are served
    /// (past their TTL as fail-safe answers, marked stale); misses and
    /// writes fail.
    SourceUnreachable,
}

/// The service's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Both backends answer.
    Ready,
    /// Reads and writes are served, in a lesser way.
    Degraded(Degradation),
    /// Nothing can be served: neither the source nor the cache answers.
    Unavailable,
}

impl Readiness {
    /// The one rule: with the source down, the service is degraded to
    /// cached reads while the cache answers and unavailable otherwise; with
    /// the source up, a breaker not closed or a cache that does not answer
    /// makes it degraded, serving from the source.
    pub fn of(health: &Health) -> Readiness {
        let cache_answers = health.cache.is_ok() && health.breaker == BreakerState::Closed;
        if health.source.is_err() {
            return if cache_answers {
                Readiness::Degraded(Degradation::SourceUnreachable)
            } else {
                Readiness::Unavailable
            };
        }
        if health.breaker != BreakerState::Closed {
            return Readiness::Degraded(Degradation::BreakerOpen);
        }
        if health.cache.is_err() {
            return Readiness::Degraded(Degradation::CacheUnreachable);
        }
        if health.trouble {
            return Readiness::Degraded(Degradation::CatchingUp);
        }
        Readiness::Ready
    }

    /// The HTTP status: 200 while anything is served, 503 otherwise.
    pub fn http_status(self) -> StatusCode {
        match self {
            Readiness::Ready | Readiness::Degraded(_) => StatusCode::OK,
            Readiness::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// `ready`, `degraded` or `unavailable`.
    pub fn status(self) -> &'static str {
        match self {
            Readiness::Ready => "ready",
            Readiness::Degraded(_) => "degraded",
            Readiness::Unavailable => "unavailable",
        }
    }

    /// What serves reads: `cache_and_source`, `source`, `cache` or
    /// `nothing`.
    pub fn serving(self) -> &'static str {
        match self {
            Readiness::Ready => "cache_and_source",
            Readiness::Degraded(
                Degradation::CacheUnreachable | Degradation::BreakerOpen | Degradation::CatchingUp,
            ) => "source",
            Readiness::Degraded(Degradation::SourceUnreachable) => "cache",
            Readiness::Unavailable => "nothing",
        }
    }

    /// Why the service is not ready, if it is not.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Readiness::Ready => None,
            Readiness::Degraded(Degradation::CacheUnreachable) => Some("cache_unreachable"),
            Readiness::Degraded(Degradation::BreakerOpen) => Some("breaker_open"),
            Readiness::Degraded(Degradation::CatchingUp) => Some("cache_catching_up"),
            Readiness::Degraded(Degradation::SourceUnreachable) => Some("source_unreachable"),
            Readiness::Unavailable => Some("cache_and_source_unreachable"),
        }
    }

    /// The body of `/readyz`, naming each backend.
    pub fn body(self, health: &Health, cache_backend: &str, source_backend: &str) -> JsonValue {
        let part = |backend: &str, error: Option<String>| match error {
            None => json!({ "backend": backend, "ok": true }),
            Some(e) => json!({ "backend": backend, "ok": false, "error": e }),
        };
        let mut cache = part(
            cache_backend,
            health.cache.as_ref().err().map(ToString::to_string),
        );
        cache["breaker"] = json!(health.breaker.as_str());
        json!({
            "status": self.status(),
            "serving": self.serving(),
            "reason": self.reason(),
            "cache": cache,
            "source": part(source_backend, health.source.as_ref().err().map(ToString::to_string)),
        })
    }
}

/// Redis's eviction policy and memory use, read at start (into the log)
/// and on every `/readyz` (into `cache.eviction`).
#[derive(Debug, Clone)]
pub struct EvictionCheck(Arc<ServerProbe>);

impl EvictionCheck {
    /// A check of the Redis server or Cluster `config` names.
    pub fn new(config: &RedisConfig) -> Self {
        Self(Arc::new(ServerProbe::new(config)))
    }

    /// Asks the server(s); `cache.eviction`'s JSON.
    pub async fn json(&self) -> JsonValue {
        eviction_json(&self.0.memory().await)
    }

    /// Asks the server(s) and says in the log what may lose keys, what
    /// could not be read, or that the settings are safe.
    pub async fn log(&self) {
        match self.0.memory().await {
            Err(e) => {
                tracing::info!(error = %e, "Redis's eviction policy could not be read now; /readyz reads it again");
            }
            Ok(nodes) => {
                for n in &nodes {
                    if let Some(refusal) = &n.config_refused {
                        tracing::warn!(node = %n.node, %refusal, "CONFIG GET maxmemory-policy is refused (ACL); the policy is read from INFO memory");
                    }
                    match n.eviction() {
                        Eviction::Safe => tracing::info!(
                            node = %n.node,
                            policy = n.policy.as_deref().unwrap_or(""),
                            "Redis's eviction policy keeps what the protocol needs"
                        ),
                        other => {
                            tracing::warn!(node = %n.node, warning = other.as_str(), "{other}")
                        }
                    }
                }
            }
        }
    }
}

/// `cache.eviction`: `ok` is true when every node is safe, false when one
/// may lose keys or is nearly full (each said in `warnings`), null when
/// the settings could not be read.
pub fn eviction_json(nodes: &Result<Vec<NodeMemory>, CacheError>) -> JsonValue {
    let nodes = match nodes {
        Err(e) => return json!({ "ok": null, "error": e.to_string() }),
        Ok(nodes) => nodes,
    };
    let mut warnings = Vec::new();
    let mut unknown = false;
    let shown: Vec<JsonValue> = nodes
        .iter()
        .map(|n| {
            let verdict = n.eviction();
            match &verdict {
                Eviction::Safe => {}
                Eviction::NotVisible => unknown = true,
                other => warnings.push(format!("{}: {other}", n.node)),
            }
            let mut node = json!({
                "node": n.node,
                "policy": n.policy,
                "used_memory": n.used_memory,
                "maxmemory": n.maxmemory,
                "verdict": verdict.as_str(),
            });
            if let Some(refusal) = &n.config_refused {
                node["config_refused"] = json!(refusal);
            }
            node
        })
        .collect();
    let ok = if !warnings.is_empty() {
        json!(false)
    } else if unknown || nodes.is_empty() {
        JsonValue::Null
    } else {
        json!(true)
    };
    json!({ "ok": ok, "warnings": warnings, "nodes": shown })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(cache: bool, breaker: BreakerState, source: bool) -> Health {
        Health {
            trouble: false,
            cache: if cache {
                Ok(())
            } else {
                Err(CacheError::Unavailable("down".into()))
            },
            breaker,
            source: if source {
                Ok(())
            } else {
                Err(SourceError::Unavailable("down".into()))
            },
        }
    }

    #[test]
    fn owed_work_keeps_reads_on_the_source_and_says_so() {
        let mut h = health(true, BreakerState::Closed, true);
        h.trouble = true;
        let r = Readiness::of(&h);
        assert_eq!(r, Readiness::Degraded(Degradation::CatchingUp));
        assert_eq!(
            (r.status(), r.serving(), r.reason()),
            ("degraded", "source", Some("cache_catching_up"))
        );
        assert_eq!(r.http_status(), StatusCode::OK);
        // The source down decides first, as without owed work.
        h.source = Err(SourceError::Unavailable("down".into()));
        assert_eq!(
            Readiness::of(&h),
            Readiness::Degraded(Degradation::SourceUnreachable)
        );
    }

    #[test]
    fn each_state_follows_from_the_backends() {
        use BreakerState::{Closed, HalfOpen, Open};
        let cases = [
            (true, Closed, true, Readiness::Ready),
            (
                false,
                Closed,
                true,
                Readiness::Degraded(Degradation::CacheUnreachable),
            ),
            (
                false,
                Open,
                true,
                Readiness::Degraded(Degradation::BreakerOpen),
            ),
            (
                true,
                HalfOpen,
                true,
                Readiness::Degraded(Degradation::BreakerOpen),
            ),
            (
                true,
                Closed,
                false,
                Readiness::Degraded(Degradation::SourceUnreachable),
            ),
            (false, Closed, false, Readiness::Unavailable),
            (true, Open, false, Readiness::Unavailable),
            (false, Open, false, Readiness::Unavailable),
        ];
        for (cache, breaker, source, expected) in cases {
            assert_eq!(
                Readiness::of(&health(cache, breaker, source)),
                expected,
                "{cache} {breaker:?} {source}"
            );
        }
    }

    fn memory(policy: &str, used: u64, max: u64) -> NodeMemory {
        NodeMemory {
            node: "127.0.0.1:6379".into(),
            policy: Some(policy.into()),
            config_refused: None,
            used_memory: Some(used),
            maxmemory: Some(max),
        }
    }

    #[test]
    fn the_eviction_field_warns_by_node_and_says_when_it_cannot_tell() {
        let safe = eviction_json(&Ok(vec![memory("volatile-lru", 1, 10)]));
        assert_eq!(safe["ok"], true);
        assert_eq!(safe["warnings"], json!([]));
        assert_eq!(safe["nodes"][0]["verdict"], "safe");

        let mixed = eviction_json(&Ok(vec![
            memory("volatile-lru", 1, 10),
            memory("allkeys-lru", 1, 10),
            memory("noeviction", 95, 100),
        ]));
        assert_eq!(mixed["ok"], false);
        let warnings = mixed["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 2, "{mixed}");
        assert!(warnings[0].as_str().unwrap().contains("allkeys-lru"));
        assert!(warnings[1].as_str().unwrap().contains("95"));
        assert_eq!(mixed["nodes"][2]["verdict"], "nearly_full");

        let hidden = NodeMemory {
            policy: None,
            config_refused: Some("NOPERM".into()),
            ..memory("x", 0, 0)
        };
        let unknown = eviction_json(&Ok(vec![hidden]));
        assert!(unknown["ok"].is_null(), "{unknown}");
        assert_eq!(unknown["nodes"][0]["config_refused"], "NOPERM");

        let down = eviction_json(&Err(CacheError::Unavailable("down".into())));
        assert!(down["ok"].is_null());
        assert!(down["error"].as_str().unwrap().contains("down"));
    }

    #[test]
    fn the_body_names_state_reason_and_breaker() {
        let h = health(false, BreakerState::Open, true);
        let r = Readiness::of(&h);
        assert_eq!(r.http_status(), StatusCode::OK);
        let body = r.body(&h, "Redis at x", "Neo4j at y");
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["serving"], "source");
        assert_eq!(body["reason"], "breaker_open");
        assert_eq!(body["cache"]["breaker"], "open");
        assert_eq!(body["cache"]["ok"], false);
        assert!(
            body["cache"]["error"]
                .as_str()
                .unwrap_or("")
                .contains("down")
        );
        assert_eq!(body["source"]["ok"], true);

        let h = health(true, BreakerState::Closed, false);
        let r = Readiness::of(&h);
        assert_eq!(r.http_status(), StatusCode::OK);
        let body = r.body(&h, "c", "s");
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["serving"], "cache");
        assert_eq!(body["reason"], "source_unreachable");

        let h = health(false, BreakerState::Closed, false);
        let r = Readiness::of(&h);
        assert_eq!(r.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = r.body(&h, "c", "s");
        assert_eq!(body["serving"], "nothing");
        assert_eq!(body["reason"], "cache_and_source_unreachable");

        let h = health(true, BreakerState::Closed, true);
        let body = Readiness::of(&h).body(&h, "c", "s");
        assert_eq!(body["status"], "ready");
        assert!(body["reason"].is_null());
    }
}
