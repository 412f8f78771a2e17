//! Criterion micro-benchmarks of the pieces every proxied request runs through: route planning,
//! request translation per provider, SSE and AWS event-stream decoding, the credential and key
//! caches, and key hashing. Short measurement windows keep the suite to a couple of minutes:
//! `cargo bench -p keyway-bench --bench hot_path` (see bench/README.md).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: failing loudly is right

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use keyway_core::catalog::Catalog;
use keyway_core::route::{plan, requested_parameters, CredentialMeta, PlanInput, RoutingOptions, SystemCredential};
use keyway_core::{Credential, ProviderSlug};
use keyway_providers::{Call, ChatRequest, Providers, ProvidersConfig};
use serde_json::{json, Map, Value};
use std::time::{Duration, SystemTime};

fn chat_body() -> Map<String, Value> {
    match json!({
        "model": "openai/gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a concise assistant. Answer in one short haiku."},
            {"role": "user", "content": "Write a haiku about an API gateway that adds only microseconds."}
        ],
        "temperature": 0.7,
        "max_tokens": 64,
        "user": "bench-user-42",
    }) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn route_planning(c: &mut Criterion) {
    let catalog = Catalog::builtin().unwrap();
    let key = Credential::ApiKey("sk-bench-byok-primary-0001".to_owned().into());
    let stored: Vec<CredentialMeta> = (0..2)
        .map(|i| CredentialMeta { sort_order: i, ..CredentialMeta::new(format!("cred-{i}").as_str(), ProviderSlug::OpenAi) }.with_credential(&key))
        .collect();
    let system = vec![SystemCredential::new(ProviderSlug::OpenAi)];
    let mut body = chat_body();
    let options = RoutingOptions::extract(&mut body).unwrap();
    let requested = requested_parameters(&body);
    let hash = keyway_crypto::hash_api_key("kw-bench-key");
    let input = PlanInput {
        stored: &stored,
        system: &system,
        api_key_hash: Some(&hash),
        user: Some("bench-user-42"),
        requested_parameters: &requested,
        ..PlanInput::new("openai/gpt-4o-mini", &options, &catalog, SystemTime::now())
    };
    assert_eq!(plan(&input).unwrap().attempts.len(), 3, "the realistic plan has three candidates");
    c.bench_function("route/plan_3_candidates", |b| b.iter(|| plan(black_box(&input)).unwrap().attempts.len()));
    c.bench_function("route/extract_options", |b| {
        b.iter_batched(chat_body, |mut body| RoutingOptions::extract(&mut body).unwrap(), BatchSize::SmallInput)
    });
}

