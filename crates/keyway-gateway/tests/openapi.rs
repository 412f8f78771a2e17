//! `GET /api/v1/openapi.json`: valid OpenAPI 3.1, served without a key, listing every route of
//! the management router (read from the router's own source and probed on the live router, so a
//! new route can't be left out), and every documented success shape checked field by field
//! against what its handler answers on a happy-path call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{openai_gateway, Gateway, MGMT};
use keyway_fakes::server::FakeOptions;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(g: &Gateway) -> Value {
    let (s, doc, headers) = g.req("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, 200, "{doc}");
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"));
    doc
}

/// `(method, path)` of every `.route(...)` in `fn management()` of `src/routes/mod.rs`, as
/// `/api/v1` serves them.
fn router_routes() -> BTreeSet<(String, String)> {
    let src = include_str!("../src/routes/mod.rs");
    let start = src.find("fn management()").expect("routes/mod.rs has fn management()");
    let body = &src[start..];
    let body = &body[..body.find("\n}\n").expect("end of fn management()")];
    let mut out = BTreeSet::new();
    for line in body.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
        let path = line[".route(\"".len()..].split('"').next().unwrap();
        let handlers = &line[".route(\"".len() + path.len()..];
        let mut found = false;
        for m in METHODS {
            if handlers.contains(&format!(" {m}(")) || handlers.contains(&format!(".{m}(")) {
                out.insert((m.to_owned(), format!("/api/v1{path}")));
                found = true;
            }
        }
        assert!(found, "no method read from `{line}`");
    }
    assert!(out.len() >= 20, "read too few routes: {out:?}");
    out
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_owned(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn document_is_openapi_3_1_served_without_a_key_with_bearer_auth() {
    let g = Gateway::start(|_| {}).await;
    let doc = document(&g).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    assert_eq!(doc["components"]["securitySchemes"]["bearer"], json!({"type": "http", "scheme": "bearer", "bearerFormat": "kw-..."}));
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    // Every operation answers errors in OpenRouter's shape, and every `$ref` resolves.
    let text = doc.to_string();
    for (method, path) in documented(&doc) {
        let op = &doc["paths"][&path][&method];
        assert!(op["responses"].as_object().unwrap().keys().any(|k| k.starts_with('2')), "{method} {path}: no success response");
        if path != "/api/v1/openapi.json" && path != "/api/v1/providers" {
            assert_eq!(op["responses"]["404"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody", "{method} {path}");
        }
    }
    for r in text.split("\"#/components/schemas/").skip(1) {
        let name = r.split('"').next().unwrap();
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {name}");
    }
    // Code generators name methods after operationIds: each must be unique.
    let ids: Vec<&str> = documented(&doc).iter().map(|(m, p)| doc["paths"][p][m]["operationId"].as_str().unwrap()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "duplicate operationIds: {ids:?}");
    // The provider list is the code's own.
    let providers = &doc["components"]["schemas"]["ByokCreate"]["properties"]["provider"]["enum"];
    assert_eq!(providers.as_array().unwrap().len(), keyway_core::ProviderSlug::ALL.len());
    assert!(providers.as_array().unwrap().contains(&json!("amazon-bedrock")));
    // The error shape itself: an integer code and a message.
    let err = &doc["components"]["schemas"]["ErrorDetail"];
    assert_eq!(err["properties"]["code"]["type"], "integer");
    assert_eq!(err["required"], json!(["code", "message"]));
}

#[tokio::test]
async fn every_management_route_is_documented_and_every_documented_route_is_served() {
    let g = Gateway::start(|_| {}).await;
    let doc = document(&g).await;
    let documented = documented(&doc);
    let routes = router_routes();
    let missing: Vec<_> = routes.difference(&documented).collect();
    assert!(missing.is_empty(), "routes missing from openapi.json: {missing:?}");
    // Beyond the management router: the document itself and the public model list.
    // And the route explanation, which answers an inference key beside the inference routes.
    let extra: Vec<_> = documented
        .difference(&routes)
        .filter(|(_, p)| p != "/api/v1/openapi.json" && p != "/api/v1/models" && p != "/api/v1/route")
        .collect();
    assert!(extra.is_empty(), "openapi.json documents routes the router lacks: {extra:?}");
    // On the live router: each documented method is routed (no key: 401, or 200 where public),
    // each undocumented one on the same path is 405, so the two can't drift apart.
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path.replace("{id}", "no-such-id");
        for m in METHODS {
            let (s, body, _) = g.req(&m.to_uppercase(), &concrete, None, None).await;
            if documented.contains(&(m.to_owned(), path.clone())) {
                assert!(s == 401 || s == 200, "{m} {concrete}: {s} {body}");
            } else {
                assert_eq!(s, 405, "{m} {concrete}: undocumented method answered {s} {body}");
            }
        }
    }
}

/// A small JSON Schema check of the subset utoipa emits (`$ref`, `type` incl. `["x", "null"]`,
/// `oneOf`/`allOf`, `properties`, `required`, `items`), plus one rule of our own: a described
/// object documents every key the handler returns (free-form objects are exempt).
fn check(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return check(doc, &doc["components"]["schemas"][name], v, at, errors);
    }
    if let Some(all) = schema["allOf"].as_array() {
        // Each part checks its own fields; the union documents the object's keys.
        let mut merged = json!({"type": "object", "properties": {}, "required": []});
        for part in all {
            let part = resolve(doc, part);
            for (k, p) in part["properties"].as_object().into_iter().flatten() {
                merged["properties"][k] = p.clone();
            }
            for r in part["required"].as_array().into_iter().flatten() {
                merged["required"].as_array_mut().unwrap().push(r.clone());
            }
        }
        return check(doc, &merged, v, at, errors);
    }
    if let Some(any) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let ok = any.iter().any(|s| {
            let mut e = Vec::new();
            check(doc, s, v, at, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{at}: {v} matches none of {}", Value::Array(any.clone())));
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let fits = types.iter().any(|t| match *t {
            "null" => v.is_null(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            _ => false,
        });
        if !fits {
            errors.push(format!("{at}: {v} is not {types:?}"));
            return;
        }
    }
    if let Some(o) = v.as_object() {
        let props = schema["properties"].as_object();
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap();
            if !o.contains_key(r) {
                errors.push(format!("{at}: required `{r}` is missing"));
            }
        }
        if let Some(props) = props.filter(|p| !p.is_empty()) {
            for (k, val) in o {
                match props.get(k) {
                    Some(p) => check(doc, p, val, &format!("{at}.{k}"), errors),
                    None => errors.push(format!("{at}: `{k}` is returned but not documented")),
                }
            }
        }
    }
    if let (Some(a), Some(items)) = (v.as_array(), schema.get("items")) {
        for (i, item) in a.iter().enumerate() {
            check(doc, items, item, &format!("{at}[{i}]"), errors);
        }
    }
}

fn resolve<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    match s["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => s,
    }
}

/// Checks a call's answer against the schema documented for its status.
fn conforms(doc: &Value, method: &str, path: &str, status: u16, body: &Value, seen: &mut BTreeSet<(String, String)>) {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let schema = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path}: status {status} is not documented ({body})");
    let mut errors = Vec::new();
    check(doc, schema, body, "$", &mut errors);
    assert!(errors.is_empty(), "{method} {path} {status}: the answer does not match its schema:\n{}\n{body:#}", errors.join("\n"));
    seen.insert((method.to_owned(), path.to_owned()));
}

#[tokio::test]
async fn every_documented_success_shape_matches_its_handler() {
    let (fake, g, inference) = openai_gateway(FakeOptions::default(), "sk-system-openapi-0001").await;
    let doc = document(&g).await;
    let mut seen = BTreeSet::new();
    macro_rules! call {
        ($method:literal, $doc_path:literal, $path:expr, $body:expr, $want:literal) => {{
            let (s, v) = g.mgmt(&$method.to_uppercase(), &$path, $body).await;
            assert_eq!(s, $want, "{} {}: {v}", $method, $path);
            conforms(&doc, $method, $doc_path, s, &v, &mut seen);
            v
        }};
    }
    // A generation to read back (and activity rows to aggregate).
    let (s, v, headers) = g
        .req("POST", "/v1/chat/completions", Some(&inference), Some(json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})))
        .await;
    assert_eq!(s, 200, "{v}");
    let gen_id = headers["x-keyway-generation-id"].to_str().unwrap().to_owned();

    let ws = call!("post", "/api/v1/workspaces", "/api/v1/workspaces", Some(json!({"name": "Docs team"})), 201);
    let ws_id = ws["data"]["id"].as_str().unwrap().to_owned();
    call!("get", "/api/v1/workspaces", "/api/v1/workspaces", None, 200);

    let byok = call!("post", "/api/v1/byok", "/api/v1/byok", Some(json!({"provider": "openai", "key": "sk-test-openapi-0001", "name": "docs"})), 201);
    let id = byok["data"]["id"].as_str().unwrap().to_owned();
    // Tested before it is stored: `test` beside `data`.
    let tested = call!("post", "/api/v1/byok", "/api/v1/byok", Some(json!({"provider": "openai", "key": "sk-test-openapi-0002", "test": true, "workspace_id": ws_id})), 201);
    assert_eq!(tested["test"]["ok"], true, "{tested}");
    call!("get", "/api/v1/byok", "/api/v1/byok", None, 200);
    call!("get", "/api/v1/byok/{id}", format!("/api/v1/byok/{id}"), None, 200);
    call!("patch", "/api/v1/byok/{id}", format!("/api/v1/byok/{id}"), Some(json!({"allowed_models": ["openai/gpt-4o-mini"], "declared_region": "eu"})), 200);
    let t = call!("post", "/api/v1/byok/{id}/test", format!("/api/v1/byok/{id}/test"), None, 200);
    assert_eq!(t["ok"], true, "{t}");
    call!("post", "/api/v1/byok/test", "/api/v1/byok/test", Some(json!({"provider": "openai", "key": "sk-test-openapi-0003"})), 200);

    let key = call!("post", "/api/v1/keys", "/api/v1/keys", Some(json!({"name": "docs", "limits": {"requests_per_minute": 10}, "limit": 5.0})), 201);
    let hash = key["data"]["hash"].as_str().unwrap().to_owned();
    call!("get", "/api/v1/keys", "/api/v1/keys", None, 200);
    call!("get", "/api/v1/keys/{id}", format!("/api/v1/keys/{hash}"), None, 200);
    call!("patch", "/api/v1/keys/{id}", format!("/api/v1/keys/{hash}"), Some(json!({"disabled": true})), 200);
    call!("get", "/api/v1/key", "/api/v1/key", None, 200);
    // An inference key reads itself too, with its budget.
    let (s, v, _) = g.req("GET", "/api/v1/key", Some(key["key"].as_str().unwrap()), None).await;
    assert_eq!(s, 401, "a disabled key is refused: {v}");
    let (s, v, _) = g.req("GET", "/api/v1/key", Some(&inference), None).await;
    conforms(&doc, "get", "/api/v1/key", s, &v, &mut seen);

    call!("get", "/api/v1/credits", "/api/v1/credits", None, 200);
    call!("post", "/api/v1/credits", "/api/v1/credits", Some(json!({"amount_micros": 5_000_000, "note": "docs"})), 201);

    call!("get", "/api/v1/keyring", "/api/v1/keyring", None, 200);
    call!("post", "/api/v1/keyring/rotate", "/api/v1/keyring/rotate", None, 200);

    call!("get", "/api/v1/providers", "/api/v1/providers", None, 200);
    call!("get", "/api/v1/models", "/api/v1/models?limit=3", None, 200);
    // The route explanation answers the inference key: candidates and what was left out, and why.
    let (s, v, _) = g
        .req("POST", "/api/v1/route", Some(&inference), Some(json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "provider": {"ignore": ["azure"]}})))
        .await;
    conforms(&doc, "post", "/api/v1/route", s, &v, &mut seen);
    assert!(v["data"]["excluded"].as_array().unwrap().iter().any(|x| x["code"] == "model_not_allowed"), "{v}");

    // Usage is written a moment after the request ends.
    let mut generation = (0, Value::Null);
    for _ in 0..100 {
        generation = g.mgmt("GET", &format!("/api/v1/generation?id={gen_id}"), None).await;
        if generation.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    conforms(&doc, "get", "/api/v1/generation", generation.0, &generation.1, &mut seen);
    assert_eq!(generation.1["data"]["provider"], "openai");
    for group in ["", "?group_by=model", "?group_by=provider", "?group_by=key", "?group_by=credential", "?group_by=day", "?group_by=app"] {
        let v = call!("get", "/api/v1/activity", format!("/api/v1/activity{group}"), None, 200);
        assert!(!v["data"].as_array().unwrap().is_empty(), "{group}: {v}");
    }
    let (s, _, headers) = g.req("GET", "/api/v1/activity?format=csv", Some(MGMT), None).await;
    assert_eq!(s, 200);
    assert!(doc["paths"]["/api/v1/activity"]["get"]["responses"]["200"]["content"]["text/csv"].is_object());
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/csv"));

    call!("get", "/api/v1/audit", "/api/v1/audit", None, 200);
    call!("delete", "/api/v1/keys/{id}", format!("/api/v1/keys/{hash}"), None, 200);
    call!("delete", "/api/v1/byok/{id}", format!("/api/v1/byok/{id}"), None, 200);
    seen.insert(("get".into(), "/api/v1/openapi.json".into()));

    // Every documented operation was called above.
    let missing: Vec<_> = documented(&doc).difference(&seen).cloned().collect();
    assert!(missing.is_empty(), "documented operations without a shape check: {missing:?}");
    drop(fake);
}

