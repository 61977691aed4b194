"""Versioned code paths and phases: every kind of callable, as decorator and as block."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import otel_migration
from otel_migration import phase, versioned

from .conftest import Harness


@versioned("2.0", operation="charge", migration="billing")
def charge(amount: int, *, currency: str = "EUR") -> str:
    """Charge an amount."""
    return f"{amount} {currency}"


class Billing:
    @versioned("2.0", operation="refund")
    def refund(self, amount: int) -> int:
        return -amount

    @versioned("2.0", operation="rate")
    @classmethod
    def rate(cls, amount: int) -> float:
        return amount * 0.2

    @versioned("2.0", operation="fee")
    @staticmethod
    def fee(amount: int) -> int:
        return amount // 100

    @versioned("2.0", operation="fetch")
    async def fetch(self, key: str) -> str:
        await asyncio.sleep(0)
        return key.upper()

    @versioned("2.0", operation="lines")
    def lines(self, n: int) -> Iterator[int]:
        yield from range(n)

    @versioned("2.0", operation="stream")
    async def stream(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i


def test_decorated_function_keeps_signature_name_and_doc(harness: Harness) -> None:
    assert charge.__name__ == "charge"
    assert charge.__doc__ == "Charge an amount."
    assert str(inspect.signature(charge)) == "(amount: 'int', *, currency: 'str' = 'EUR') -> 'str'"
    assert inspect.signature(Billing().refund) == inspect.signature(Billing().refund.__wrapped__)
    assert inspect.iscoroutinefunction(Billing.fetch)
    assert inspect.isgeneratorfunction(Billing.lines)
    assert inspect.isasyncgenfunction(Billing.stream)


def test_function_call_emits_span_and_exact_metrics(harness: Harness) -> None:
    assert charge(5, currency="USD") == "5 USD"
    (span,) = harness.spans("charge")
    assert span.attributes == {
        "migration.name": "billing",
        "migration.operation": "charge",
        "migration.version": "2.0",
        "code.function.name": "tests.test_versioned.charge",
    }
    assert span.status.status_code is StatusCode.UNSET
    assert harness.value("migration.requests", migration_version="2.0", migration_outcome="ok") == 1
    assert harness.value("migration.duration", migration_operation="charge") == 1


@pytest.mark.parametrize(
    ("call", "operation", "expected"),
    [
        (lambda: Billing().refund(7), "refund", -7),
        (lambda: Billing.rate(10), "rate", 2.0),
        (lambda: Billing().rate(10), "rate", 2.0),
        (lambda: Billing.fee(250), "fee", 2),
        (lambda: Billing().fee(250), "fee", 2),
        (lambda: asyncio.run(Billing().fetch("k")), "fetch", "K"),
        (lambda: list(Billing().lines(3)), "lines", [0, 1, 2]),
        (lambda: asyncio.run(_collect(Billing().stream(3))), "stream", [0, 1, 2]),
    ],
)
def test_every_kind_of_callable(harness: Harness, call: object, operation: str, expected: object) -> None:
    assert call() == expected  # type: ignore[operator]
    (span,) = harness.spans(operation)
    assert span.attributes["migration.version"] == "2.0"
    assert harness.value("migration.requests", migration_operation=operation) == 1


async def _collect(stream: AsyncIterator[int]) -> list[int]:
    return [item async for item in stream]


def test_generator_span_covers_iteration_and_does_not_leak_between_steps(harness: Harness) -> None:
    gen = Billing().lines(2)
    assert harness.spans("lines") == []  # creating the generator does no work
    assert next(gen) == 0
    # Between steps the caller's context must not see the generator's span.
    assert not trace.get_current_span().get_span_context().is_valid
    assert otel_migration.current_scope() is None
    assert list(gen) == [1]
    (span,) = harness.spans("lines")
    assert span.end_time is not None


def test_generator_closed_early_ends_span_as_ok(harness: Harness) -> None:
    gen = Billing().lines(10)
    next(gen)
    gen.close()
    (span,) = harness.spans("lines")
    assert span.status.status_code is StatusCode.UNSET
    assert harness.value("migration.requests", migration_operation="lines", migration_outcome="ok") == 1


def test_generator_send_and_throw_are_delegated(harness: Harness) -> None:
    @versioned("1.0", operation="echo")
    def echo() -> Iterator[str]:
        received = yield "ready"
        try:
            yield f"got {received}"
        except KeyError:
            yield "handled"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("x") == "got x"
    assert gen.throw(KeyError("k")) == "handled"
    gen.close()
    assert len(harness.spans("echo")) == 1


def test_exception_recorded_and_reraised_unchanged(harness: Harness) -> None:
    error = ConnectionResetError("peer went away")

    @versioned("1.0", operation="send")
    def send() -> None:
        raise error

    with pytest.raises(ConnectionResetError) as caught:
        send()
    assert caught.value is error
    (span,) = harness.spans("send")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ConnectionResetError"
    assert span.attributes["migration.error.category"] == "network"
    assert [e.name for e in span.events] == ["exception"]
    assert (
        harness.value(
            "migration.errors", error_type="ConnectionResetError", migration_error_category="network"
        )
        == 1
    )
    assert harness.value("migration.requests", migration_outcome="error") == 1


def test_cancellation_is_not_an_error(harness: Harness) -> None:
    @versioned("2.0", operation="wait")
    async def wait() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(wait())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (span,) = harness.spans("wait")
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes["migration.outcome"] == "cancelled"
    assert harness.value("migration.requests", migration_outcome="cancelled") == 1
    assert harness.points("migration.errors") == []


def test_block_and_async_block(harness: Harness) -> None:
    with versioned("1.0", operation="charge"):
        assert otel_migration.current_scope() is not None
    assert otel_migration.current_scope() is None

    async def main() -> None:
        async with versioned("2.0", operation="charge"):
            await asyncio.sleep(0)

    asyncio.run(main())
    versions = sorted(s.attributes["migration.version"] for s in harness.spans("charge"))
    assert versions == ["1.0", "2.0"]


def test_block_needs_an_operation(harness: Harness) -> None:
    with pytest.raises(ValueError, match="operation"), versioned("2.0"):
        pass


def test_bad_version_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="version"):
        versioned("")  # type: ignore[arg-type]


def test_phases_nest_under_the_operation(harness: Harness) -> None:
    @phase("extraction")
    def extract() -> str:
        return "facts"

    @versioned("2.0", operation="generate")
    def generate() -> str:
        facts = extract()
        with phase("synthesis"):
            assert otel_migration.current_scope().phase == "synthesis"  # type: ignore[union-attr]
            return facts + "!"

    assert generate() == "facts!"
    (parent,) = harness.spans("generate")
    children = {s.name: s for s in harness.spans() if s.name in ("extraction", "synthesis")}
    assert set(children) == {"extraction", "synthesis"}
    for child in children.values():
        assert child.parent is not None and child.parent.span_id == parent.context.span_id
        assert child.attributes["migration.version"] == "2.0"
        assert child.attributes["migration.operation"] == "generate"
    assert (
        harness.value("migration.phase.duration", migration_phase="synthesis", migration_version="2.0") == 1
    )
    assert harness.value("migration.requests", migration_operation="generate") == 1  # phases are not requests


def test_phase_outside_a_versioned_call_is_a_span_only(harness: Harness) -> None:
    with phase("enhancement"):
        pass
    (span,) = harness.spans("enhancement")
    assert span.attributes == {"migration.phase": "enhancement"}
    assert harness.points("migration.phase.duration") == []


def test_shared_block_object_across_threads(harness: Harness) -> None:
    shared = versioned("2.0", operation="shared")
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(50):
            with shared:
                pass

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = harness.spans("shared")
    assert len(spans) == 400
    assert all(s.parent is None for s in spans)  # no entry saw another thread's span as its parent
    assert harness.value("migration.requests", migration_operation="shared") == 400


def test_unconfigured_calls_pass_through(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    otel_migration.shutdown()
    assert charge(1) == "1 EUR"
    assert Billing().fee(300) == 3
