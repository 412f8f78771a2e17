//! The Vercel AI SDK's gateway protocol at `/v1/ai` (what `@ai-sdk/gateway` sends), against
//! the OpenAI and Anthropic fakes: generate, stream with tools, request-scoped BYOK, config,
//! embeddings, credits, generation info, and each error class the SDK types.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::Fault;
use keyway_gateway::config::ProviderSettings;
use serde_json::{json, Value};

const SYSTEM_OPENAI: &str = "sk-openai-system-0000001";
const SYSTEM_ANTHROPIC: &str = "sk-ant-system-000000001";

/// The headers `@ai-sdk/gateway` 4 sends with a language-model call.
fn sdk_post(g: &Gateway, path: &str, key: &str, model: &str, streaming: bool) -> reqwest::RequestBuilder {
    g.http
        .post(g.url(path))
        .bearer_auth(key)
        .header("ai-gateway-protocol-version", "0.0.1")
        .header("ai-gateway-auth-method", "api-key")
        .header("ai-language-model-specification-version", "4")
        .header("ai-language-model-id", model)
        .header("ai-language-model-streaming", streaming.to_string())
}

fn prompt(text: &str) -> Value {
    json!({"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": text}]}]})
}

async fn both() -> (keyway_fakes::FakeServer, keyway_fakes::FakeServer, Gateway, String) {
    let openai = keyway_fakes::openai::start(FakeOptions::default()).await.unwrap();
    let anthropic = keyway_fakes::anthropic::start(FakeOptions::default()).await.unwrap();
    let (ob, ab) = (format!("{}/v1", openai.url()), anthropic.url());
    let g = Gateway::start(|c| {
        c.providers.insert("openai".into(), ProviderSettings { base_url: Some(ob.clone()) });
        c.providers.insert("anthropic".into(), ProviderSettings { base_url: Some(ab.clone()) });
        c.system_credentials.push(system_key("openai", SYSTEM_OPENAI));
        c.system_credentials.push(system_key("anthropic", SYSTEM_ANTHROPIC));
    })
    .await;
    let (key, _) = g.inference_key().await;
    (openai, anthropic, g, key)
}

async fn json_of(r: reqwest::Response) -> (u16, Value, reqwest::header::HeaderMap) {
    let s = r.status().as_u16();
    let h = r.headers().clone();
    (s, r.json().await.unwrap_or(Value::Null), h)
}

/// `data:` lines of an SSE body, parsed.
fn parts(sse: &str) -> Vec<Value> {
    sse.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect()
}

async fn generation(g: &Gateway, key: &str, id: &str) -> Value {
    for _ in 0..100 {
        let (s, v, _) = g.req("GET", &format!("/v1/generation?id={id}"), Some(key), None).await;
        if s == 200 {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("generation {id} never appeared");
}

#[tokio::test]
async fn generate_answers_the_sdk_result_and_records_the_generation() {
    let (openai, _a, g, key) = both().await;
    let (s, v, h) = json_of(sdk_post(&g, "/v1/ai/language-model", &key, "openai/gpt-4o-mini", false).json(&prompt("hello vercel")).send().await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["content"][0]["type"], "text");
    assert!(v["content"][0]["text"].as_str().unwrap().contains("hello vercel"), "{v}");
    assert_eq!(v["finishReason"], json!({"unified": "stop", "raw": "stop"}));
    let input = v["usage"]["inputTokens"]["total"].as_u64().unwrap();
    assert!(input > 0);
    assert_eq!(v["usage"]["inputTokens"]["cacheRead"], 0);
    assert!(v["usage"]["outputTokens"]["total"].as_u64().unwrap() > 0);
    let meta = &v["providerMetadata"];
    assert_eq!(meta["gateway"]["routing"]["resolvedProvider"], "openai");
    assert_eq!(meta["gateway"]["routing"]["credentialType"], "system");
    assert_eq!(meta["keyway"]["credentialId"], "system");
    assert!(meta["keyway"]["costMicros"].as_u64().unwrap() > 0, "the catalog prices gpt-4o-mini: {meta}");
    let gen_id = h["x-keyway-generation-id"].to_str().unwrap().to_owned();
    assert_eq!(meta["gateway"]["generationId"], gen_id.as_str());
    // What went upstream is an OpenAI chat body.
    let sent = &openai.calls()[0].body;
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "be brief"}));
    assert_eq!(sent["messages"][1], json!({"role": "user", "content": "hello vercel"}));
    assert_eq!(sent["model"], "gpt-4o-mini");

    let gen = generation(&g, &key, &gen_id).await;
    let d = &gen["data"];
    assert_eq!(d["id"], gen_id.as_str());
    assert_eq!(d["provider_name"], "OpenAI");
    assert_eq!(d["is_byok"], false);
    assert_eq!(d["streamed"], false);
    assert_eq!(d["finish_reason"], "stop");
    assert_eq!(d["native_tokens_prompt"].as_u64(), Some(input));
    assert!(d["total_cost"].as_f64().unwrap() > 0.0);
    // The OpenRouter-shaped generation stays at /api/v1.
    let (s, v, _) = g.req("GET", &format!("/api/v1/generation?id={gen_id}"), Some(&key), None).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"]["tokens_prompt"].as_u64(), Some(input));
}

