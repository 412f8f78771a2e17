"""The official `openai` Python SDK against Keyway's /v1, served by the OpenAI fake."""

from __future__ import annotations

import json
import re

import openai
import pytest

MODEL = "openai/gpt-4o-mini"


def client(gw, key=None, **kw) -> openai.OpenAI:
    # max_retries=0: the SDK must see Keyway's status as is, not retry it away.
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key=key or gw.inference_key, max_retries=0, **kw)


def test_chat_completion_through_system_credential(gw):
    raw = client(gw).chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "hello there"}])
    resp = raw.parse()
    assert resp.choices[0].message.content == "Echo: hello there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == MODEL
    assert resp.usage is not None and resp.usage.total_tokens > 0
    assert raw.headers["x-keyway-provider"] == "openai"
    assert raw.headers["x-keyway-credential"] == "system"
    assert raw.headers["x-keyway-generation-id"] == resp.id
    # The fake saw the system key and the upstream model id, not Keyway's slug.
    call = gw.calls("openai")[-1]
    assert call["body"]["model"] == "gpt-4o-mini"
    assert call["key_hint"].endswith(gw.system_keys["openai"][-4:])


def test_streaming_chunks_reassemble(gw):
    stream = client(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "stream me please"}], stream=True)
    parts, finish, ids = [], None, set()
    for chunk in stream:
        ids.add(chunk.id)
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert "".join(parts) == "Echo: stream me please"
    assert finish == "stop"
    assert len(ids) == 1 and next(iter(ids)).startswith("gen-")


def test_streaming_with_usage_option(gw):
    stream = client(gw).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "count"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert any(c.usage is not None and c.usage.completion_tokens > 0 for c in chunks)


def test_tools_round_trip(gw):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    resp = client(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "weather in Paris?"}], tools=tools)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    # The tool definitions reached the upstream untouched.
    assert gw.calls("openai")[-1]["body"]["tools"] == tools


def test_tools_streaming(gw):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]
    stream = client(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "weather?"}], tools=tools, stream=True)
    name, args = None, ""
    for chunk in stream:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
    assert name == "get_weather"
    assert json.loads(args) == {"city": "Paris"}


def test_embeddings(gw):
    resp = client(gw).embeddings.create(model="openai/text-embedding-3-small", input=["one", "two"])
    assert len(resp.data) == 2
    assert all(len(d.embedding) > 0 for d in resp.data)
    assert resp.usage.prompt_tokens > 0


def test_models_list(gw):
    ids = {m.id for m in client(gw).models.list()}
    assert {MODEL, "anthropic/claude-sonnet-4.5"} <= ids


def test_wrong_key_is_authentication_error(gw):
    with pytest.raises(openai.AuthenticationError) as e:
        client(gw, key="kw-not-a-real-key-000000000000").chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 401
    assert "kw-not-a-real-key" not in str(e.value.body)


def test_empty_messages_is_bad_request(gw):
    with pytest.raises(openai.BadRequestError) as e:
        client(gw).chat.completions.create(model=MODEL, messages=[])
    assert e.value.status_code == 400
    assert "messages" in e.value.message


def test_unknown_model_is_bad_request_or_not_found(gw):
    with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as e:
        client(gw).chat.completions.create(model="no-such-vendor-model", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code in (400, 404)


def test_model_without_credential_is_not_found(ws):
    # Mistral has no system credential and the workspace has no Mistral key: nothing can serve it.
    with pytest.raises(openai.NotFoundError) as e:
        ws.openai().chat.completions.create(model="mistralai/mistral-small", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 404
    assert "no usable credential" in e.value.message


def test_unknown_route_is_not_found(gw):
    with pytest.raises(openai.NotFoundError):
        client(gw).get("/no/such/route", cast_to=object)


def test_upstream_bad_request_is_bad_request(gw):
    gw.set_fault("openai", "bad_request")
    with pytest.raises(openai.BadRequestError) as e:
        client(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 400


def test_pinned_byok_key_rate_limited_is_rate_limit_error(ws, gw):
    k = ws.add_byok("openai", always_use=True)
    gw.set_fault("openai", "rate_limit", key=k["raw_key"], retry_after_secs=7)
    with pytest.raises(openai.RateLimitError) as e:
        ws.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 429
    assert e.value.response.headers.get("retry-after") is not None
    # Pinned: the system credential was not tried.
    assert all(not c["key_hint"].endswith(gw.system_keys["openai"][-4:]) for c in gw.calls("openai"))
    assert k["raw_key"] not in e.value.response.text


def test_byok_key_serves_and_falls_back_on_429(ws, gw):
    k1 = ws.add_byok("openai", name="first", sort_order=1)
    k2 = ws.add_byok("openai", name="second", sort_order=2)
    gw.set_fault("openai", "rate_limit", key=k1["raw_key"])
    raw = ws.openai().chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "fallback"}])
    assert raw.parse().choices[0].message.content == "Echo: fallback"
    assert raw.headers["x-keyway-credential"] == k2["id"]
    assert raw.headers["x-keyway-byok"] == "true"
    assert raw.headers["x-keyway-attempts"] == "2"


def test_server_error_falls_back_to_system_credential(ws, gw):
    k = ws.add_byok("openai")
    gw.set_fault("openai", "server_error", key=k["raw_key"])
    raw = ws.openai().chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert raw.headers["x-keyway-credential"] == "system"


