//! The OpenAPI 3 document served at `/openapi.json`, written by hand: the
//! integration tests check that it lists exactly the routes the router
//! serves, and that the router answers each of them.

use serde_json::{Map, Value, json};

fn param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": { "$ref": "#/components/schemas/Id" },
    })
}

fn world() -> Value {
    param("world_id", "The world's id.")
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    })
}

fn read_ok(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "headers": {
            "x-cache": { "$ref": "#/components/headers/XCache" },
            "x-world-version": { "$ref": "#/components/headers/XWorldVersion" },
            "x-cache-degraded": { "$ref": "#/components/headers/XCacheDegraded" },
            "x-cache-stale-reason": { "$ref": "#/components/headers/XCacheStaleReason" },
            "Age": { "$ref": "#/components/headers/Age" },
            "x-cache-age-ms": { "$ref": "#/components/headers/XCacheAgeMs" },
        },
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } },
    })
}

fn written(description: &str) -> Value {
    json!({
        "description": description,
        "headers": { "x-world-version": { "$ref": "#/components/headers/XWorldVersion" } },
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Written" } } },
    })
}

fn body(schema: &str, description: &str) -> Value {
    json!({
        "required": true,
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } },
    })
}

/// The responses every `/v1` route can give besides its own.
fn v1_errors(mut responses: Map<String, Value>, with_body: bool) -> Value {
    responses.insert("400".into(), error("A malformed id, query or JSON body."));
    responses.insert(
        "401".into(),
        error("A bearer token is configured and the request lacks it or has another."),
    );
    responses.insert("404".into(), error("Unknown world, entity or flag."));
    if with_body {
        responses.insert(
            "408".into(),
            error("The body did not arrive within 10 s of the request's head."),
        );
        responses.insert(
            "413".into(),
            error("The body is larger than the configured limit."),
        );
        responses.insert(
            "422".into(),
            error("The JSON does not describe a valid value or document."),
        );
    }
    responses.insert("503".into(), error("The source of truth is unavailable."));
    Value::Object(responses)
}

fn op(
    summary: &str,
    id: &str,
    params: Vec<Value>,
    request: Option<Value>,
    ok: Vec<(&str, Value)>,
) -> Value {
    let with_body = request.is_some();
    let mut responses = Map::new();
    for (status, response) in ok {
        responses.insert(status.to_owned(), response);
    }
    let mut operation = json!({
        "summary": summary,
        "operationId": id,
        "parameters": params,
        "security": [ {}, { "bearer": [] } ],
        "responses": v1_errors(responses, with_body),
    });
    if let Some(request) = request {
        operation["requestBody"] = request;
    }
    operation
}

fn plain(summary: &str, id: &str, description: &str, content_type: &str, schema: Value) -> Value {
    json!({
        "summary": summary,
        "operationId": id,
        "responses": {
            "200": { "description": description, "content": { content_type: { "schema": schema } } },
        },
    })
}

fn entity_paths(paths: &mut Map<String, Value>, plural: &str, singular: &str) {
    let id = || param("id", &format!("The {singular}'s id."));
    paths.insert(
        format!("/v1/worlds/{{world_id}}/{plural}/{{id}}"),
        json!({
            "get": op(&format!("Read a {singular}'s state"), &format!("get_{singular}"),
                vec![world(), id()], None,
                vec![("200", read_ok(&format!("The {singular}'s state (sensitive fields left out)."), "Document"))]),
            "put": op(&format!("Create or replace a {singular}"), &format!("put_{singular}"),
                vec![world(), id()], Some(body("Document", "The new state.")),
                vec![("200", written("Replaced.")), ("201", written("Created.")),
                     ("409", error("The id is taken by an entity of another kind."))]),
            "delete": op(&format!("Delete a {singular} and its timeline"), &format!("delete_{singular}"),
                vec![world(), id()], None, vec![("200", written("Deleted."))]),
        }),
    );
}

