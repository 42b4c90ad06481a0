//! Every Cypher statement the repository runs, in one place, so that the
//! graph model in `docs/neo4j-model.md` can be checked against it and the
//! tests can PROFILE exactly what runs.
//!
//! Parameters are always passed separately; the only text ever formatted
//! into a statement is an entity label from a fixed list.

/// The schema step: constraints and indexes, each created only if absent.
pub const SCHEMA: &[&str] = &[
    "CREATE CONSTRAINT lw_world_id IF NOT EXISTS FOR (w:World) REQUIRE w.id IS UNIQUE",
    "CREATE CONSTRAINT lw_entity_key IF NOT EXISTS FOR (e:Entity) REQUIRE (e.world_id, e.id) IS UNIQUE",
    "CREATE CONSTRAINT lw_flag_key IF NOT EXISTS FOR (f:Flag) REQUIRE (f.world_id, f.name) IS UNIQUE",
    "CREATE CONSTRAINT lw_event_key IF NOT EXISTS FOR (v:Event) REQUIRE (v.world_id, v.seq) IS UNIQUE",
    "CREATE INDEX lw_event_timeline IF NOT EXISTS FOR (v:Event) ON (v.world_id, v.entity_id, v.seq)",
    "CREATE CONSTRAINT lw_outbox_key IF NOT EXISTS FOR (o:Outbox) REQUIRE (o.world_id, o.version) IS UNIQUE",
    "CREATE INDEX lw_outbox_age IF NOT EXISTS FOR (o:Outbox) ON (o.at_ms)",
];

/// Waits until every index is online (a new index is populated in the
/// background).
pub const AWAIT_INDEXES: &str = "CALL db.awaitIndexes(300)";

/// A round trip that touches no data.
pub const PING: &str = "RETURN 1 AS ok";

/// The world's version. Params: `w`.
pub const VERSION: &str = "MATCH (w:World {id: $w}) RETURN w.version AS version";

/// Locks the world (a write lock on its node, held until commit), bumps its
/// version, records what the write owes the cache in the outbox, and
/// returns the new version: the first statement of every write, so the
/// outbox costs no round trip of its own. A write refused later rolls the
/// entry back with everything else. Params: `w`, `keys` (the formatted keys
/// the write makes stale). `at_ms` is the server's clock, so the age a claim
/// asks for never depends on a client's.
pub const BUMP: &str = "\
MATCH (w:World {id: $w})
SET w.version = w.version + 1
CREATE (:Outbox {world_id: $w, version: w.version, keys: $keys, at_ms: timestamp()})
RETURN w.version AS version";

/// Creates the world or replaces its snapshot, bumping the version and
/// recording the outbox entry as [`BUMP`] does. Params: `w`, `snapshot`,
/// `keys`.
pub const REPLACE_SNAPSHOT: &str = "\
MERGE (w:World {id: $w})
ON CREATE SET w.version = 0
WITH w, w.version = 0 AS created
SET w.version = w.version + 1, w.snapshot = $snapshot
CREATE (:Outbox {world_id: $w, version: w.version, keys: $keys, at_ms: timestamp()})
RETURN w.version AS version, created";

/// Sets a flag and returns every flag. Params: `w`, `name`, `value`.
pub const SET_FLAG: &str = "\
MATCH (w:World {id: $w})
MERGE (f:Flag {world_id: $w, name: $name})
MERGE (w)-[:HAS_FLAG]->(f)
SET f.value = $value
WITH w
RETURN [(w)-[:HAS_FLAG]->(g) | [g.name, g.value]] AS flags";

/// Clears a flag and returns every flag left. Params: `w`, `name`.
pub const CLEAR_FLAG: &str = "\
MATCH (w:World {id: $w})
OPTIONAL MATCH (f:Flag {world_id: $w, name: $name})
DETACH DELETE f
WITH DISTINCT w
RETURN [(w)-[:HAS_FLAG]->(g) | [g.name, g.value]] AS flags";

/// The kind of the entity holding an id, if any. Params: `w`, `id`.
pub const ENTITY_KIND: &str = "MATCH (e:Entity {world_id: $w, id: $id}) RETURN e.kind AS kind";

