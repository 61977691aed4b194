"""The real anthropic and openai SDKs, instrumented, against a loopback server that answers like the APIs."""

from __future__ import annotations

import asyncio
import logging

import anthropic
import openai
import pytest
from opentelemetry.trace import StatusCode

import otel_migration
from otel_migration._llm.metrics import LLMMetrics
from otel_migration._llm.pricing import PriceTable
from otel_migration._setup import BUDGETS as budgets
from otel_migration.instrumentation.anthropic import AnthropicInstrumentor
from otel_migration.instrumentation.openai import OpenAIInstrumentor

from .conftest import Harness
from .llm_server import LLMServer, Usage

MESSAGES = [{"role": "user", "content": "Summarise the contract in one line."}]
PRICES = PriceTable.load()


def cost(model: str, **tokens: int) -> float:
    price = PRICES.lookup(model)
    assert price is not None
    return price.cost(**tokens)


def llm_spans(h: Harness) -> list[object]:
    return [s for s in h.spans() if "gen_ai.operation.name" in (s.attributes or {})]


# -- anthropic -------------------------------------------------------------------------------------
def anthropic_client(server: LLMServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)


def test_anthropic_create_priced_with_cache_and_labelled(instrumented: Harness, server: LLMServer) -> None:
    server.configure(
        usage=Usage(input_tokens=1000, output_tokens=200, cache_read_tokens=3000, cache_write_tokens=500)
    )
    client = anthropic_client(server)
    with otel_migration.versioned("2.0", operation="summarize"), otel_migration.phase("synthesis"):
        message = client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
    assert message.model == "claude-haiku-4-5-20251001"
    (span,) = llm_spans(instrumented)
    a = span.attributes  # type: ignore[attr-defined]
    assert span.name == "chat claude-haiku-4-5"  # type: ignore[attr-defined]
    assert (
        a["gen_ai.provider.name"] == "anthropic" and a["gen_ai.response.model"] == "claude-haiku-4-5-20251001"
    )
    assert a["gen_ai.usage.input_tokens"] == 4500  # the conventions' total: 1000 + 3000 read + 500 written
    assert a["gen_ai.usage.cache_read.input_tokens"] == 3000
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 500
    expected = cost(
        "claude-haiku-4-5",
        input_tokens=4500,
        output_tokens=200,
        cache_read_tokens=3000,
        cache_write_tokens=500,
    )
    assert a["migration.llm.cost"] == pytest.approx(expected)
    assert a["migration.llm.tier"] == "haiku"
    assert (a["migration.version"], a["migration.phase"]) == ("2.0", "synthesis")
    assert "Summarise" not in str(span.to_json())  # type: ignore[attr-defined]  # no prompt text by default
    instrumented.telemetry.recorder.drain()
    assert instrumented.telemetry.get(LLMMetrics).total_cost(
        version="2.0", phase="synthesis"
    ) == pytest.approx(expected)


def test_anthropic_async_and_streams(instrumented: Harness, server: LLMServer) -> None:
    server.configure(
        usage=Usage(input_tokens=100, output_tokens=40), text="one two three four", first_token_delay=0.05
    )
    client = anthropic_client(server)
    aclient = anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)

    with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
    assert text == "one two three four"
    raw = client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES, stream=True)
    events = [event.type for event in raw]
    assert events[0] == "message_start" and events[-1] == "message_stop"

    async def run() -> None:
        await aclient.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
        async with aclient.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES) as s:
            await s.get_final_message()
        stream = await aclient.messages.create(
            model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES, stream=True
        )
        async for _ in stream:
            pass

    asyncio.run(run())
    spans = llm_spans(instrumented)
    assert len(spans) == 5
    expected = cost("claude-haiku-4-5", input_tokens=100, output_tokens=40)
    for span in spans:
        assert span.attributes["migration.llm.cost"] == pytest.approx(expected)  # type: ignore[attr-defined]
    streamed = [s for s in spans if "migration.llm.time_to_first_chunk" in s.attributes]  # type: ignore[attr-defined]
    assert len(streamed) == 4
    assert all(s.attributes["migration.llm.time_to_first_chunk"] >= 0.04 for s in streamed)  # type: ignore[attr-defined]
    points = instrumented.points("gen_ai.client.operation.time_to_first_chunk")
    assert sum(p.count for p in points) == 4