/// An admin operation: the bearer token only (the admin token when one is
/// set), or nothing on a loopback-only listener without tokens.
fn admin_op(summary: &str, id: &str, params: Vec<Value>, ok: Value) -> Value {
    json!({
        "summary": summary,
        "operationId": id,
        "parameters": params,
        "security": [ { "bearer": [] }, {} ],
        "responses": {
            "200": ok,
            "400": error("A malformed world id or key, or the version key."),
            "401": error("A token is configured and the request lacks it or has another (the admin token when one is set)."),
            "403": error("No token is configured and the listener is not loopback-only: the admin routes are off."),
            "503": error("The cache store failed."),
        },
    })
}

fn admin_paths(paths: &mut Map<String, Value>) {
    paths.insert(
        "/admin/worlds/{world_id}/cache".into(),
        json!({ "delete": admin_op("Drop a world's cache: every key of it, its version and leases included", "drop_world",
            vec![world()], json!({
                "description": "How many keys went.",
                "content": { "application/json": { "schema": { "type": "object", "properties": {
                    "world": { "type": "string" }, "keys": { "type": "integer" } } } } },
            })) }),
    );
    paths.insert(
        "/admin/keys/{key}".into(),
        json!({ "delete": admin_op("Evict one cached key", "evict_key",
            vec![param("key", "The key as the store holds it, e.g. lw:world:{w}:character:hero:state (percent-encoded).")],
            json!({
                "description": "The key is gone from the cache (whether or not it was there).",
                "content": { "application/json": { "schema": { "type": "object", "properties": {
                    "key": { "type": "string" } } } } },
            })) }),
    );
    paths.insert(
        "/admin/worlds/{world_id}/deactivate".into(),
        json!({ "post": admin_op("Deactivate a world: this instance stops refreshing and warming it (activate makes it active again); its keys stay cached", "deactivate_world",
            vec![world()], json!({
                "description": "The world is inactive here.",
                "content": { "application/json": { "schema": { "type": "object", "properties": {
                    "world": { "type": "string" }, "active": { "type": "boolean" } } } } },
            })) }),
    );
}