#[tokio::test]
async fn errors_match_the_documented_error_shape() {
    let g = Gateway::start(|_| {}).await;
    let doc = document(&g).await;
    let mut seen = BTreeSet::new();
    for (method, path, body, want) in [
        ("get", "/api/v1/byok/{id}", None, 404),
        ("post", "/api/v1/byok", Some(json!({"provider": "nope", "key": "x"})), 400),
        ("post", "/api/v1/byok", Some(json!({"provider": "openai", "key": ""})), 422),
        ("post", "/api/v1/keys", Some(json!({"name": "x", "bogus": 1})), 400),
        ("get", "/api/v1/audit", None, 400),
    ] {
        let concrete = path.replace("{id}", "nope");
        let concrete = if path == "/api/v1/audit" { format!("{concrete}?limit=0") } else { concrete };
        let (s, v) = g.mgmt(&method.to_uppercase(), &concrete, body).await;
        assert_eq!(s, want, "{method} {concrete}: {v}");
        conforms(&doc, method, path, s, &v, &mut seen);
        assert_eq!(v["error"]["code"], want);
    }
    let (s, v, _) = g.req("GET", "/api/v1/keys", None, None).await;
    conforms(&doc, "get", "/api/v1/keys", s, &v, &mut seen);
    assert_eq!(s, 401);
}