#[tokio::test]
async fn stream_with_tools_sends_sdk_stream_parts() {
    let (openai, _a, g, key) = both().await;
    let mut body = prompt("weather?");
    body["tools"] = json!([{"type": "function", "name": "weather", "description": "get weather", "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    body["toolChoice"] = json!({"type": "auto"});
    let r = sdk_post(&g, "/v1/ai/language-model", &key, "openai/gpt-4o-mini", true).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let ps = parts(&r.text().await.unwrap());
    let types: Vec<&str> = ps.iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"stream-start"));
    assert!(types.contains(&"tool-input-start") && types.contains(&"tool-input-delta"), "{types:?}");
    let call = ps.iter().find(|p| p["type"] == "tool-call").unwrap();
    assert_eq!(call["toolName"], "weather");
    assert_eq!(serde_json::from_str::<Value>(call["input"].as_str().unwrap()).unwrap(), json!({"city": "Paris"}));
    let fin = ps.last().unwrap();
    assert_eq!(fin["type"], "finish");
    assert_eq!(fin["finishReason"]["unified"], "tool-calls");
    assert!(fin["usage"]["inputTokens"]["total"].as_u64().unwrap() > 0, "{fin}");
    assert_eq!(fin["providerMetadata"]["keyway"]["provider"], "openai");
    let sent = &openai.calls()[0].body;
    assert_eq!(sent["tools"][0]["function"]["name"], "weather");
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(sent["stream"], true);

    // A plain text stream: text-start, deltas, text-end, finish "stop".
    let r = sdk_post(&g, "/v1/ai/language-model", &key, "openai/gpt-4o-mini", true).json(&prompt("stream me")).send().await.unwrap();
    let ps = parts(&r.text().await.unwrap());
    let text: String = ps.iter().filter(|p| p["type"] == "text-delta").map(|p| p["delta"].as_str().unwrap()).collect();
    assert!(text.contains("stream me"), "{text}");
    assert!(ps.iter().any(|p| p["type"] == "text-end"));
    assert_eq!(ps.last().unwrap()["finishReason"]["unified"], "stop");
}

#[tokio::test]
async fn request_scoped_byok_reaches_the_upstream_and_stored_and_system_keys_see_nothing() {
    let (_o, anthropic, g, key) = both().await;
    g.add_byok(json!({"provider": "anthropic", "key": "sk-ant-stored-0000000001"})).await;
    let scoped = "sk-ant-request-000000001";
    let mut body = prompt("byok please");
    body["providerOptions"] = json!({"gateway": {"byok": {"anthropic": [{"apiKey": scoped}]}}});
    let (s, v, h) = json_of(sdk_post(&g, "/v1/ai/language-model", &key, "anthropic/claude-sonnet-4", false).json(&body).send().await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-credential"], "request");
    assert_eq!(v["providerMetadata"]["gateway"]["routing"]["credentialType"], "byok");
    assert_eq!(v["providerMetadata"]["keyway"]["credentialId"], "request");
    assert_eq!(anthropic.calls_with_key(scoped), 1);
    assert_eq!(anthropic.calls_with_key("sk-ant-stored-0000000001"), 0);
    assert_eq!(anthropic.calls_with_key(SYSTEM_ANTHROPIC), 0);
    // The key never comes back, nor lands in the log.
    assert!(!v.to_string().contains(scoped));
    assert!(!logs().contains(scoped));

    // Reasoning: Anthropic thinking through providerOptions.anthropic comes back as a reasoning part.
    let mut body = prompt("think first");
    body["providerOptions"] = json!({"anthropic": {"thinking": {"type": "enabled", "budgetTokens": 1024}}});
    body["maxOutputTokens"] = json!(2048);
    let (s, v, _) = json_of(sdk_post(&g, "/v1/ai/language-model", &key, "anthropic/claude-sonnet-4.5", false).json(&body).send().await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["content"][0]["type"], "reasoning", "{v}");
    assert_eq!(v["content"][1]["type"], "text");
    let sent = anthropic.calls().last().unwrap().body.clone();
    assert_eq!(sent["thinking"]["budget_tokens"], 1024);
}

#[tokio::test]
async fn structured_output_images_and_tool_results_translate() {
    let (openai, _a, g, key) = both().await;
    let body = json!({
        "prompt": [
            {"role": "user", "content": [{"type": "text", "text": "what is this"}, {"type": "file", "mediaType": "image/png", "data": {"type": "data", "data": "iVBORw0KGgo="}}]},
            {"role": "assistant", "content": [{"type": "tool-call", "toolCallId": "c1", "toolName": "look", "input": {"q": 1}}]},
            {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "c1", "toolName": "look", "output": {"type": "text", "value": "a cat"}}]}
        ],
        "responseFormat": {"type": "json", "name": "animal", "schema": {"type": "object", "properties": {"animal": {"type": "string"}, "legs": {"type": "number"}}, "required": ["animal", "legs"]}}
    });
    let (s, v, _) = json_of(sdk_post(&g, "/v1/ai/language-model", &key, "openai/gpt-4o-mini", false).json(&body).send().await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    let obj: Value = serde_json::from_str(v["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(obj["legs"], 1);
    let sent = &openai.calls()[0].body;
    assert_eq!(sent["response_format"]["type"], "json_schema");
    assert_eq!(sent["response_format"]["json_schema"]["name"], "animal");
    assert_eq!(sent["messages"][0]["content"][1]["image_url"]["url"], "data:image/png;base64,iVBORw0KGgo=");
    assert_eq!(sent["messages"][1]["tool_calls"][0]["function"]["arguments"], "{\"q\":1}");
    assert_eq!(sent["messages"][2], json!({"role": "tool", "tool_call_id": "c1", "content": "a cat"}));
}

#[tokio::test]
async fn config_embeddings_and_credits_in_the_sdk_shapes() {
    let (_o, _a, g, key) = both().await;
    let (s, v, _) = g.req("GET", "/v1/ai/config", Some(&key), None).await;
    assert_eq!(s, 200, "{v}");
    let models = v["models"].as_array().unwrap();
    let mini = models.iter().find(|m| m["id"] == "openai/gpt-4o-mini").unwrap();
    assert_eq!(mini["specification"], json!({"specificationVersion": "v4", "provider": "openai", "modelId": "openai/gpt-4o-mini"}));
    assert_eq!(mini["modelType"], "language");
    assert!(mini["pricing"]["input"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);
    let emb = models.iter().find(|m| m["id"] == "openai/text-embedding-3-small").unwrap();
    assert_eq!(emb["modelType"], "embedding");
    // Only what the key can reach: the system credentials are OpenAI's and Anthropic's.
    assert!(models.iter().all(|m| m["providers"].as_array().unwrap().iter().any(|p| p == "openai" || p == "anthropic")), "{v}");
    assert!(!models.iter().any(|m| m["id"] == "amazon/nova-micro-v1"));

    let r = g
        .http
        .post(g.url("/v1/ai/embedding-model"))
        .bearer_auth(&key)
        .header("ai-embedding-model-specification-version", "4")
        .header("ai-model-id", "openai/text-embedding-3-small")
        .json(&json!({"values": ["sunny day", "rainy night"]}))
        .send()
        .await
        .unwrap();
    let (s, v, _) = json_of(r).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["embeddings"].as_array().unwrap().len(), 2);
    assert!(v["usage"]["tokens"].as_u64().unwrap() > 0);

    let (s, v, _) = g.req("GET", "/v1/credits", Some(&key), None).await;
    assert_eq!(s, 200);
    assert!(v["balance"].is_string() && v["total_used"].is_string(), "{v}");
    // OpenRouter's shape stays at /api/v1/credits.
    let (s, v, _) = g.req("GET", "/api/v1/credits", Some(&key), None).await;
    assert_eq!(s, 200);
    assert!(v["data"]["total_credits"].is_number(), "{v}");
}

#[tokio::test]
async fn errors_come_in_the_shape_the_sdk_types() {
    let (openai, _a, g, key) = both().await;
    let call = |k: &str, model: &str| sdk_post(&g, "/v1/ai/language-model", k, model, false).json(&prompt("x"));

    let (s, v, _) = json_of(call("kw-not-a-key", "openai/gpt-4o-mini").send().await.unwrap()).await;
    assert_eq!((s, v["error"]["type"].as_str()), (401, Some("authentication_error")), "{v}");

    let (s, v, _) = json_of(call(&key, "no-such-model").send().await.unwrap()).await;
    assert_eq!((s, v["error"]["type"].as_str()), (404, Some("model_not_found")), "{v}");
    assert_eq!(v["error"]["param"]["modelId"], "no-such-model");

    let (s, v, _) = json_of(call(&key, "openai/gpt-4o-mini").header("ai-language-model-specification-version", "2").send().await.unwrap()).await;
    assert_eq!((s, v["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains('4'), "{v}");

    let (s, v, _) = json_of(sdk_post(&g, "/v1/ai/language-model", &key, "openai/gpt-4o-mini", false).json(&json!({"prompt": "hi"})).send().await.unwrap()).await;
    assert_eq!((s, v["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{v}");

    openai.set_fault(Fault::RateLimit { retry_after_secs: 7 });
    let (s, v, h) = json_of(call(&key, "openai/gpt-4o-mini").send().await.unwrap()).await;
    assert_eq!((s, v["error"]["type"].as_str()), (429, Some("rate_limit_exceeded")), "{v}");
    assert_eq!(h["retry-after"], "7");
    assert!(v["generationId"].as_str().unwrap().starts_with("gen-"), "{v}");

    openai.set_fault(Fault::ServerError);
    let (s, v, _) = json_of(call(&key, "openai/gpt-4o-mini").send().await.unwrap()).await;
    assert!(s >= 500, "{s} {v}");
    assert_eq!(v["error"]["type"], "internal_server_error", "{v}");
    openai.clear_faults();

    let (s, v, _) = g.req("GET", "/v1/generation?id=gen-nope", Some(&key), None).await;
    assert_eq!((s, v["error"]["type"].as_str()), (404, Some("not_found")), "{v}");
    let (s, v, _) = g.req("GET", "/v1/ai/config", None, None).await;
    assert_eq!((s, v["error"]["type"].as_str()), (401, Some("authentication_error")), "{v}");
    // A bad request-scoped credential is a clear 4xx, never echoed back.
    let mut body = prompt("x");
    body["providerOptions"] = json!({"gateway": {"byok": {"bedrock": [{"accessKeyId": "AKIAXXXXXXXXXXXXXXXX"}]}}});
    let (s, v, _) = json_of(sdk_post(&g, "/v1/ai/language-model", &key, "openai/gpt-4o-mini", false).json(&body).send().await.unwrap()).await;
    assert!((400..500).contains(&s), "{s} {v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(!v.to_string().contains("AKIAXXXXXXXXXXXXXXXX"));
}

#[tokio::test]
async fn request_scoped_bedrock_keys_serve_through_the_sdk_protocol_streamed() {
    const AKID: &str = "AKIAVERCELREQUEST001";
    const SECRET: &str = "vercel-request-secret-xyz";
    let fake = keyway_fakes::bedrock::start(FakeOptions::default(), keyway_fakes::bedrock::BedrockConfig::default().with_key(AKID, SECRET))
        .await
        .unwrap();
    let g = Gateway::for_bedrock(&fake).await;
    let (key, _) = g.inference_key().await;
    let mut body = prompt("nova via bedrock");
    // The Vercel BYOK page's Bedrock shape, and the region option beside it.
    body["providerOptions"] = json!({
        "gateway": {"byok": {"bedrock": [{"accessKeyId": AKID, "secretAccessKey": SECRET, "region": "eu-west-1"}]}},
        "bedrock": {"region": "eu-west-1"}
    });
    let r = sdk_post(&g, "/v1/ai/language-model", &key, "amazon/nova-micro-v1", true).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ps = parts(&r.text().await.unwrap());
    let text: String = ps.iter().filter(|p| p["type"] == "text-delta").map(|p| p["delta"].as_str().unwrap()).collect();
    assert!(text.contains("nova via bedrock"), "{ps:?}");
    let fin = ps.last().unwrap();
    assert_eq!(fin["providerMetadata"]["keyway"]["provider"], "amazon-bedrock");
    assert_eq!(fin["providerMetadata"]["keyway"]["credentialId"], "request");
    assert!(fin["usage"]["outputTokens"]["total"].as_u64().unwrap() > 0, "{fin}");
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].key, AKID);
    assert!(calls[0].path.starts_with("/eu-west-1/"), "{}", calls[0].path);
    assert!(!logs().contains(SECRET));
}

#[tokio::test]
async fn a_stream_cut_after_content_ends_with_an_error_part() {
    let (openai, _a, g, key) = both().await;
    openai.set_fault(Fault::CutStream);
    let r = sdk_post(&g, "/v1/ai/language-model", &key, "openai/gpt-4o-mini", true)
        .json(&prompt("a long enough answer to be cut somewhere in the middle of it"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ps = parts(&r.text().await.unwrap());
    assert!(ps.iter().any(|p| p["type"] == "text-delta"), "{ps:?}");
    let last = ps.last().unwrap();
    assert_eq!(last["type"], "error", "{ps:?}");
    assert!(last["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(!ps.iter().any(|p| p["type"] == "finish"), "a cut stream must not claim to have finished");
}

#[tokio::test]
async fn request_scoped_azure_deployments_map_the_model_through_the_sdk_protocol() {
    let fake = keyway_fakes::azure::start(FakeOptions::default()).await.unwrap();
    let g = Gateway::start(|c| c.security.allowed_upstream_hosts.push("127.0.0.1".into())).await;
    let (key, _) = g.inference_key().await;
    let mut body = prompt("azure mapped");
    body["providerOptions"] = json!({"gateway": {"only": ["azure"], "byok": {"azure": [[
        {"modelSlug": "openai/gpt-4o-mini", "endpointUrl": fake.url(), "apiKey": "azure-vercel-request-0001", "modelId": "my-mini-deployment"}]]}}});
    let (s, v, _) = json_of(sdk_post(&g, "/v1/ai/language-model", &key, "openai/gpt-4o-mini", false).json(&body).send().await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["providerMetadata"]["keyway"]["provider"], "azure");
    assert_eq!(v["providerMetadata"]["keyway"]["credentialId"], "request");
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].key, "azure-vercel-request-0001");
    assert!(calls[0].path.contains("my-mini-deployment") || calls[0].body["model"] == "my-mini-deployment", "{} {}", calls[0].path, calls[0].body);
}

#[tokio::test]
async fn anthropic_tool_calls_stream_as_sdk_parts_through_translation() {
    let (_o, anthropic, g, key) = both().await;
    let mut body = prompt("weather in Paris?");
    body["tools"] = json!([{"type": "function", "name": "weather", "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    for streaming in [false, true] {
        let r = sdk_post(&g, "/v1/ai/language-model", &key, "anthropic/claude-sonnet-4.5", streaming).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let (call, finish) = if streaming {
            let ps = parts(&text);
            let call = ps.iter().find(|p| p["type"] == "tool-call").cloned().unwrap_or_else(|| panic!("no tool-call in {ps:?}"));
            (call, ps.last().unwrap()["finishReason"].clone())
        } else {
            let v: Value = serde_json::from_str(&text).unwrap();
            let call = v["content"].as_array().unwrap().iter().find(|p| p["type"] == "tool-call").cloned().unwrap_or_else(|| panic!("no tool-call in {v}"));
            (call, v["finishReason"].clone())
        };
        assert_eq!(call["toolName"], "weather");
        assert!(serde_json::from_str::<Value>(call["input"].as_str().unwrap()).unwrap().is_object(), "{call}");
        assert!(call["toolCallId"].as_str().is_some_and(|id| !id.is_empty()));
        assert_eq!(finish["unified"], "tool-calls", "{finish}");
    }
    assert_eq!(anthropic.calls().len(), 2);
    assert_eq!(anthropic.calls()[0].body["tools"][0]["name"], "weather");
}
