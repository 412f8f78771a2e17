"""The official `anthropic` Python SDK against Keyway's /v1/messages, served by the Anthropic fake."""

from __future__ import annotations

import anthropic
import pytest

MODEL = "anthropic/claude-sonnet-4.5"


def client(gw, key=None) -> anthropic.Anthropic:
    # The SDK sends the key as x-api-key, which Keyway accepts on /v1/messages.
    return anthropic.Anthropic(base_url=gw.base_url, api_key=key or gw.inference_key, max_retries=0)


def test_messages_plain(gw):
    raw = client(gw).messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hello claude"}])
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "Echo: hello claude"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    assert raw.headers["x-keyway-provider"] == "anthropic"


def test_messages_with_system_prompt(gw):
    msg = client(gw).messages.create(model=MODEL, max_tokens=32, system="be brief", messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == "Echo: hi"
    body = gw.calls("anthropic")[-1]["body"]
    assert body["system"] == "be brief"


def test_messages_streaming_text(gw):
    with client(gw).messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "stream it"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: stream it"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_messages_streaming_events(gw):
    events = list(client(gw).messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "events"}], stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert "content_block_delta" in kinds
    assert kinds[-1] == "message_stop"


def test_messages_wrong_key(gw):
    with pytest.raises(anthropic.AuthenticationError) as e:
        client(gw, key="kw-wrong-000000000000000000").messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 401


def test_messages_bad_request(gw):
    with pytest.raises(anthropic.BadRequestError) as e:
        client(gw).messages.create(model=MODEL, max_tokens=8, messages=[])
    assert e.value.status_code == 400


def test_messages_pinned_key_rate_limited(ws, gw):
    k = ws.add_byok("anthropic", key="sk-ant-test-pinned-000000000001", always_use=True)
    gw.set_fault("anthropic", "rate_limit", key=k["raw_key"])
    c = anthropic.Anthropic(base_url=gw.base_url, api_key=ws.key, max_retries=0)
    # Bedrock also serves Claude, but the workspace has no Bedrock key and no system one: only the pinned key.
    with pytest.raises(anthropic.RateLimitError) as e:
        c.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 429