/// The document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    paths.insert(
        "/v1/worlds/{world_id}/state".into(),
        json!({
            "get": op("Read the world snapshot", "get_state", vec![world()], None,
                vec![("200", read_ok("The snapshot.", "Document"))]),
            "put": op("Replace the world snapshot; creates the world when absent", "put_state",
                vec![world()], Some(body("Document", "The new snapshot.")),
                vec![("200", written("Replaced.")), ("201", written("The world was created."))]),
        }),
    );
    paths.insert(
        "/v1/worlds/{world_id}/flags".into(),
        json!({
            "get": op("Read every flag", "get_flags", vec![world()], None,
                vec![("200", read_ok("The flags, by name.", "Flags"))]),
        }),
    );
    let flag = || param("flag", "The flag's name.");
    paths.insert(
        "/v1/worlds/{world_id}/flags/{flag}".into(),
        json!({
            "get": op("Read one flag", "get_flag", vec![world(), flag()], None,
                vec![("200", read_ok("The flag's value.", "Value"))]),
            "put": op("Set one flag", "put_flag", vec![world(), flag()],
                Some(body("Value", "The flag's new value: any JSON.")), vec![("200", written("Set."))]),
            "delete": op("Clear one flag (clearing an absent flag is still a write)", "delete_flag",
                vec![world(), flag()], None, vec![("200", written("Cleared."))]),
        }),
    );
    entity_paths(&mut paths, "characters", "character");
    entity_paths(&mut paths, "locations", "location");
    entity_paths(&mut paths, "objects", "object");
    let entity = || param("entity_id", "The id of the entity whose timeline it is.");
    paths.insert(
        "/v1/worlds/{world_id}/timeline/{entity_id}/events".into(),
        json!({
            "post": op("Append an event to an entity's timeline", "add_event", vec![world(), entity()],
                Some(body("NewEvent", "The event.")), vec![("201", written("Appended; seq is its place in the timeline."))]),
        }),
    );
    paths.insert(
        "/v1/worlds/{world_id}/timeline/{entity_id}/recent".into(),
        json!({
            "get": op("Read an entity's newest events, newest first", "get_recent",
                vec![world(), entity(), json!({
                    "name": "limit", "in": "query", "required": false,
                    "description": "How many events (default: the cached top-k, 20).",
                    "schema": { "type": "integer", "minimum": 1, "maximum": crate::routes::table::MAX_RECENT_LIMIT },
                })],
                None, vec![("200", read_ok("The events.", "Timeline"))]),
        }),
    );
    paths.insert(
        "/v1/worlds/{world_id}/read".into(),
        json!({
            "post": op("Read a turn's keys at once: the snapshot, the flags, entities and timelines", "read_turn",
                vec![world()], Some(body("TurnRequest", "What the turn reads.")),
                vec![("200", json!({
                    "description": "Each item with its cache outcome and version, or its own error (an unknown entity); 400 too_many_items past the limit of items.",
                    "headers": { "x-world-version": { "$ref": "#/components/headers/XWorldVersion" } },
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/TurnAnswer" } } },
                }))]),
        }),
    );
    paths.insert(
        "/v1/worlds/{world_id}/activate".into(),
        json!({
            "post": op("Warm a world: prefill flags, snapshot, entities and recent timelines", "activate",
                vec![world()], None, vec![("200", json!({
                    "description": "What was warmed.",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/WarmReport" } } },
                }))]),
        }),
    );
    paths.insert(
        "/metrics".into(),
        json!({ "get": plain("Counters in the Prometheus text format", "metrics", "The metrics.",
            "text/plain", json!({ "type": "string" })) }),
    );
    paths.insert(
        "/healthz".into(),
        json!({ "get": plain("The process is up", "healthz", "Up.", "application/json",
            json!({ "type": "object", "properties": { "status": { "type": "string" } } })) }),
    );
    let mut readyz = plain(
        "The backends answer",
        "readyz",
        "Ready; or degraded when the cache does not answer or its circuit breaker is open (reads go to the source), or when the source does not answer and the cache does (cached reads are served, misses and writes fail).",
        "application/json",
        json!({ "$ref": "#/components/schemas/Readiness" }),
    );
    readyz["responses"]["503"] = json!({
        "description": "Neither the source of truth nor the cache answers.",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Readiness" } } },
    });
    paths.insert("/readyz".into(), json!({ "get": readyz }));
    paths.insert(
        "/openapi.json".into(),
        json!({ "get": plain("This document", "openapi", "The OpenAPI document.",
            "application/json", json!({ "type": "object" })) }),
    );

    admin_paths(&mut paths);

    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "lwcache",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The hot state of persistent game worlds, cached in front of their source of truth. \
                Reads carry x-cache (hit, miss or stale) and x-world-version. While the source of truth fails, \
                an entry past its TTL (kept for the fail-safe grace) is served with x-cache: stale, \
                x-cache-stale-reason and its Age; a read with nothing cached answers 503. Errors are { \"error\": { \"code\", \"message\" } }.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "headers": {
                "XCacheStaleReason": { "description": "Present on a fail-safe answer (x-cache: stale, an entry past its TTL served because the source failed): how the source failed.",
                    "schema": { "type": "string", "enum": ["source-unavailable", "source-timeout", "source-error"] } },
                "Age": { "description": "Present on a fail-safe answer: how long ago the value was cached, in whole seconds (RFC 9111).",
                    "schema": { "type": "integer", "minimum": 0 } },
                "XCacheAgeMs": { "description": "Present on a fail-safe answer: its age in milliseconds.",
                    "schema": { "type": "integer", "minimum": 0 } },
                "XCache": { "description": "How the read was served: hit, miss or stale (a write-behind entry behind a queued update, or a fail-safe answer with x-cache-stale-reason).",
                    "schema": { "type": "string", "enum": ["hit", "miss", "stale"] } },
                "XWorldVersion": { "description": "The world version the value was read at or written as.",
                    "schema": { "type": "integer", "minimum": 0 } },
                "XCacheDegraded": { "description": "Present (cache-unavailable) when the cache failed and the source answered.",
                    "schema": { "type": "string" } },
            },
            "schemas": {
                "Id": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$" },
                "Value": { "description": "Any JSON value. Integers that fit 64 signed bits stay integers; other numbers are floats." },
                "Document": { "type": "object", "additionalProperties": { "$ref": "#/components/schemas/Value" } },
                "Flags": { "type": "object", "additionalProperties": { "$ref": "#/components/schemas/Value" } },
                "NewEvent": { "type": "object", "required": ["kind"], "additionalProperties": false, "properties": {
                    "kind": { "$ref": "#/components/schemas/Id" },
                    "data": { "$ref": "#/components/schemas/Document" } } },
                "Event": { "type": "object", "properties": {
                    "seq": { "type": "integer" }, "entity": { "type": "string" }, "kind": { "type": "string" },
                    "at_ms": { "type": "integer" }, "data": { "$ref": "#/components/schemas/Document" } } },
                "Timeline": { "type": "array", "items": { "$ref": "#/components/schemas/Event" } },
                "Written": { "type": "object", "properties": {
                    "version": { "type": "integer" },
                    "cache": { "type": "string", "enum": ["applied", "superseded", "deferred", "failed"] },
                    "seq": { "type": "integer" } } },
                "TurnRequest": { "type": "object", "additionalProperties": false,
                    "description": format!("At most {} items in all.", crate::routes::MAX_TURN_ITEMS),
                    "properties": {
                    "snapshot": { "type": "boolean" }, "flags": { "type": "boolean" },
                    "characters": { "type": "array", "items": { "$ref": "#/components/schemas/Id" } },
                    "locations": { "type": "array", "items": { "$ref": "#/components/schemas/Id" } },
                    "objects": { "type": "array", "items": { "$ref": "#/components/schemas/Id" } },
                    "timelines": { "type": "array", "items": { "type": "object", "required": ["entity_id"],
                        "additionalProperties": false, "properties": {
                        "entity_id": { "$ref": "#/components/schemas/Id" },
                        "limit": { "type": "integer", "minimum": 1, "maximum": crate::routes::table::MAX_RECENT_LIMIT } } } } } },
                "TurnItem": { "type": "object", "description": "A value with how it was served (cache: hit, miss, stale, fallback or fail_safe, the last with stale: its reason and age) and its version, or error.",
                    "properties": {
                    "cache": { "type": "string", "enum": ["hit", "miss", "stale", "fallback", "fail_safe"] },
                    "stale": { "type": "object", "properties": { "reason": { "type": "string" }, "age_ms": { "type": "integer" } } },
                    "version": { "type": "integer" }, "value": { "$ref": "#/components/schemas/Value" },
                    "events": { "$ref": "#/components/schemas/Timeline" },
                    "error": { "type": "object" } } },
                "TurnAnswer": { "type": "object", "properties": {
                    "version": { "type": "integer", "description": "The highest version among the items." },
                    "snapshot": { "$ref": "#/components/schemas/TurnItem" },
                    "flags": { "$ref": "#/components/schemas/TurnItem" },
                    "characters": { "type": "object", "additionalProperties": { "$ref": "#/components/schemas/TurnItem" } },
                    "locations": { "type": "object", "additionalProperties": { "$ref": "#/components/schemas/TurnItem" } },
                    "objects": { "type": "object", "additionalProperties": { "$ref": "#/components/schemas/TurnItem" } },
                    "timelines": { "type": "object", "additionalProperties": { "$ref": "#/components/schemas/TurnItem" } } } },
                "WarmReport": { "type": "object", "properties": {
                    "version": { "type": "integer" }, "keys": { "type": "integer" },
                    "batches": { "type": "integer" }, "skipped": { "type": "integer" } } },
                "Readiness": { "type": "object", "properties": {
                    "status": { "type": "string", "enum": ["ready", "degraded", "unavailable"] },
                    "serving": { "type": "string", "enum": ["cache_and_source", "source", "cache", "nothing"] },
                    "reason": { "type": "string", "nullable": true,
                        "enum": ["cache_unreachable", "breaker_open", "source_unreachable", "cache_and_source_unreachable", null] },
                    "cache": { "type": "object", "properties": {
                        "backend": { "type": "string" }, "ok": { "type": "boolean" }, "error": { "type": "string" },
                        "breaker": { "type": "string", "enum": ["closed", "half_open", "open"] } } },
                    "source": { "type": "object", "properties": {
                        "backend": { "type": "string" }, "ok": { "type": "boolean" }, "error": { "type": "string" } } } } },
                "Error": { "type": "object", "properties": { "error": { "type": "object", "properties": {
                    "code": { "type": "string" }, "message": { "type": "string" } } } } },
            },
        },
    })
}
