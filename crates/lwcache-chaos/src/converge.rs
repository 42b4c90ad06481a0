//! Convergence: every entry cached in Redis (on every master of a
//! Cluster), decoded with the entry codec, against what Neo4j holds, read
//! with plain Cypher.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lwcache_core::codec;
use lwcache_domain::{CacheKey, CachedValue, KeyTarget, Value};
use serde_json::{Number, Value as Json};

use crate::workload::TIMELINE_LIMIT;

/// Direct connections to both stores (not through the proxies): one to
/// each Redis server, each asked only for the keys it holds.
pub(crate) struct Comparer {
    redis: Vec<redis::aio::MultiplexedConnection>,
    graph: neo4rs::Graph,
}

async fn connect_all(urls: &[String]) -> Result<Vec<redis::aio::MultiplexedConnection>> {
    let mut conns = Vec::new();
    for url in urls {
        let client = redis::Client::open(url.as_str())?;
        conns.push(
            client
                .get_multiplexed_async_connection()
                .await
                .with_context(|| format!("connecting to redis-server at {url}"))?,
        );
    }
    Ok(conns)
}

/// One comparison's result.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) compared: u64,
    pub(crate) mismatches: Vec<String>,
}

impl Comparer {
    pub(crate) async fn connect(
        redis_urls: &[String],
        neo4j_uri: &str,
        user: &str,
        password: &str,
    ) -> Result<Self> {
        let redis = connect_all(redis_urls).await?;
        let config = neo4rs::ConfigBuilder::default()
            .uri(neo4j_uri)
            .user(user)
            .password(password)
            .build()
            .context("Neo4j config")?;
        let graph = neo4rs::Graph::connect(config).context("connecting to Neo4j")?;
        Ok(Comparer { redis, graph })
    }

    /// New connections to Redis, after it was restarted.
    pub(crate) async fn reconnect_redis(&mut self, redis_urls: &[String]) -> Result<()> {
        self.redis = connect_all(redis_urls).await?;
        Ok(())
    }

    /// The index (in the order of the URLs) of the server that holds
    /// `key`: the only one that does not answer MOVED (a standalone server
    /// holds every key).
    pub(crate) async fn owner_index(&mut self, key: &str) -> Result<usize> {
        for (i, conn) in self.redis.iter_mut().enumerate() {
            let probe: redis::RedisResult<Option<Vec<u8>>> =
                redis::cmd("GET").arg(key).query_async(conn).await;
            if probe.is_ok() {
                return Ok(i);
            }
        }
        anyhow::bail!("no Redis server holds {key}")
    }

    /// The connection to the server that holds `key`.
    async fn owner(&mut self, key: &str) -> Result<&mut redis::aio::MultiplexedConnection> {
        let i = self.owner_index(key).await?;
        Ok(&mut self.redis[i])
    }

    /// Proves the comparison can fail: plants an entry for `key` (a
    /// formatted cache key of an entity) whose value Neo4j does not hold,
    /// checks that a comparison reports it, and deletes it.
    pub(crate) async fn self_check(&mut self, key: &str) -> Result<()> {
        let planted = codec::encode(&codec::Entry {
            version: 1,
            redaction: lwcache_domain::Redaction::Complete,
            value: CachedValue::Entity(lwcache_domain::Document(BTreeMap::from([(
                "n".to_owned(),
                Value::Int(-1),
            )]))),
        });
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(planted)
            .query_async(self.owner(key).await?)
            .await?;
        let seen = self.compare().await;
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(self.owner(key).await?)
            .await?;
        let seen = seen?;
        if !seen.mismatches.iter().any(|m| m.starts_with(key)) {
            anyhow::bail!(
                "the comparison did not notice a planted wrong entry under {key}: the checker is broken"
            );
        }
        Ok(())
    }