/// The checker above is what makes the shape test mean something: drift in either direction
/// (a field the handler adds, a type the document gets wrong, a field it stops sending) fails it.
#[tokio::test]
async fn the_shape_check_catches_drift() {
    let g = Gateway::start(|_| {}).await;
    let doc = document(&g).await;
    let (s, answer) = g.mgmt("GET", "/api/v1/workspaces", None).await;
    assert_eq!(s, 200);
    let schema = json!({"$ref": "#/components/schemas/WorkspaceList"});
    let errors_with = |doc: &Value| {
        let mut e = Vec::new();
        check(doc, &schema, &answer, "$", &mut e);
        e
    };
    assert_eq!(errors_with(&doc), Vec::<String>::new());
    let mut undocumented = doc.clone();
    undocumented["components"]["schemas"]["Workspace"]["properties"].as_object_mut().unwrap().remove("slug");
    assert!(errors_with(&undocumented).iter().any(|e| e.contains("`slug` is returned but not documented")));
    let mut wrong_type = doc.clone();
    wrong_type["components"]["schemas"]["Workspace"]["properties"]["created_at"] = json!({"type": "integer"});
    assert!(errors_with(&wrong_type).iter().any(|e| e.contains("created_at")));
    let mut missing = doc.clone();
    missing["components"]["schemas"]["WorkspaceList"]["required"].as_array_mut().unwrap().push(json!("next_cursor"));
    assert!(errors_with(&missing).iter().any(|e| e.contains("required `next_cursor` is missing")));
}