/// Creates an entity; `{label}` is replaced by `Character`, `Location` or
/// `Object`. Params: `w`, `id`, `kind`, `state`.
pub const CREATE_ENTITY: &str = "\
MATCH (w:World {id: $w})
CREATE (w)-[:HAS_ENTITY]->(:Entity:{label} {world_id: $w, id: $id, kind: $kind, state: $state})";

/// Replaces an entity's state. Params: `w`, `id`, `state`.
pub const UPDATE_ENTITY: &str = "MATCH (e:Entity {world_id: $w, id: $id}) SET e.state = $state";

/// Deletes an entity and its timeline. Params: `w`, `id`.
pub const DELETE_ENTITY: &str = "\
MATCH (e:Entity {world_id: $w, id: $id})
CALL (e) { MATCH (v:Event {world_id: $w, entity_id: $id}) DETACH DELETE v }
DETACH DELETE e";

/// Appends an event, its `seq` being the write's version, and returns the
/// entity's `k` newest events after it, as [`RECENT`] reads them: the
/// timeline the cache keeps, read under the world's write lock, so that it
/// holds every event of a lower version. No row when the entity does not
/// exist. Params: `w`, `id`, `seq`, `kind`, `at_ms`, `data`, `k`.
pub const ADD_EVENT: &str = "\
MATCH (e:Entity {world_id: $w, id: $id})
CREATE (e)-[:HAS_EVENT]->(:Event {world_id: $w, entity_id: $id, seq: $seq, kind: $kind, at_ms: $at_ms, data: $data})
WITH DISTINCT e
RETURN COLLECT {
  MATCH (v:Event {world_id: $w, entity_id: $id})
  WHERE v.seq IS NOT NULL
  RETURN v {.seq, .kind, .at_ms, .data} AS event
  ORDER BY v.seq DESC
  LIMIT $k
} AS events";

/// The snapshot, read after the version. Params: `w`.
pub const READ_SNAPSHOT: &str = "\
MATCH (w:World {id: $w})
WITH w, w.version AS version
RETURN version, w.snapshot AS snapshot";

/// Every flag, read after the version. Params: `w`.
pub const READ_FLAGS: &str = "\
MATCH (w:World {id: $w})
WITH w, w.version AS version
RETURN version, [(w)-[:HAS_FLAG]->(g) | [g.name, g.value]] AS flags";

/// One entity, read after the version. Params: `w`, `id`.
pub const READ_ENTITY: &str = "\
MATCH (w:World {id: $w})
WITH w.version AS version
OPTIONAL MATCH (e:Entity {world_id: $w, id: $id})
RETURN version, e.kind AS kind, e.state AS state";

/// The `k` newest events of an entity, newest first, read after the
/// version. Served by a seek on the `lw_event_timeline` index: the cost is
/// the entity's own timeline (its index entries, then a top-k), whatever
/// the size of the world.
/// Params: `w`, `id`, `k`.
pub const RECENT: &str = "\
MATCH (w:World {id: $w})
WITH w.version AS version
OPTIONAL MATCH (e:Entity {world_id: $w, id: $id})
RETURN version, e IS NOT NULL AS found, COLLECT {
  MATCH (v:Event {world_id: $w, entity_id: $id})
  WHERE v.seq IS NOT NULL
  RETURN v {.seq, .kind, .at_ms, .data} AS event
  ORDER BY v.seq DESC
  LIMIT $k
} AS events";

/// Several keys of one world in one statement, read after the version:
/// the snapshot and the flags when asked for, the entities named in
/// `entities`, and the `k` newest events of the entities named in
/// `timelines`; an absent entity is absent from its list. Params: `w`,
/// `state`, `flags` (booleans), `entities`, `timelines` (lists of ids),
/// `k`.
pub const READ_MANY: &str = "\
MATCH (w:World {id: $w})
WITH w, w.version AS version
RETURN version,
  CASE WHEN $state THEN w.snapshot END AS snapshot,
  CASE WHEN $flags THEN [(w)-[:HAS_FLAG]->(g) | [g.name, g.value]] END AS flags,
  COLLECT {
    UNWIND $entities AS id
    MATCH (e:Entity {world_id: $w, id: id})
    RETURN e {.id, .kind, .state} AS entity
  } AS entities,
  COLLECT {
    UNWIND $timelines AS id
    MATCH (:Entity {world_id: $w, id: id})
    RETURN {id: id, events: COLLECT {
      MATCH (v:Event {world_id: $w, entity_id: id})
      WHERE v.seq IS NOT NULL
      RETURN v {.seq, .kind, .at_ms, .data} AS event
      ORDER BY v.seq DESC
      LIMIT $k
    }} AS timeline
  } AS timelines";

