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


WEATHER = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def test_messages_extended_thinking_with_tool_use(gw):
    # Claude Code's loop: thinking on, a tool call, then the assistant turn sent back whole
    # (its signed thinking block first) with the tool result. Served natively by Anthropic.
    c = client(gw)
    thinking = {"type": "enabled", "budget_tokens": 1024}
    first = c.messages.create(model=MODEL, max_tokens=2048, thinking=thinking, tools=[WEATHER], extra_body={"top_k": 3},
                              messages=[{"role": "user", "content": "weather in Paris?"}])
    assert [b.type for b in first.content] == ["thinking", "text", "tool_use"]
    assert first.content[0].signature and first.content[0].thinking
    assert first.stop_reason == "tool_use"
    sent = gw.calls("anthropic")[-1]["body"]
    assert sent["thinking"] == thinking and sent["top_k"] == 3
    tool_use = first.content[2]
    second = c.messages.create(model=MODEL, max_tokens=2048, thinking=thinking, tools=[WEATHER], tool_choice={"type": "none"},
                               messages=[{"role": "user", "content": "weather in Paris?"},
                                         {"role": "assistant", "content": first.content},
                                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18C"}]}])
    assert second.content[0].type == "thinking" and second.stop_reason == "end_turn"
    assert gw.calls("anthropic")[-1]["body"]["messages"][1]["content"][0]["signature"] == first.content[0].signature


def test_messages_extended_thinking_streaming(gw):
    with client(gw).messages.stream(model=MODEL, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                                    stop_sequences=["never-said"], messages=[{"role": "user", "content": "think it"}]) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert "thinking" in kinds and "signature" in kinds  # the SDK's thinking_delta / signature_delta events
    assert final.content[0].type == "thinking" and final.content[0].signature
    assert final.content[1].text == "Echo: think it"
    assert final.stop_reason == "end_turn" and final.stop_sequence is None


def test_messages_stop_sequence(gw):
    msg = client(gw).messages.create(model=MODEL, max_tokens=64, stop_sequences=["claude"], messages=[{"role": "user", "content": "hello claude"}])
    assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == "claude"
    assert msg.content[0].text == "Echo: hello "