fn translation(c: &mut Criterion) {
    let providers = Providers::new(ProvidersConfig::default()).unwrap();
    let req = ChatRequest::new(chat_body());
    let api_key = Credential::ApiKey("sk-bench-0123456789abcdef".to_owned().into());
    let bedrock = Credential::parse(
        ProviderSlug::AmazonBedrock,
        &json!({"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "region": "us-east-1"}),
    )
    .ok();
    type Case<'a> = (&'a str, ProviderSlug, &'a str, Option<&'a Credential>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        ("openai_compat", ProviderSlug::OpenAi, "gpt-4o-mini", Some(&api_key), None),
        ("anthropic", ProviderSlug::Anthropic, "claude-sonnet-4-5", Some(&api_key), None),
        ("google_ai_studio", ProviderSlug::GoogleAiStudio, "gemini-2.5-flash", Some(&api_key), None),
        ("bedrock_sigv4", ProviderSlug::AmazonBedrock, "anthropic.claude-3-5-haiku-20241022-v1:0", bedrock.as_ref(), Some("us-east-1")),
    ];
    for (name, provider, model, cred, region) in cases {
        let (Some(adapter), Some(cred)) = (providers.get(provider), cred) else { continue };
        let call = Call { provider, model, gateway_model: model, credential: cred, region };
        // preview_chat builds the exact upstream request `chat` would send (no I/O).
        if futures::executor::block_on(adapter.preview_chat(&call, &req)).is_err() {
            eprintln!("skipping translate/{name}: preview failed");
            continue;
        }
        c.bench_function(&format!("translate/{name}_request"), |b| b.iter(|| futures::executor::block_on(adapter.preview_chat(black_box(&call), &req)).unwrap()));
    }
    let body = chat_body();
    c.bench_function("translate/openai_to_anthropic_body", |b| {
        b.iter(|| keyway_providers::translate::anthropic::openai_request_to_anthropic(black_box(&body), "claude-sonnet-4-5").unwrap())
    });
    // What the OpenAI-compatible adapter used to do (clone, edit, serialise) next to what it
    // does now (serialise the borrowed body with `model` replaced).
    c.bench_function("translate/body_clone_and_serialize", |b| {
        b.iter(|| {
            let mut m = req.body.map().unwrap().clone();
            m.insert("model".into(), Value::String("gpt-4o-mini".into()));
            serde_json::to_vec(&Value::Object(m)).unwrap()
        })
    });
    c.bench_function("translate/body_borrowed_serialize", |b| {
        b.iter(|| serde_json::to_vec(&keyway_providers::openai_compat::UpstreamBody { body: &req.body, model: "gpt-4o-mini", stream_usage: false }).unwrap())
    });
    // The client's body from its bytes to the upstream's bytes, with the gateway's reads on the
    // way (model, stream, messages, the token estimate): parsed into a `Map` (before) vs split at
    // the top level, values kept as the client's text (now).
    // A short body, and a conversation of 20 turns (~9 KB), which is where the parse grows.
    let mut long = chat_body();
    let turn = "A sentence of an ongoing conversation, long enough to be typical of chat history. ".repeat(5);
    long.insert("messages".into(), Value::Array((0..20).map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": turn})).collect()));
    let gateway_reads = |body: &keyway_providers::RequestBody| {
        let model = body.value("model");
        let stream = body.value("stream");
        let listed = body.is_nonempty_list("messages");
        let demand = keyway_gateway::estimate::demand_of_body(body);
        black_box((model, stream, listed, demand));
    };
    for (name, client_bytes) in [("short", serde_json::to_vec(&chat_body()).unwrap()), ("20_turns", serde_json::to_vec(&long).unwrap())] {
        c.bench_function(&format!("request/{name}_body_as_map"), |b| {
            b.iter(|| {
                let map: Map<String, Value> = serde_json::from_slice(black_box(&client_bytes)).unwrap();
                let body = keyway_providers::RequestBody::from(map);
                gateway_reads(&body);
                serde_json::to_vec(&keyway_providers::openai_compat::UpstreamBody { body: &body, model: "gpt-4o-mini", stream_usage: false }).unwrap()
            })
        });
        c.bench_function(&format!("request/{name}_body_raw"), |b| {
            b.iter(|| {
                let raw = keyway_providers::RawObject::parse(black_box(&client_bytes)).unwrap();
                let body = keyway_providers::RequestBody::from(raw);
                gateway_reads(&body);
                serde_json::to_vec(&keyway_providers::openai_compat::UpstreamBody { body: &body, model: "gpt-4o-mini", stream_usage: false }).unwrap()
            })
        });
    }
    // The answer on its way back: parsed into a tree, edited, written (before) vs split at the
    // top level, edited, written (now).
    let answer = br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today? I can answer questions, write and explain code, and more.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":21,"total_tokens":40,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_bench"}"#;
    // A streamed chunk takes the same edits (gateway/src/proxy/stream.rs, `render_openai`).
    let chunk: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{"content":" microseconds"},"logprobs":null,"finish_reason":null}]}"#;
    // The adapter's read of each streamed chunk (error? finished? content? usage?): a borrowed
    // view of the few fields (now) vs the whole chunk parsed into a `Value` (before).
    let chunk_text = std::str::from_utf8(chunk).unwrap().to_owned();
    c.bench_function("stream_chunk/adapter_read_borrowed_view", |b| {
        b.iter(|| keyway_providers::openai_compat::chunk_items(black_box(chunk_text.clone())).0.len())
    });
    c.bench_function("stream_chunk/adapter_read_value_parse", |b| {
        b.iter(|| keyway_providers::bench::chunk_items_by_value(black_box(chunk_text.clone())).0.len())
    });
    // The gateway's edit of a chunk whose layout the adapter's read found (now): three values
    // spliced, no second parse.
    let (items, _) = keyway_providers::openai_compat::chunk_items(chunk_text.clone());
    let (chunk_bytes, shape) = items
        .into_iter()
        .find_map(|i| match i {
            Ok(keyway_providers::StreamEvent::Chunk { json, shape: Some(shape), .. }) => Some((json, shape)),
            _ => None,
        })
        .expect("the bench chunk has a shape");
    let [id, provider, model] = ["gen-0123456789abcdef0123456789abcdef", "OpenAI", "openai/gpt-4o-mini"].map(keyway_providers::json_str);
    c.bench_function("stream_chunk/shape_splice_write", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            black_box(&shape).write_edited(black_box(&chunk_bytes), &id, &provider, &model, &mut out);
            out
        })
    });
    // The adapter's read of a whole answer and the gateway's edits, end to end: split at the
    // top level (before) vs one borrowed scan and a splice (now).
    let answer_bytes = bytes::Bytes::from_static(answer);
    let edit = |mut body: keyway_providers::Body| {
        body.set("id", &"gen-0123456789abcdef0123456789abcdef");
        body.set_if_absent("system_fingerprint", &Value::Null);
        body.set("provider", &"OpenAI");
        body.set("model", &"openai/gpt-4o-mini");
        let _ = body.first_finish_reason();
        body.to_vec()
    };
    c.bench_function("response/adapter_read_split_edit_write", |b| {
        b.iter(|| edit(keyway_providers::bench::read_raw(black_box(&answer_bytes)).unwrap().0))
    });
    c.bench_function("response/adapter_read_shaped_edit_write", |b| {
        b.iter(|| edit(keyway_providers::openai_compat::read_answer(black_box(&answer_bytes)).unwrap().0))
    });
    for (name, json) in [("response", &answer[..]), ("stream_chunk", chunk)] {
        c.bench_function(&format!("{name}/value_parse_edit_write"), |b| {
            b.iter(|| {
                let mut v: Value = serde_json::from_slice(black_box(json)).unwrap();
                let o = v.as_object_mut().unwrap();
                o.insert("id".into(), json!("gen-0123456789abcdef0123456789abcdef"));
                o.insert("model".into(), json!("openai/gpt-4o-mini"));
                o.insert("provider".into(), json!("OpenAI"));
                serde_json::to_vec(&v).unwrap()
            })
        });
        c.bench_function(&format!("{name}/raw_split_edit_write"), |b| {
            b.iter(|| {
                let mut body = keyway_providers::Body::Raw(keyway_providers::RawObject::parse(black_box(json)).unwrap());
                body.set("id", &"gen-0123456789abcdef0123456789abcdef");
                body.set("model", &"openai/gpt-4o-mini");
                body.set("provider", &"OpenAI");
                let _ = body.first_finish_reason();
                body.to_vec()
            })
        });
    }
}