// ---- handler bugs schemathesis found, each pinned here ----

/// Two top-ups near `i64::MAX` were both accepted; the store's per-workspace sum then
/// overflowed, so credit reconciliation failed from then on and `keyway serve` refused to start
/// ("integer overflow") on that database. Top-ups are now bounded, one and in total.
#[tokio::test]
async fn top_ups_cannot_overflow_the_ledger_and_the_instance_still_starts() {
    use keyway_gateway::routes::credits::{MAX_CREDITS_MICROS, MAX_TOP_UP_MICROS};
    let g = Gateway::start(|_| {}).await;
    for amount in [i64::MAX / 2 + 1, MAX_TOP_UP_MICROS + 1] {
        let (s, v) = g.mgmt("POST", "/api/v1/credits", Some(json!({"amount_micros": amount}))).await;
        common::assert_error(s, &v, 400);
    }
    let mut total = 0;
    while total + MAX_TOP_UP_MICROS <= MAX_CREDITS_MICROS {
        let (s, v) = g.mgmt("POST", "/api/v1/credits", Some(json!({"amount_micros": MAX_TOP_UP_MICROS}))).await;
        assert_eq!(s, 201, "{v}");
        total += MAX_TOP_UP_MICROS;
    }
    let (s, v) = g.mgmt("POST", "/api/v1/credits", Some(json!({"amount_micros": 1}))).await;
    common::assert_error(s, &v, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("past"), "{v}");
    // The sums the store keeps still load: a second instance on the same data starts.
    let (state, _) = keyway_gateway::AppState::build(common::config(g.dir.path())).await.expect("the instance starts");
    let ws = g.mgmt("GET", "/api/v1/credits", None).await.1["data"]["workspace_id"].as_str().unwrap().to_owned();
    assert_eq!(state.billing.balance(&ws, chrono::Utc::now().timestamp_millis()).credits_micros, total);
}