def test_anthropic_error_is_reraised_and_recorded(instrumented: Harness, server: LLMServer) -> None:
    server.fail_next(status=429)
    client = anthropic_client(server)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
    (span,) = llm_spans(instrumented)
    assert span.status.status_code.name == "ERROR"  # type: ignore[attr-defined]
    assert span.attributes["error.type"] == "anthropic.RateLimitError"  # type: ignore[attr-defined]
    assert "migration.llm.cost" not in span.attributes  # type: ignore[attr-defined]
    durations = instrumented.points("gen_ai.client.operation.duration")
    assert [p.attributes.get("error.type") for p in durations] == ["anthropic.RateLimitError"]


def test_every_way_a_request_or_stream_ends_finishes_its_call_once(
    instrumented: Harness, server: LLMServer
) -> None:
    """Left early, read to the end with next(), cut off mid-stream, refused on entering a stream helper:
    sync and async, each call ends exactly once, failed only by an error, with the usage seen so far."""
    server.configure(usage=Usage(input_tokens=100, output_tokens=40), text="one two three four")
    client = anthropic_client(server)
    aclient = anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)

    def create() -> anthropic.Stream[anthropic.types.RawMessageStreamEvent]:
        return client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES, stream=True)

    with otel_migration.versioned("1.0", operation="left-early"):
        stream = create()
        for _event in stream:  # message_start: 100 in, 1 out so far
            break
        stream.close()
    with otel_migration.versioned("1.0", operation="pulled"):
        stream = create()
        with pytest.raises(StopIteration):
            while True:
                next(stream)
    for mode in ("disconnect", "error"):
        server.break_next_stream(after_chunks=1, mode=mode)  # type: ignore[arg-type]
        with otel_migration.versioned("1.0", operation=f"cut-{mode}"), pytest.raises(Exception):  # noqa: B017
            for _event in create():
                pass
    server.fail_next(status=429)
    with (
        otel_migration.versioned("1.0", operation="refused"),
        pytest.raises(anthropic.RateLimitError),
        client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES),
    ):
        pass

    async def run() -> None:
        with otel_migration.versioned("2.0", operation="pulled"):
            stream = await aclient.messages.create(
                model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES, stream=True
            )
            with pytest.raises(StopAsyncIteration):
                while True:
                    await stream.__anext__()
        server.break_next_stream(after_chunks=1, mode="disconnect")
        with otel_migration.versioned("2.0", operation="cut-disconnect"), pytest.raises(Exception):  # noqa: B017
            stream = await aclient.messages.create(
                model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES, stream=True
            )
            async for _event in stream:
                pass
        server.fail_next(status=429)
        with otel_migration.versioned("2.0", operation="refused"), pytest.raises(anthropic.RateLimitError):
            async with aclient.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES):
                pass

    asyncio.run(run())
    assert server.pending_failures == 0
    spans = {
        (s.attributes["migration.version"], s.attributes["migration.operation"]): s  # type: ignore[attr-defined]
        for s in llm_spans(instrumented)
    }
    failed = {key for key, span in spans.items() if span.status.status_code.name == "ERROR"}  # type: ignore[attr-defined]
    assert len(spans) == len(llm_spans(instrumented)) == 8  # one span per call, each ended once
    assert failed == {
        ("1.0", "cut-disconnect"),
        ("1.0", "cut-error"),
        ("1.0", "refused"),
        ("2.0", "cut-disconnect"),
        ("2.0", "refused"),
    }
    assert all("error.type" in spans[key].attributes for key in failed)  # type: ignore[attr-defined]
    left_early = spans[("1.0", "left-early")].attributes  # type: ignore[attr-defined]
    assert (left_early["gen_ai.usage.input_tokens"], left_early["gen_ai.usage.output_tokens"]) == (100, 1)
    for version in ("1.0", "2.0"):
        pulled = spans[(version, "pulled")].attributes  # type: ignore[attr-defined]
        assert pulled["migration.llm.cost"] == pytest.approx(
            cost("claude-haiku-4-5", input_tokens=100, output_tokens=40)
        )
    calls = {
        (dict(p.attributes)["migration.version"], dict(p.attributes)["migration.outcome"]): p.value
        for p in instrumented.points("migration.llm.calls")
    }
    assert calls == {("1.0", "ok"): 2, ("1.0", "error"): 3, ("2.0", "ok"): 1, ("2.0", "error"): 2}