/// Everything warming prefills, read after the version: the snapshot, the
/// flags, every entity with its `k` newest events. Params: `w`, `k`.
pub const IMAGE: &str = "\
MATCH (w:World {id: $w})
WITH w, w.version AS version
RETURN version, w.snapshot AS snapshot,
  [(w)-[:HAS_FLAG]->(g) | [g.name, g.value]] AS flags,
  COLLECT {
    MATCH (w)-[:HAS_ENTITY]->(e:Entity)
    RETURN e {.id, .kind, .state, events: COLLECT {
      MATCH (v:Event {world_id: $w, entity_id: e.id})
      WHERE v.seq IS NOT NULL
      RETURN v {.seq, .kind, .at_ms, .data} AS event
      ORDER BY v.seq DESC
      LIMIT $k
    }} AS entity
  } AS entities";

/// Creates a world for a bulk load, at its final version. Fails on the
/// uniqueness constraint if the world exists. Params: `w`, `version`,
/// `snapshot`, `flags` (a list of `{name, value}`).
pub const LOAD_WORLD: &str = "\
CREATE (w:World {id: $w, version: $version, snapshot: $snapshot})
WITH w
UNWIND $flags AS flag
CREATE (w)-[:HAS_FLAG]->(:Flag {world_id: $w, name: flag.name, value: flag.value})";

/// Creates a batch of entities of one kind for a bulk load; `{label}` as in
/// [`CREATE_ENTITY`]. Params: `w`, `kind`, `rows` (a list of `{id, state}`).
pub const LOAD_ENTITIES: &str = "\
MATCH (w:World {id: $w})
UNWIND $rows AS row
CREATE (w)-[:HAS_ENTITY]->(:Entity:{label} {world_id: $w, id: row.id, kind: $kind, state: row.state})";

/// Creates a batch of events for a bulk load. Params: `w`, `rows` (a list of
/// `{id, seq, kind, at_ms, data}`).
pub const LOAD_EVENTS: &str = "\
UNWIND $rows AS row
MATCH (e:Entity {world_id: $w, id: row.id})
CREATE (e)-[:HAS_EVENT]->(:Event {world_id: $w, entity_id: row.id, seq: row.seq, kind: row.kind, at_ms: row.at_ms, data: row.data})";

/// Claims the oldest outbox entries at least `min_age_ms` old that no other
/// owner holds a live claim on (an owner may claim its own again; with
/// `take_held`, any), and returns them. Served by a range seek on
/// `lw_outbox_age`, whose order also serves the `ORDER BY`. Params:
/// `owner`, `world` (`""` for every world), `min_age_ms`, `lease_ms`,
/// `limit`, `take_held`. An entry another process's settle removed while
/// this claim waited for its lock reads as a node without properties, and
/// is left out: it is owed nothing.
pub const CLAIM_OWED: &str = "\
WITH timestamp() AS now
MATCH (o:Outbox)
WHERE o.at_ms <= now - $min_age_ms
  AND ($world = '' OR o.world_id = $world)
  AND ($take_held OR o.claimed_until IS NULL OR o.claimed_until <= now OR o.claimed_by = $owner)
WITH o, now ORDER BY o.at_ms LIMIT $limit
SET o.claimed_by = $owner, o.claimed_until = now + $lease_ms
WITH o WHERE o.world_id IS NOT NULL
RETURN o.world_id AS world_id, o.version AS version, o.keys AS keys";

/// Removes settled outbox entries through the `lw_outbox_key` constraint's
/// index; ids without an entry match nothing. Params: `done` (a list of
/// `{w, v}`).
pub const SETTLE_OWED: &str = "\
UNWIND $done AS d
MATCH (o:Outbox {world_id: d.w, version: d.v})
DELETE o";
