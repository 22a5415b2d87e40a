//! The OpenAPI document: committed and current, typed throughout, and covering the endpoints
//! of `../shared/UI.md` §8.1 (the ones not built yet are listed in `NOT_YET`, which only
//! shrinks: an endpoint listed there that exists fails the test).
//!
//! After an API change: `WARPPOOL_BLESS=1 cargo test -p warppool-control --test api_openapi`
//! rewrites `docs/api/openapi.json`.

use std::path::PathBuf;

use serde_json::Value;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/api/openapi.json")
}

/// Every endpoint UI.md §8.1 and its admin table name, except energy, notifiers, push,
/// backup, update and logs (they come with their issues).
const REQUIRED: &[(&str, &str)] = &[
    ("get", "/api/v1/status"),
    ("get", "/api/v1/pool"),
    ("get", "/api/v1/pool/history"),
    ("get", "/api/v1/events/recent"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/connect"),
    ("get", "/api/v1/connect/last-seen"),
    ("get", "/api/v1/workers"),
    ("get", "/api/v1/workers/sparklines"),
    ("get", "/api/v1/workers/{id}"),
    ("get", "/api/v1/workers/{id}/history"),
    ("get", "/api/v1/workers/{id}/sessions"),
    ("get", "/api/v1/workers/{id}/events"),
    ("get", "/api/v1/addresses/{address}"),
    ("get", "/api/v1/blocks"),
    ("get", "/api/v1/best-shares"),
    ("get", "/api/v1/network"),
    ("get", "/umbrel-api"),
    ("get", "/metrics"),
    ("post", "/api/v1/setup"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/totp"),
    ("post", "/api/v1/auth/recovery"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/sessions"),
    ("delete", "/api/v1/auth/sessions/{id}"),
    ("post", "/api/v1/auth/totp/enroll"),
    ("post", "/api/v1/auth/totp/confirm"),
    ("get", "/api/v1/admin/tokens"),
    ("post", "/api/v1/admin/tokens"),
    ("delete", "/api/v1/admin/tokens/{id}"),
    ("get", "/api/v1/admin/audit"),
    ("get", "/api/v1/admin/config"),
    ("put", "/api/v1/admin/config"),
    ("get", "/api/v1/admin/nodes"),
    ("put", "/api/v1/admin/nodes"),
    ("post", "/api/v1/admin/nodes/{id}/test"),
    ("get", "/api/v1/admin/connections"),
    ("post", "/api/v1/admin/connections/{id}/kick"),
    ("get", "/api/v1/admin/bans"),
    ("post", "/api/v1/admin/bans"),
    ("delete", "/api/v1/admin/bans/{id}"),
    ("get", "/api/v1/admin/diagnostics"),
];

/// Required endpoints not built yet (issue 10 in progress). Only shrinks.
const NOT_YET: &[(&str, &str)] = &[];

fn document() -> Value {
    serde_json::from_str(&warppool_control::api::openapi::json()).expect("the document is JSON")
}

#[test]
fn the_committed_openapi_document_is_current() {
    let generated = warppool_control::api::openapi::json();
    let path = committed_path();
    if std::env::var_os("WARPPOOL_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/api/openapi.json is not the document the code generates: run \
         WARPPOOL_BLESS=1 cargo test -p warppool-control --test api_openapi"
    );
    assert_eq!(document()["openapi"], "3.1.0");
}

#[test]
fn every_required_endpoint_is_documented_and_the_not_yet_list_only_shrinks() {
    let doc = document();
    let has = |method: &str, path: &str| doc["paths"][path][method].is_object();
    let missing: Vec<_> = REQUIRED
        .iter()
        .filter(|(m, p)| !has(m, p) && !NOT_YET.contains(&(m, p)))
        .collect();
    assert!(
        missing.is_empty(),
        "required endpoints missing: {missing:?}"
    );
    let built: Vec<_> = NOT_YET.iter().filter(|(m, p)| has(m, p)).collect();
    assert!(
        built.is_empty(),
        "built now, remove from NOT_YET: {built:?}"
    );
    assert!(NOT_YET.iter().all(|e| REQUIRED.contains(e)));
}

/// Whether `schema` says what it is.
fn typed(schema: &Value) -> bool {
    const KEYS: [&str; 8] = [
        "type",
        "$ref",
        "oneOf",
        "anyOf",
        "allOf",
        "enum",
        "const",
        "properties",
    ];
    schema
        .as_object()
        .is_some_and(|o| KEYS.iter().any(|k| o.contains_key(*k)))
}

/// Every schema under `value` (recursively), with its JSON path.
fn schemas<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{at}/{k}");
                if k == "schema" || k == "items" || k == "additionalProperties" {
                    if v.is_object() {
                        out.push((here.clone(), v));
                    }
                } else if at.ends_with("/properties") || at.ends_with("/schemas") {
                    out.push((here.clone(), v));
                } else if (k == "oneOf" || k == "anyOf" || k == "allOf") && v.is_array() {
                    for (i, s) in v.as_array().unwrap().iter().enumerate() {
                        out.push((format!("{here}/{i}"), s));
                    }
                }
                schemas(v, here, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                schemas(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn no_schema_in_the_document_is_an_untyped_object() {
    let doc = document();
    let mut found = Vec::new();
    schemas(&doc, String::new(), &mut found);
    assert!(
        found.len() > 50,
        "the walk finds the schemas: {}",
        found.len()
    );
    let untyped: Vec<_> = found
        .iter()
        .filter(|(_, s)| !typed(s))
        .map(|(at, s)| format!("{at}: {s}"))
        .collect();
    assert!(untyped.is_empty(), "untyped schemas: {untyped:#?}");
    // Every answer with a body names its schema (the document itself is the one exception).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                let Some(content) = response.get("content").and_then(Value::as_object) else {
                    continue;
                };
                for (media, body) in content {
                    if path != "/api/v1/openapi.json" {
                        let ok = body["schema"].is_object();
                        assert!(ok, "{method} {path} {status} {media}: {response}");
                    }
                }
            }
        }
    }
}