    /// Compares until equal or `bound` passes; returns the time it took
    /// (`None`: not within the bound) and the last comparison.
    pub(crate) async fn until_equal(&mut self, bound: Duration) -> (Option<Duration>, Comparison) {
        let started = Instant::now();
        loop {
            let c = match self.compare().await {
                Ok(c) => c,
                Err(e) => Comparison {
                    compared: 0,
                    mismatches: vec![format!("comparison failed: {e:#}")],
                },
            };
            if c.mismatches.is_empty() {
                return (Some(started.elapsed()), c);
            }
            if started.elapsed() >= bound {
                return (None, c);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// One pass over every `lw:*` key of every server.
    pub(crate) async fn compare(&mut self) -> Result<Comparison> {
        let mut out = Comparison::default();
        let mut names = Vec::new();
        for (node, conn) in self.redis.iter_mut().enumerate() {
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg("lw:*")
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(conn)
                    .await?;
                names.extend(batch.into_iter().map(|name| (name, node)));
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        names.sort();
        for (name, node) in names {
            // A world's epoch is the store's bookkeeping: a token, no value.
            if name
                .strip_suffix(lwcache_redis::EPOCH_SUFFIX)
                .is_some_and(|prefix| prefix.starts_with("lw:world:{") && prefix.ends_with("}:"))
            {
                continue;
            }
            let Ok(key) = CacheKey::parse(&name) else {
                out.mismatches.push(format!("{name}: not an lwcache key"));
                continue;
            };
            let bytes: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&name)
                .query_async(&mut self.redis[node])
                .await?;
            // Expired or deleted between SCAN and GET.
            let Some(bytes) = bytes else { continue };
            out.compared += 1;
            if let Some(problem) = self.check_key(&key, &bytes).await? {
                out.mismatches.push(format!("{name}: {problem}"));
            }
        }
        Ok(out)
    }

    async fn check_key(&self, key: &CacheKey, bytes: &[u8]) -> Result<Option<String>> {
        let w = key.world().as_str();
        if let KeyTarget::Version = key.target() {
            let cached: Option<u64> = std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok());
            let source = self.world_version(w).await?;
            return Ok(match (cached, source) {
                (Some(c), Some(s)) if c <= s => None,
                (c, s) => Some(format!("version {c:?} beyond the source's {s:?}")),
            });
        }
        let entry = match codec::decode(bytes) {
            Ok(e) => e,
            // A negative entry must agree that the source has no such entity.
            Err(codec::DecodeError::Absent) => {
                let KeyTarget::Entity(e) = key.target() else {
                    return Ok(Some("a negative entry on a key of no entity".to_owned()));
                };
                let q =
                    neo4rs::query("MATCH (e:Entity {world_id: $w, id: $id}) RETURN e.state AS s")
                        .param("w", w)
                        .param("id", e.id_str());
                return Ok(self
                    .one_text(q)
                    .await?
                    .map(|_| "a negative entry, but the source has the entity".to_owned()));
            }
            // A tombstone is never served: it agrees with any source that
            // has reached its version.
            Err(codec::DecodeError::Tombstone { version }) => {
                let source = self.world_version(w).await?;
                return Ok(match source {
                    Some(s) if version <= s => None,
                    s => Some(format!(
                        "a tombstone of version {version} beyond the source's {s:?}"
                    )),
                });
            }
            Err(e) => return Ok(Some(format!("undecodable entry: {e}"))),
        };
        let (cached, source) = match (key.target(), &entry.value) {
            (KeyTarget::State, CachedValue::Snapshot(d)) => (
                map_json(&d.0),
                self.one_text(
                    neo4rs::query("MATCH (w:World {id: $w}) RETURN w.snapshot AS s").param("w", w),
                )
                .await?,
            ),
            (KeyTarget::Entity(e), CachedValue::Entity(d)) => (
                map_json(&d.0),
                self.one_text(
                    neo4rs::query("MATCH (e:Entity {world_id: $w, id: $id}) RETURN e.state AS s")
                        .param("w", w)
                        .param("id", e.id_str()),
                )
                .await?,
            ),
            (KeyTarget::Flags, CachedValue::Flags(flags)) => {
                let cached = Json::Object(
                    flags
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), value_json(v)))
                        .collect(),
                );
                (cached, Some(self.flags(w).await?))
            }
            (KeyTarget::Timeline(id), CachedValue::Timeline(events)) => {
                let cached = Json::Array(events.iter().map(|e| Json::from(e.seq)).collect());
                (cached, Some(self.timeline(w, id.as_str()).await?))
            }
            _ => return Ok(Some("entry of the wrong kind for its key".to_owned())),
        };
        Ok(match source {
            None => Some(format!("cached {cached} but absent from Neo4j")),
            Some(source) if source == cached => None,
            Some(source) => Some(format!(
                "cached {} (at version {}), Neo4j holds {}",
                short(&cached),
                entry.version,
                short(&source)
            )),
        })
    }

    async fn world_version(&self, w: &str) -> Result<Option<u64>> {
        let mut rows = self
            .graph
            .execute(neo4rs::query("MATCH (w:World {id: $w}) RETURN w.version AS v").param("w", w))
            .await?;
        Ok(match rows.next().await? {
            Some(row) => Some(row.get::<i64>("v")?.max(0) as u64),
            None => None,
        })
    }

    /// One row's JSON text property `s`, parsed.
    async fn one_text(&self, q: neo4rs::Query) -> Result<Option<Json>> {
        let mut rows = self.graph.execute(q).await?;
        let Some(row) = rows.next().await? else {
            return Ok(None);
        };
        let text: String = row.get("s")?;
        Ok(Some(serde_json::from_str(&text)?))
    }

    async fn flags(&self, w: &str) -> Result<Json> {
        let mut rows = self
            .graph
            .execute(
                neo4rs::query(
                    "MATCH (:World {id: $w})-[:HAS_FLAG]->(f:Flag) RETURN f.name AS name, f.value AS value",
                )
                .param("w", w),
            )
            .await?;
        let mut out = serde_json::Map::new();
        while let Some(row) = rows.next().await? {
            let name: String = row.get("name")?;
            let value: String = row.get("value")?;
            out.insert(name, serde_json::from_str(&value)?);
        }
        Ok(Json::Object(out))
    }

    async fn timeline(&self, w: &str, id: &str) -> Result<Json> {
        let mut rows = self
            .graph
            .execute(
                neo4rs::query(
                    "MATCH (e:Event {world_id: $w, entity_id: $id}) RETURN e.seq AS seq ORDER BY seq DESC LIMIT $k",
                )
                .param("w", w)
                .param("id", id)
                .param("k", TIMELINE_LIMIT as i64),
            )
            .await?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().await? {
            out.push(Json::from(row.get::<i64>("seq")?));
        }
        Ok(Json::Array(out))
    }
}

fn short(v: &Json) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

fn map_json(m: &BTreeMap<String, Value>) -> Json {
    Json::Object(m.iter().map(|(k, v)| (k.clone(), value_json(v))).collect())
}

/// The service's JSON mapping of a value, as far as comparison needs it.
fn value_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Text(s) => Json::String(s.clone()),
        Value::List(l) => Json::Array(l.iter().map(value_json).collect()),
        Value::Map(m) => map_json(m),
    }
}