def test_every_attempt_failing_with_5xx_is_internal_server_error(ws, gw):
    ws.add_byok("openai")
    gw.set_fault("openai", "server_error")  # the BYOK key and the system key alike
    with pytest.raises(openai.InternalServerError) as e:
        ws.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code in (502, 503)
    assert e.value.response.headers["x-keyway-attempts"] == "2"
    assert "all 2 attempts failed" in e.value.message


def test_upstream_timeout_is_504_internal_server_error(gw):
    from conftest import FIRST_BYTE_MS

    gw.set_fault("openai", "slow", ms=FIRST_BYTE_MS + 3000)
    with pytest.raises(openai.InternalServerError) as e:
        client(gw, timeout=FIRST_BYTE_MS / 1000 + 20).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 504
    assert e.value.body["code"] == "upstream_timeout"


def test_client_side_timeout_is_api_timeout_error(gw):
    gw.set_fault("openai", "slow", ms=2000)
    with pytest.raises(openai.APITimeoutError):
        client(gw, timeout=0.3).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])


def test_max_price_below_every_provider_is_402_api_status_error(gw):
    with pytest.raises(openai.APIStatusError) as e:
        client(gw).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            extra_body={"provider": {"max_price": {"prompt": 0.001, "completion": 0.001}}},
        )
    assert e.value.status_code == 402
    # The SDK has no class of its own for 402: the base status error, nothing more specific.
    assert type(e.value) is openai.APIStatusError
    assert "max_price" in e.value.message


def test_extra_body_provider_routing_options(gw):
    c = client(gw)
    raw = c.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "routed"}],
        extra_body={"provider": {"order": ["openai"], "allow_fallbacks": False, "quantizations": ["fp8"]}},
    )
    assert raw.headers["x-keyway-provider"] == "openai"
    # An unknown option is reported, not fatal; routing fields never go upstream.
    assert "provider.quantizations" in raw.headers.get("x-keyway-ignored", "")
    body = gw.calls("openai")[-1]["body"]
    assert "provider" not in body


def test_extra_body_only_excluding_every_provider_is_not_found(gw):
    with pytest.raises(openai.NotFoundError) as e:
        client(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], extra_body={"provider": {"only": ["anthropic"]}})
    assert "provider.only" in e.value.message


def test_extra_body_bad_routing_option_is_bad_request(gw):
    with pytest.raises(openai.BadRequestError) as e:
        client(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], extra_body={"provider": {"sort": "cheapest"}})
    assert "provider.sort" in e.value.message


def test_models_fallback_via_extra_body(ws, gw):
    k = ws.add_byok("openai", always_use=True)
    gw.set_fault("openai", "rate_limit", key=k["raw_key"])
    raw = ws.openai().chat.completions.with_raw_response.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": "x"}],
        extra_body={"models": ["anthropic/claude-haiku-4.5"]},
    )
    assert raw.parse().model == "anthropic/claude-haiku-4.5"
    assert raw.headers["x-keyway-provider"] == "anthropic"


def test_no_secret_in_logs(ws, gw):
    k = ws.add_byok("openai")
    gw.set_fault("openai", "unauthorized", key=k["raw_key"])
    ws.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    log = gw.log_text()
    assert k["raw_key"] not in log
    assert ws.key not in log
    assert gw.system_keys["openai"] not in log


def test_metrics_count_the_request_and_log_has_its_generation_id(ws, gw):
    k1 = ws.add_byok("openai", sort_order=1)
    k2 = ws.add_byok("openai", sort_order=2)
    gw.set_fault("openai", "rate_limit", key=k1["raw_key"])
    raw = ws.openai().chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "metrics"}])
    gen = raw.headers["x-keyway-generation-id"]
    text = gw.metrics()
    assert 'keyway_requests_total{provider="openai",status="200"' in text
    # The cooldown the health board started, and the key it left cooling.
    assert f'keyway_cooldowns_total{{provider="openai",credential="{k1["id"]}",reason="rate_limited"}} 1' in text
    cooling = re.search(r'^keyway_credentials_cooling\{provider="openai"\} (\d+)', text, re.M)
    assert cooling and int(cooling.group(1)) >= 1, "the 429'd key is counted as cooling now"
    assert (
        f'keyway_fallbacks_total{{from_provider="openai",from_credential="{k1["id"]}",to_provider="openai",to_credential="{k2["id"]}"}} 1'
        in text
    )
    assert 'keyway_db_errors_total{source="store"} 0' in text
    assert "keyway_gateway_overhead_seconds_bucket" in text and "keyway_usage_queue_depth" in text
    # Ids only: no secret and no Keyway key in any label.
    assert k1["raw_key"] not in text and ws.key not in text
    import time

    def request_lines():
        return [l for l in gw.log_text().splitlines() if gen in l and "keyway::request:" in l]

    for _ in range(50):
        if request_lines():
            break
        time.sleep(0.05)
    lines = request_lines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert "status=200" in line and "attempts=2" in line
    # Lines logged inside the request (the failed attempt) carry its generation id through the span.
    failed = [l for l in gw.log_text().splitlines() if "attempt failed" in l and k1["id"] in l]
    assert failed and all(gen in l for l in failed), failed
