"""Tools and agents: execute_tool and invoke_agent spans (GenAI agent conventions) and their counts, from
declared tools and from the tool calls real anthropic/openai SDK responses ask for (loopback server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan

import otel_migration

from .conftest import Harness
from .llm_server import LLMServer, ToolCall, Usage

MESSAGES = [{"role": "user", "content": "What is the weather in Paris and in Oslo?"}]
WEATHER_TOOLS = (ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_weather", {"city": "Oslo"}))


def points(h: Harness, metric: str) -> list[tuple[dict[str, Any], Any]]:
    """(attributes, point) of every data point of ``metric``."""
    data = h.reader.get_metrics_data()
    found = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == metric:
                    found.extend((dict(p.attributes), p) for p in m.data.data_points)
    return found


def counts(h: Harness, metric: str, *names: str) -> dict[tuple[Any, ...], int]:
    return {tuple(a.get(n) for n in names): int(p.value) for a, p in points(h, metric)}


def one(spans: list[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


# -- declared tools ---------------------------------------------------------------------------------
def test_declared_tools_sync_async_and_block(harness: Harness) -> None:
    @otel_migration.tool()
    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    @otel_migration.tool("lookup_order", description="Find an order by id")
    async def lookup(order_id: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"id": order_id}

    with otel_migration.versioned("2.0", operation="support"):
        assert get_weather("Paris") == "sunny in Paris"
        assert asyncio.run(lookup(7)) == {"id": 7}
        with otel_migration.tool("search", call_id="toolu_01", tool_type="datastore"):
            pass
        with pytest.raises(TimeoutError), otel_migration.tool("search"):
            raise TimeoutError("index timed out")
    get_weather("Oslo")  # outside any versioned call: the configured migration, no version

    weather = harness.spans("execute_tool get_weather")
    assert len(weather) == 2
    a = dict(weather[0].attributes or {})
    assert a == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.type": "function",
        "migration.name": "default",
        "migration.operation": "support",
        "migration.version": "2.0",
    }
    assert weather[0].kind.name == "INTERNAL"
    charge = one(harness.spans("support"))
    assert weather[0].parent is not None and weather[0].parent.span_id == charge.context.span_id
    order = one(harness.spans("execute_tool lookup_order"))
    assert order.attributes["gen_ai.tool.description"] == "Find an order by id"  # type: ignore[index]
    ok_search, failed_search = harness.spans("execute_tool search")
    assert ok_search.attributes["gen_ai.tool.call.id"] == "toolu_01"  # type: ignore[index]
    assert ok_search.attributes["gen_ai.tool.type"] == "datastore"  # type: ignore[index]
    assert failed_search.status.status_code.name == "ERROR"
    assert failed_search.attributes["error.type"] == "TimeoutError"  # type: ignore[index]

    names = ("gen_ai.tool.name", "migration.version", "migration.outcome")
    assert counts(harness, "migration.tool.invocations", *names) == {
        ("get_weather", "2.0", "ok"): 1,
        ("get_weather", "", "ok"): 1,
        ("lookup_order", "2.0", "ok"): 1,
        ("search", "2.0", "ok"): 1,
        ("search", "2.0", "error"): 1,
    }


def test_decorated_calls_that_raise_or_are_cancelled(harness: Harness) -> None:
    """A decorated function's exception fails its run and reaches the caller unchanged; a cancelled
    coroutine is counted cancelled, with no error on its span."""

    @otel_migration.tool()
    def refuse(order_id: int) -> None:
        raise ValueError(f"no order {order_id}")

    @otel_migration.tool("wait")
    async def wait() -> None:
        await asyncio.sleep(10)

    @otel_migration.agent("planner")
    async def plan() -> None:
        raise KeyError("step")

    with pytest.raises(ValueError, match="no order 7"):
        refuse(7)

    async def main() -> None:
        task = asyncio.ensure_future(wait())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(KeyError):
            await plan()

    asyncio.run(main())
    refused, waited, planner = (
        one(harness.spans(name))
        for name in ("execute_tool refuse", "execute_tool wait", "invoke_agent planner")
    )
    assert (refused.status.status_code.name, refused.status.description) == (
        "ERROR",
        "ValueError: no order 7",
    )
    assert refused.attributes["error.type"] == "ValueError"  # type: ignore[index]
    assert [e.name for e in refused.events] == ["exception"]
    assert waited.status.status_code.name == "UNSET" and "error.type" not in (waited.attributes or {})
    assert (planner.status.status_code.name, planner.attributes["error.type"]) == ("ERROR", "KeyError")  # type: ignore[index]
    tools = counts(harness, "migration.tool.invocations", "gen_ai.tool.name", "migration.outcome")
    assert tools == {("refuse", "error"): 1, ("wait", "cancelled"): 1}
    agents = counts(harness, "migration.agent.invocations", "gen_ai.agent.name", "migration.outcome")
    assert agents == {("planner", "error"): 1}


def test_misuse_is_refused_and_unconfigured_runs_untouched() -> None:
    with pytest.raises(ValueError, match="needs a name"), otel_migration.tool():
        pass
    with pytest.raises(ValueError, match="tool_type"):
        otel_migration.tool("x", tool_type="plugin")
    with pytest.raises(ValueError, match="name"):
        otel_migration.agent(" ")
    with pytest.raises(TypeError, match=r"@otel_migration.tool\(\)"):
        otel_migration.tool(lambda: None)  # type: ignore[arg-type]  # a bare @tool
    with pytest.raises(TypeError, match="needs a name"):
        otel_migration.agent(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="generator"):

        @otel_migration.tool()
        def gen() -> Iterator[int]:
            yield 1

    otel_migration.shutdown()

    @otel_migration.tool()
    def plain(x: int) -> int:
        return x + 1

    with otel_migration.agent("helper") as loop:
        assert plain(1) == 2
        loop.fail("max_iterations")  # inert without telemetry, never raises
    assert loop.iterations == 0


# -- agent loops over real SDK responses -------------------------------------------------------------
def test_anthropic_agent_loop_tool_use_round_trip(instrumented: Harness, server: LLMServer) -> None:
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)
    server.configure(text="", tool_calls=WEATHER_TOOLS, usage=Usage(input_tokens=300, output_tokens=40))

    with otel_migration.versioned("2.0", operation="assistant"), otel_migration.agent("weather-bot") as loop:
        messages: list[dict[str, Any]] = list(MESSAGES)
        while True:
            reply = client.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=messages)
            if reply.stop_reason != "tool_use":
                break
            results = []
            for block in reply.content:
                if block.type == "tool_use":
                    with otel_migration.tool(block.name, call_id=block.id):
                        results.append({"type": "tool_result", "tool_use_id": block.id, "content": "sunny"})
            messages += [
                {"role": "assistant", "content": reply.content},
                {"role": "user", "content": results},
            ]
            server.configure(
                text="Sunny in both.", tool_calls=(), usage=Usage(input_tokens=420, output_tokens=9)
            )

    assert (loop.iterations, loop.executed_tool_calls, loop.requested_tool_calls) == (2, 2, 2)
    agent_span = one(instrumented.spans("invoke_agent weather-bot"))
    a = dict(agent_span.attributes or {})
    assert a["gen_ai.operation.name"] == "invoke_agent" and a["gen_ai.agent.name"] == "weather-bot"
    assert a["migration.version"] == "2.0"
    assert a["migration.agent.iterations"] == 2
    assert a["migration.agent.tool_calls.executed"] == 2
    assert a["migration.agent.tool_calls.requested"] == 2
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (720, 49)

    first, second = instrumented.spans("chat claude-haiku-4-5")
    f = dict(first.attributes or {})
    assert f["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert f["migration.llm.tool_calls"] == 2
    assert f["migration.llm.tool_call.names"] == ("get_weather", "get_weather")
    ids = f["migration.llm.tool_call.ids"]
    assert ids == ("toolu_loopback_1_0", "toolu_loopback_1_1")
    assert "migration.llm.tool_calls" not in (second.attributes or {})
    assert second.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)  # type: ignore[index]
    tools = instrumented.spans("execute_tool get_weather")
    assert tuple(t.attributes["gen_ai.tool.call.id"] for t in tools) == ids  # type: ignore[index]
    assert all(t.parent is not None and t.parent.span_id == agent_span.context.span_id for t in tools)
    assert first.parent is not None and first.parent.span_id == agent_span.context.span_id
    # the model saw the tool results the loop sent back
    assert server.bodies("/messages")[1]["messages"][2]["content"][0]["tool_use_id"] == ids[0]

    instrumented.telemetry.recorder.drain()
    requested = ("gen_ai.tool.name", "gen_ai.provider.name", "gen_ai.request.model", "migration.version")
    assert counts(instrumented, "migration.llm.tool_calls", *requested) == {
        ("get_weather", "anthropic", "claude-haiku-4-5", "2.0"): 2
    }
    assert counts(instrumented, "migration.agent.invocations", "gen_ai.agent.name", "migration.outcome") == {
        ("weather-bot", "ok"): 1
    }
    ((_, iterations),) = points(instrumented, "migration.agent.iterations")
    assert (iterations.count, iterations.sum) == (1, 2)
    by_source = {
        a["migration.tool.source"]: p.sum for a, p in points(instrumented, "migration.agent.tool_calls")
    }
    assert by_source == {"executed": 2, "requested": 2}
    tokens = {a["gen_ai.token.type"]: p.sum for a, p in points(instrumented, "migration.agent.tokens")}
    assert tokens == {"input": 720, "output": 49}


def test_openai_chat_and_responses_tool_calls(instrumented: Harness, server: LLMServer) -> None:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    server.configure(text="", tool_calls=(ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time")))

    @otel_migration.agent("planner")
    def plan() -> None:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        (choice,) = completion.choices
        assert choice.finish_reason == "tool_calls"
        for call in choice.message.tool_calls or ():
            assert json.loads(call.function.arguments) in ({"city": "Paris"}, {})  # type: ignore[union-attr]
            with otel_migration.tool(call.function.name, call_id=call.id):  # type: ignore[union-attr]
                pass
        response = client.responses.create(model="gpt-4.1", input="And tomorrow?")
        calls = [item for item in response.output if item.type == "function_call"]
        assert [c.name for c in calls] == ["get_weather", "get_time"]

    with otel_migration.versioned("1.0", operation="assistant"):
        plan()

    chat = one(instrumented.spans("chat gpt-4o-mini"))
    c = dict(chat.attributes or {})
    assert c["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert c["migration.llm.tool_call.names"] == ("get_weather", "get_time")
    assert c["migration.llm.tool_call.ids"] == ("call_loopback_1_0", "call_loopback_1_1")
    responses = one(instrumented.spans("chat gpt-4.1"))
    r = dict(responses.attributes or {})
    assert r["migration.llm.tool_calls"] == 2
    assert r["migration.llm.tool_call.ids"] == ("call_loopback_2_0", "call_loopback_2_1")
    agent_span = one(instrumented.spans("invoke_agent planner"))
    a = dict(agent_span.attributes or {})
    assert (a["migration.agent.iterations"], a["migration.agent.tool_calls.requested"]) == (2, 4)
    assert a["migration.agent.tool_calls.executed"] == 2
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (24, 14)  # 2 x (12, 7)
    tools = instrumented.spans("execute_tool get_weather") + instrumented.spans("execute_tool get_time")
    assert sorted(t.attributes["gen_ai.tool.call.id"] for t in tools) == [  # type: ignore[index]
        "call_loopback_1_0",
        "call_loopback_1_1",
    ]
    instrumented.telemetry.recorder.drain()
    names = ("gen_ai.tool.name", "gen_ai.request.model", "migration.version")
    assert counts(instrumented, "migration.llm.tool_calls", *names) == {
        ("get_weather", "gpt-4o-mini", "1.0"): 1,
        ("get_time", "gpt-4o-mini", "1.0"): 1,
        ("get_weather", "gpt-4.1", "1.0"): 1,
        ("get_time", "gpt-4.1", "1.0"): 1,
    }


def test_agent_outcomes_nesting_and_async(harness: Harness) -> None:
    with pytest.raises(RuntimeError), otel_migration.agent("crashy"):
        raise RuntimeError("boom")
    with otel_migration.agent("stubborn") as loop:
        loop.fail("max_iterations")

    async def main() -> None:
        async with otel_migration.agent("outer") as outer:
            otel_migration.record_llm_call(model="claude-haiku-4-5", input_tokens=100, output_tokens=10)
            async with otel_migration.agent("inner") as inner:
                otel_migration.record_llm_call(model="claude-haiku-4-5", input_tokens=50, output_tokens=5)
                otel_migration.record_llm_call(model="claude-haiku-4-5", input_tokens=50, output_tokens=5)
            assert (inner.iterations, inner.input_tokens) == (2, 100)
        assert (outer.iterations, outer.input_tokens, outer.output_tokens) == (1, 100, 10)  # its own turns

    asyncio.run(main())
    crashy = one(harness.spans("invoke_agent crashy"))
    assert crashy.status.status_code.name == "ERROR" and crashy.attributes["error.type"] == "RuntimeError"  # type: ignore[index]
    stubborn = one(harness.spans("invoke_agent stubborn"))
    assert stubborn.attributes["error.type"] == "max_iterations"  # type: ignore[index]
    inner_span, outer_span = (
        one(harness.spans("invoke_agent inner")),
        one(harness.spans("invoke_agent outer")),
    )
    assert inner_span.parent is not None and inner_span.parent.span_id == outer_span.context.span_id
    assert counts(harness, "migration.agent.invocations", "gen_ai.agent.name", "migration.outcome") == {
        ("crashy", "error"): 1,
        ("stubborn", "error"): 1,
        ("outer", "ok"): 1,
        ("inner", "ok"): 1,
    }


def test_agent_and_tool_spans_of_other_frameworks_are_not_llm_calls(
    instrumented: Harness, server: LLMServer
) -> None:
    """An agent framework's own invoke_agent span around an SDK call must not pass for that call's span:
    the call would then get no span of ours, and the framework's span would be priced as one."""
    from otel_migration._llm.enrich import is_llm_span

    foreign = instrumented.tracer_provider.get_tracer("some.agent.framework")
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)
    with foreign.start_as_current_span(
        "invoke_agent helper",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "anthropic"},
    ) as span:
        assert not is_llm_span(span)
        client.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=MESSAGES)
    one(instrumented.spans("chat claude-haiku-4-5"))  # ours, as outside any agent
    helper = one(instrumented.spans("invoke_agent helper"))
    assert "migration.llm.cost" not in (helper.attributes or {})