def test_hard_stop_refuses_before_any_request(instrumented: Harness, server: LLMServer) -> None:
    budgets.configure(
        otel_migration.load_settings(
            {"budgets": {"llm-hard-stop": {"daily_usd": 0.0001, "hard_stop": True}}}, environ={}
        ).budgets
    )
    server.configure(usage=Usage(input_tokens=1000, output_tokens=100))
    client = anthropic_client(server)
    client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)  # $0.0015: over budget
    with pytest.raises(otel_migration.BudgetExceeded):
        client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
    assert server.request_count == 1  # the refused call never reached the API


def test_uninstrument_restores_the_sdk(harness: Harness, server: LLMServer) -> None:
    from anthropic.resources.messages import Messages

    original = Messages.__dict__["create"]
    AnthropicInstrumentor().instrument()
    assert Messages.__dict__["create"] is not original
    AnthropicInstrumentor().uninstrument()
    assert Messages.__dict__["create"] is original
    anthropic_client(server).messages.create(model="claude-haiku-4-5", max_tokens=8, messages=MESSAGES)
    assert llm_spans(harness) == []


# -- openai ----------------------------------------------------------------------------------------
def openai_client(server: LLMServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)


def test_openai_chat_and_responses_priced(instrumented: Harness, server: LLMServer) -> None:
    server.configure(usage=Usage(input_tokens=2000, output_tokens=300, cache_read_tokens=1500))
    client = openai_client(server)
    with otel_migration.versioned("1.0", operation="answer"):
        chat = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        response = client.responses.create(model="gpt-4.1-mini", input="hello")
    assert chat.model == "gpt-4o-mini-2024-07-18" and response.usage is not None
    spans = {s.attributes["gen_ai.request.model"]: s.attributes for s in llm_spans(instrumented)}  # type: ignore[attr-defined]
    for model in ("gpt-4o-mini", "gpt-4.1-mini"):
        a = spans[model]
        assert a["gen_ai.usage.input_tokens"] == 2000 and a["gen_ai.usage.cache_read.input_tokens"] == 1500
        assert a["migration.llm.cost"] == pytest.approx(
            cost(model, input_tokens=2000, output_tokens=300, cache_read_tokens=1500)
        )
        assert a["migration.version"] == "1.0" and a["gen_ai.provider.name"] == "openai"
    assert spans["gpt-4o-mini"]["migration.llm.tier"] == "small"


