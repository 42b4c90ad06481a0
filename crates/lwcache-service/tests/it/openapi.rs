//! The OpenAPI document lists exactly the routes the router serves: the
//! document's (method, path) pairs equal the endpoint table's, and the
//! running server answers every documented pair with a handler (never
//! `no_route` nor 405) and every undocumented method on a documented path
//! with 405.

use std::collections::BTreeSet;

use lwcache_service::routes::ENDPOINTS;
use reqwest::Method;

use crate::support::Server;

const VERBS: [&str; 4] = ["get", "put", "post", "delete"];

fn concrete(path: &str) -> String {
    path.replace("{world_id}", "no-such-world")
        .replace("{flag}", "some_flag")
        .replace("{entity_id}", "someone")
        .replace("{id}", "someone")
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_served() {
    let s = Server::start(&[]);
    let doc = s.get("/openapi.json").await.expect(200, None).json;
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for verb in item.as_object().expect("a path item").keys() {
            assert!(
                VERBS.contains(&verb.as_str()),
                "unexpected key {verb} under {path}"
            );
            documented.insert((verb.to_uppercase(), path.clone()));
        }
    }
    let table: BTreeSet<(String, String)> = ENDPOINTS
        .iter()
        .map(|e| (e.verb.method().to_string(), e.path.to_owned()))
        .collect();
    let only_doc: Vec<_> = documented.difference(&table).collect();
    let only_table: Vec<_> = table.difference(&documented).collect();
    assert!(
        only_doc.is_empty() && only_table.is_empty(),
        "documented but not in the table: {only_doc:?}; in the table but not documented: {only_table:?}"
    );

    // The router, probed from outside.
    for (method, path) in &documented {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let r = s
            .call_raw(method.clone(), &concrete(path), b"{}".to_vec())
            .await;
        assert!(
            r.status != 405 && r.code() != "no_route",
            "{method} {path} is documented but not served: {r:?}"
        );
        assert_ne!(r.status, 500, "{method} {path}: {r:?}");
    }
    for path in paths.keys() {
        for verb in VERBS {
            if paths[path].get(verb).is_some() {
                continue;
            }
            let method = Method::from_bytes(verb.to_uppercase().as_bytes()).unwrap();
            let r = s
                .call_raw(method.clone(), &concrete(path), b"{}".to_vec())
                .await;
            assert_eq!(
                r.status, 405,
                "{method} {path} is served but not documented: {r:?}"
            );
        }
    }
    // Every operation documents its responses and has a unique id.
    let mut ids = BTreeSet::new();
    for item in paths.values() {
        for op in item.as_object().unwrap().values() {
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()));
        }
    }
}