def test_streamed_tool_calls_of_all_three_apis(instrumented: Harness, server: LLMServer) -> None:
    server.configure(text="Let me check.", tool_calls=WEATHER_TOOLS)
    aclient = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)
    oclient = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)

    with otel_migration.agent("streamer") as loop:
        with aclient.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES) as stream:
            final = stream.get_final_message()
        assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
        assert final.content[1].input == {"city": "Paris"}  # type: ignore[union-attr]  # the SDK assembled it
        chunks = list(
            oclient.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert sum(1 for c in chunks for ch in c.choices for t in ch.delta.tool_calls or () if t.id) == 2
        events = list(oclient.responses.create(model="gpt-4.1", input="weather?", stream=True))
        assert events[-1].type == "response.completed"

    by_name = {s.name: dict(s.attributes or {}) for s in instrumented.spans()}
    anthropic_span, chat_span, responses_span = (
        by_name["chat claude-haiku-4-5"],
        by_name["chat gpt-4o-mini"],
        by_name["chat gpt-4.1"],
    )
    assert anthropic_span["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert anthropic_span["migration.llm.tool_call.ids"] == ("toolu_loopback_1_0", "toolu_loopback_1_1")
    assert chat_span["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert chat_span["migration.llm.tool_call.ids"] == ("call_loopback_2_0", "call_loopback_2_1")
    assert responses_span["migration.llm.tool_call.ids"] == ("call_loopback_3_0", "call_loopback_3_1")
    assert all(
        s["migration.llm.tool_call.names"] == ("get_weather", "get_weather")
        for s in by_name.values()
        if "migration.llm.tool_call.names" in s
    )
    assert (loop.iterations, loop.requested_tool_calls, loop.executed_tool_calls) == (3, 6, 0)
    instrumented.telemetry.recorder.drain()
    by_model = counts(instrumented, "migration.llm.tool_calls", "gen_ai.request.model")
    assert by_model == {("claude-haiku-4-5",): 2, ("gpt-4o-mini",): 2, ("gpt-4.1",): 2}


def test_arguments_and_results_only_when_content_capture_is_on(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import make_harness

    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]

    class Weather:
        @otel_migration.tool("get_weather")
        def get(self, city: str, *, unit: str = "C") -> dict[str, object]:
            return {"city": city, "temp": 21, "unit": unit}

    def run_both() -> None:
        Weather().get("Paris", unit="F")
        with otel_migration.tool("search", call_id="toolu_9") as run:
            run.record_arguments({"q": "umbrellas"})
            run.record_result(["a", "b"])

    h = make_harness()
    run_both()
    for span in h.exporter.get_finished_spans():
        assert not {"gen_ai.tool.call.arguments", "gen_ai.tool.call.result"} & set(span.attributes or {})
    otel_migration.shutdown()

    h = make_harness(capture_content=True)
    run_both()
    weather = one(h.spans("execute_tool get_weather"))
    assert json.loads(weather.attributes["gen_ai.tool.call.arguments"]) == {"city": "Paris", "unit": "F"}  # type: ignore[arg-type,index]
    assert json.loads(weather.attributes["gen_ai.tool.call.result"]) == {
        "city": "Paris",
        "temp": 21,
        "unit": "F",
    }  # type: ignore[arg-type,index]
    search = one(h.spans("execute_tool search"))
    assert json.loads(search.attributes["gen_ai.tool.call.arguments"]) == {"q": "umbrellas"}  # type: ignore[arg-type,index]
    assert json.loads(search.attributes["gen_ai.tool.call.result"]) == ["a", "b"]  # type: ignore[arg-type,index]