def test_openai_streams_with_and_without_usage(
    instrumented: Harness, server: LLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server.configure(usage=Usage(input_tokens=500, output_tokens=50))
    client = openai_client(server)
    aclient = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None
    for _ in client.responses.create(model="gpt-4o", input="hi", stream=True):
        pass

    async def run() -> None:
        stream = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        async for _ in stream:  # no include_usage: no tokens to price
            pass

    asyncio.run(run())
    spans = llm_spans(instrumented)
    assert len(spans) == 3
    priced = [s for s in spans if "migration.llm.cost" in s.attributes]  # type: ignore[attr-defined]
    assert len(priced) == 2
    assert all(
        s.attributes["migration.llm.cost"]
        == pytest.approx(  # type: ignore[attr-defined]
            cost("gpt-4o", input_tokens=500, output_tokens=50)
        )
        for s in priced
    )
    (unpriced,) = [s for s in spans if s not in priced]
    assert "gen_ai.usage.input_tokens" not in unpriced.attributes  # type: ignore[attr-defined]
    assert "ended without token usage" in caplog.text
    instrumented.telemetry.recorder.drain()
    assert instrumented.points("migration.llm.unpriced") == []  # unknown usage is not "unpriced"


def test_openai_500_surfaces_unchanged(instrumented: Harness, server: LLMServer) -> None:
    server.fail_next(status=500)
    with pytest.raises(openai.InternalServerError):
        openai_client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (span,) = llm_spans(instrumented)
    assert span.attributes["error.type"] == "openai.InternalServerError"  # type: ignore[attr-defined]


def test_one_span_per_call_whether_or_not_the_sdk_traces_itself(server: LLMServer, tmp_path: object) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    server.configure(usage=Usage(input_tokens=1000, output_tokens=100))
    script = Path(__file__).parent / "scripts" / "anthropic_self_traced.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ANTHROPIC_"))}
    result = subprocess.run(
        [sys.executable, str(script), server.anthropic_base_url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = (Path(str(tmp_path)) / "otel-migration-telemetry.jsonl").read_text().splitlines()
    spans = []
    for doc in map(json.loads, lines):
        for rs in doc.get("resourceSpans", []):
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    attrs = {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}
                    spans.append((ss["scope"]["name"], span["name"], attrs))
    llm = [(scope, name, attrs) for scope, name, attrs in spans if "gen_ai.operation.name" in attrs]
    assert len(llm) == 1, llm  # the SDK's own span, and no second one of ours
    scope, _, attrs = llm[0]
    from packaging.version import Version

    if Version(anthropic.__version__) >= Version("1.14"):
        assert scope.startswith("com.anthropic.sdk.python")  # the SDK's own span, enriched
    else:
        assert scope == "otel_migration"  # anthropic < 1.14 does not trace itself: the span is ours
    assert (attrs["migration.version"], attrs["migration.phase"], attrs["migration.name"]) == (
        "2.0",
        "analysis",
        "assistant",
    )
    assert attrs["migration.llm.tier"] == "haiku"
    assert attrs["migration.llm.cost"] == pytest.approx(
        cost("claude-haiku-4-5", input_tokens=1000, output_tokens=100)
    )


def test_content_is_captured_only_when_opted_in(
    server: LLMServer, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import make_harness

    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    server.configure(text="The contract renews yearly.")
    h = make_harness(capture_content=True)
    OpenAIInstrumentor().instrument()
    AnthropicInstrumentor().instrument()
    try:
        openai_client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        anthropic_client(server).messages.create(
            model="claude-haiku-4-5", max_tokens=32, messages=MESSAGES, system="Be brief."
        )
    finally:
        OpenAIInstrumentor().uninstrument()
        AnthropicInstrumentor().uninstrument()
    spans = {s.attributes["gen_ai.provider.name"]: s.attributes for s in llm_spans(h)}  # type: ignore[attr-defined]
    for attributes in spans.values():
        assert "Summarise the contract" in attributes["gen_ai.input.messages"]
        assert "The contract renews yearly." in attributes["gen_ai.output.messages"]
    assert "Be brief." in spans["anthropic"]["gen_ai.input.messages"]


def test_a_cancelled_request_is_not_priced_at_zero(instrumented: Harness, server: LLMServer) -> None:
    """An asyncio task cancelled while the SDK waits for the answer: no usage ever came back, so the
    call carries no tokens and no cost (never a $0 call), and its span is not an error."""
    server.configure(usage=Usage(input_tokens=100, output_tokens=40), first_byte_delay=2.0)
    aclient = anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)

    async def run() -> None:
        task = asyncio.ensure_future(
            aclient.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
        )
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    (span,) = llm_spans(instrumented)
    attributes = span.attributes
    assert attributes is not None
    assert "migration.llm.cost" not in attributes
    assert "gen_ai.usage.input_tokens" not in attributes
    assert span.status.status_code is not StatusCode.ERROR
    instrumented.telemetry.recorder.drain()
    assert instrumented.points("gen_ai.client.token.usage") == []
    assert instrumented.telemetry.get(LLMMetrics).total_cost(version="") == 0.0