/// A repeated or unknown query field, or an id that is not UTF-8, was answered by axum's own
/// plain-text 400, not the documented `{"error": {...}}` shape.
#[tokio::test]
async fn query_and_path_rejections_speak_the_error_shape() {
    let g = Gateway::start(|_| {}).await;
    let doc = document(&g).await;
    let mut seen = BTreeSet::new();
    for (doc_path, path) in [
        ("/api/v1/audit", "/api/v1/audit?bogus=1"),
        ("/api/v1/generation", "/api/v1/generation?id=a&id=b"),
        ("/api/v1/byok", "/api/v1/byok?limit=1&limit=2"),
        ("/api/v1/keys", "/api/v1/keys?offset=1&offset=2"),
        ("/api/v1/credits", "/api/v1/credits?workspace_id=a&workspace_id=b"),
        ("/api/v1/activity", "/api/v1/activity?group_by=model&group_by=day"),
        ("/api/v1/models", "/api/v1/models?limit=1&limit=2"),
        ("/api/v1/byok/{id}", "/api/v1/byok/%FF"),
        ("/api/v1/keys/{id}", "/api/v1/keys/%FF"),
    ] {
        let (s, v, headers) = g.req("GET", path, Some(MGMT), None).await;
        assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"), "{path}: {v}");
        conforms(&doc, "get", doc_path, s, &v, &mut seen);
        assert_eq!((s, &v["error"]["code"]), (400, &json!(400)), "{path}: {v}");
    }
    // The OpenAI-shaped surface gets its own dialect from the same extractor.
    let (s, v, _) = g.req("GET", "/v1/models?limit=1&limit=2", None, None).await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("limit"), "{v}");
}