fn sse_stream() -> Vec<u8> {
    let mut s = String::new();
    s.push_str("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
    for i in 0..32 {
        s.push_str(&format!("data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token {i} \"}},\"finish_reason\":null}}]}}\n\n"));
    }
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

fn decoding(c: &mut Criterion) {
    let stream = sse_stream();
    let mut g = c.benchmark_group("decode");
    g.throughput(criterion::Throughput::Elements(34));
    g.bench_function("sse_34_events_in_64_byte_reads", |b| {
        b.iter(|| {
            let mut d = keyway_providers::sse::SseDecoder::new();
            let mut n = 0;
            for piece in stream.chunks(64) {
                d.push(piece);
                while let Ok(Some(ev)) = d.next_event() {
                    n += ev.data.len();
                }
            }
            n
        })
    });
    let mut frames = Vec::new();
    frames.extend(keyway_fakes::bedrock::event_frame("messageStart", json!({"role": "assistant"})));
    for i in 0..32 {
        frames.extend(keyway_fakes::bedrock::event_frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": format!("token {i} ")}})));
    }
    frames.extend(keyway_fakes::bedrock::event_frame("messageStop", json!({"stopReason": "end_turn"})));
    g.bench_function("eventstream_34_frames_in_64_byte_reads", |b| {
        b.iter(|| {
            let mut d = keyway_providers::bedrock::EventStreamDecoder::new();
            let mut n = 0;
            for piece in frames.chunks(64) {
                d.push(piece);
                while let Ok(Some(m)) = d.next_message() {
                    n += m.payload().len();
                }
            }
            n
        })
    });
    g.finish();
}

/// Start-up cost of the model catalog: parsing the embedded JSON (what the first
/// `Catalog::builtin` does; later calls are a reference-count bump) and applying `[[pricing]]`.
fn catalog_load(c: &mut Criterion) {
    c.bench_function("catalog/parse_builtin", |b| b.iter(|| Catalog::from_json(black_box(keyway_core::catalog::BUILTIN)).unwrap()));
    c.bench_function("catalog/builtin_cached", |b| b.iter(|| Catalog::builtin().unwrap()));
}

fn caches_and_hashing(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keyring = std::sync::Arc::new(keyway_crypto::Keyring::new(keyway_crypto::MasterKey::generate()));
    let (store, ws, hash) = rt.block_on(async {
        let store = keyway_store::Store::connect(&keyway_store::Store::sqlite_url(dir.path()), keyring).await.unwrap();
        let ws = store.create_workspace("Bench", "bench").await.unwrap();
        for (i, k) in ["sk-bench-byok-primary-0001", "sk-bench-byok-secondary-0002"].iter().enumerate() {
            let fields = keyway_store::ByokFields {
                name: format!("bench {i}"),
                disabled: false,
                is_fallback: false,
                always_use: false,
                is_byok_only: false,
                sort_order: i as i64,
                allowed_models: vec![],
                allowed_api_key_hashes: vec![],
                allowed_user_ids: vec![],
                model_mappings: vec![],
                declared_region: None,
                declared_zdr: false,
            };
            store.create_byok(&ws.id, ProviderSlug::OpenAi, &fields, &Credential::ApiKey(k.to_string().into())).await.unwrap();
        }
        let (rec, _raw) = store
            .create_key(&ws.id, "bench", keyway_store::KeyKind::Inference, false, &keyway_store::Limits::default())
            .await
            .unwrap();
        (store, ws.id, rec.hash)
    });
    let creds = keyway_gateway::cache::CredentialCache::new(Duration::from_secs(3600));
    let keys = keyway_gateway::cache::KeyCache::new(Duration::from_secs(3600));
    rt.block_on(async {
        assert_eq!(creds.get(&store, &ws).await.unwrap().entries.len(), 2);
        assert!(keys.get(&store, &hash).await.unwrap().is_some());
    });
    let before = store.query_count();
    c.bench_function("cache/credentials_hit", |b| b.iter(|| rt.block_on(creds.get(&store, black_box(&ws))).unwrap().entries.len()));
    c.bench_function("cache/api_key_hit", |b| b.iter(|| rt.block_on(keys.get(&store, black_box(&hash))).unwrap().is_some()));
    assert_eq!(store.query_count(), before, "cache hits must not query the store");
    let raw = "kw-0123456789abcdef0123456789abcdef0123456789abcdef";
    c.bench_function("crypto/hash_api_key", |b| b.iter(|| keyway_crypto::hash_api_key(black_box(raw))));
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(50);
    targets = route_planning, translation, decoding, catalog_load, caches_and_hashing
}
criterion_main!(benches);
