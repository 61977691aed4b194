"""A loopback HTTP server that answers like the Anthropic and OpenAI APIs, for tests of the LLM wrappers.

Tests drive the *real* ``anthropic`` and ``openai`` SDKs with ``base_url`` pointed here, so the SDK's own
transport (``httpx`` or ``httpx2``), retries, SSE decoding, response parsing and stream helpers run exactly as
in production; only the network peer is fake. The wire shapes follow what the APIs send (and the SDKs' own
stream fixtures): JSON bodies, server-sent events over chunked transfer encoding, provider error envelopes.

Endpoints: ``POST /v1/messages`` (Anthropic Messages, JSON or SSE), ``POST /v1/messages/count_tokens``,
``POST /v1/chat/completions`` and ``POST /v1/responses`` (OpenAI, JSON or SSE). Routing is by path suffix,
so a prefixed path (an Azure-style deployment URL, a query string) still lands on the right handler.

Typical use::

    with LLMServer(text="Hi!", usage=Usage(input_tokens=10, output_tokens=3)) as server:
        client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)
        server.fail_next(status=429)
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[...])
        message = client.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[...])
        assert message.model == "claude-haiku-4-5-20251001"  # aliases resolve as the real API does
        assert server.request_count == 2 and server.bodies()[-1]["max_tokens"] == 16

Token numbers are put verbatim into each provider's fields, with no arithmetic: Anthropic's
``input_tokens`` excludes cache reads and writes while OpenAI's ``prompt_tokens``/``input_tokens`` include
cached tokens, so a test sets the numbers in the provider's own meaning and checks the price it expects.

The SDKs honour ``HTTP(S)_PROXY``/``ALL_PROXY`` even for ``127.0.0.1`` (no loopback exemption), and read
``ANTHROPIC_*``/``OPENAI_*`` variables (custom headers, credentials, Anthropic's OpenTelemetry switches at
client construction): a fixture should clear those, or set ``NO_PROXY=127.0.0.1``, before building clients.
"""

from __future__ import annotations

import dataclasses
import http.server
import itertools
import json
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

__all__ = [
    "DEFAULT_MODEL_ALIASES",
    "LLMServer",
    "RecordedRequest",
    "Reply",
    "StreamBreak",
    "ToolCall",
    "Usage",
]

Provider = Literal["anthropic", "openai"]
BreakMode = Literal["error", "disconnect"]

# Request model -> the dated model the API reports back, as the real APIs resolve their aliases.
DEFAULT_MODEL_ALIASES: Mapping[str, str] = {
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
    "claude-3-5-sonnet-latest": "claude-3-5-sonnet-20241022",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
}


@dataclass(frozen=True)
class Usage:
    """Token counts, each copied verbatim into the provider's field of the same meaning.

    ``cache_read_tokens`` is Anthropic's ``cache_read_input_tokens`` and OpenAI's ``cached_tokens``;
    ``cache_write_tokens`` is Anthropic's ``cache_creation_input_tokens`` (OpenAI has none);
    ``reasoning_tokens`` is OpenAI's ``reasoning_tokens`` (and Anthropic's ``thinking_tokens`` when > 0).
    """

    input_tokens: int = 12
    output_tokens: int = 7
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model asks for: an Anthropic ``tool_use`` block, a chat ``tool_calls`` entry, or a
    Responses ``function_call`` item. ``id`` defaults to a provider-shaped id numbered by request and
    position (``toolu_loopback_3_0``, ``call_loopback_3_0``)."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None

    def call_id(self, prefix: str, n: int, index: int) -> str:
        return self.id if self.id is not None else f"{prefix}_loopback_{n}_{index}"


@dataclass(frozen=True)
class Reply:
    """What the server answers a successful request with; ``LLMServer.configure`` replaces fields.

    ``model`` fixes the response model; ``None`` echoes the request model through ``model_aliases``.
    ``first_byte_delay`` is slept before the status line (the SDK call itself blocks),
    ``first_token_delay`` in a stream after the opening events and before the first text delta (time to
    first token), ``chunk_delay`` between text deltas. ``chunks`` overrides how ``text`` is split into
    deltas (by default: one delta per word, keeping the whitespace).
    ``tool_calls`` makes the answer ask for those tools (after the text, if ``text`` is not empty), with
    the provider's finish reason (``tool_use`` / ``tool_calls``), in JSON answers and in streams.
    ``anthropic_delta_usage``: ``"full"`` makes ``message_delta.usage`` carry the cumulative input, cache
    and output counts as the current API does; ``"output_only"`` sends only ``output_tokens`` (older API).
    """

    text: str = "Hello from the loopback LLM server."
    model: str | None = None
    model_aliases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODEL_ALIASES))
    usage: Usage = field(default_factory=Usage)
    first_byte_delay: float = 0.0
    first_token_delay: float = 0.0
    chunk_delay: float = 0.0
    chunks: tuple[str, ...] | None = None
    anthropic_delta_usage: Literal["full", "output_only"] = "full"
    tool_calls: tuple[ToolCall, ...] = ()

    def response_model(self, requested: str) -> str:
        return self.model if self.model is not None else self.model_aliases.get(requested, requested)

    def text_chunks(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        return re.findall(r"\s*\S+\s*", self.text) or [self.text]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; ``body`` is the parsed JSON (``None`` if not JSON)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    received_at: float


@dataclass
class _Failure:
    status: int
    times: int
    retry_after: float | str | None
    message: str | None
    error_type: str | None


@dataclass
class StreamBreak:
    """A stream cut after ``after_chunks`` text deltas, by an in-stream error event or a disconnect."""

    after_chunks: int
    times: int
    mode: BreakMode


# (error type, code) by status, as each API's error envelope names them.
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


class LLMServer:
    """A threaded loopback server (``ThreadingHTTPServer`` on ``127.0.0.1:0``) faking both LLM APIs.

    State (reply settings, injected failures, recorded requests) is shared by all handler threads behind
    one lock, so a test can reconfigure between calls and assert on what the SDK sent.
    """

    def __init__(self, reply: Reply | None = None, **changes: Any) -> None:
        self._lock = threading.Lock()
        self._reply = _replace(reply or Reply(), changes)
        self._failures: deque[_Failure] = deque()
        self._breaks: deque[StreamBreak] = deque()
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="llm-server", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- addresses ---------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("LLMServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def anthropic_base_url(self) -> str:
        """For ``Anthropic(base_url=...)``: the SDK appends ``/v1/messages`` itself."""
        return self.url

    @property
    def openai_base_url(self) -> str:
        """For ``OpenAI(base_url=...)``: the SDK's default base URL ends in ``/v1``."""
        return f"{self.url}/v1"

    def base_url(self, provider: Provider) -> str:
        return self.anthropic_base_url if provider == "anthropic" else self.openai_base_url

    # -- configuration -----------------------------------------------------------------------------------

    @property
    def reply(self) -> Reply:
        with self._lock:
            return self._reply

    def configure(self, **changes: Any) -> Reply:
        """Replaces ``Reply`` fields for the following requests; ``usage`` may be a ``Usage`` or a dict."""
        with self._lock:
            self._reply = _replace(self._reply, changes)
            return self._reply

    def fail_next(
        self,
        status: int = 429,
        times: int = 1,
        *,
        retry_after: float | str | None = 0.01,
        message: str | None = None,
        error_type: str | None = None,
    ) -> None:
        """Answers the next ``times`` API requests with ``status`` and the provider's error JSON.

        ``retry-after`` is sent unless ``None``; its small default keeps SDK retries to ~10 ms instead of
        their 0.5-8 s backoff (the real API sends whole seconds, and nothing on a 5xx).
        """
        with self._lock:
            self._failures.append(_Failure(status, times, retry_after, message, error_type))

    def break_next_stream(self, after_chunks: int = 1, times: int = 1, mode: BreakMode = "error") -> None:
        """Cuts the next ``times`` streams after ``after_chunks`` text deltas.

        ``"error"`` sends the provider's in-stream error (Anthropic ``event: error``, Chat Completions
        ``data: {"error": ...}``, Responses ``event: error``) and ends the body cleanly; ``"disconnect"``
        drops the connection mid-body, which the HTTP client reports as a protocol error.
        """
        with self._lock:
            self._breaks.append(StreamBreak(after_chunks, times, mode))

    def reset(self) -> None:
        """Forgets recorded requests and pending failures; the reply settings stay."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._breaks.clear()

    # -- what was received -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def pending_failures(self) -> int:
        """Injected failures and stream breaks not yet served, so a test can assert they were all used."""
        with self._lock:
            return sum(f.times for f in self._failures) + sum(b.times for b in self._breaks)

    def bodies(self, path_suffix: str | None = None) -> list[Any]:
        """Parsed JSON bodies of the received requests, optionally only those whose path ends so."""
        return [r.body for r in self.requests if path_suffix is None or r.path.endswith(path_suffix)]

    # -- used by the handler -----------------------------------------------------------------------------

    def _admit(self, request: RecordedRequest) -> tuple[Reply, _Failure | None, StreamBreak | None, int]:
        """Records ``request`` and takes, atomically, what to answer it with."""
        with self._lock:
            self._requests.append(request)
            failure = _take(self._failures)
            stream_break = None
            if failure is None and isinstance(request.body, dict) and request.body.get("stream") is True:
                stream_break = _take(self._breaks)
            return self._reply, failure, stream_break, next(self._ids)


def _take(queue: deque[Any]) -> Any:
    """Pops one use of the head of a queue of ``times``-counted entries, returning a copy that is used."""
    if not queue:
        return None
    head = queue[0]
    head.times -= 1
    if head.times <= 0:
        queue.popleft()
    return dataclasses.replace(head, times=1)


def _replace(reply: Reply, changes: Mapping[str, Any]) -> Reply:
    changes = dict(changes)
    if isinstance(changes.get("usage"), Mapping):
        changes["usage"] = Usage(**changes["usage"])
    if changes.get("chunks") is not None:
        changes["chunks"] = tuple(changes["chunks"])
    if changes.get("tool_calls") is not None:
        changes["tool_calls"] = tuple(
            c if isinstance(c, ToolCall) else ToolCall(**c) for c in changes["tool_calls"]
        )
    return dataclasses.replace(reply, **changes)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections of the SDK's pool must not block shutdown

    def __init__(self, address: tuple[str, int], handler: type[_Handler], owner: LLMServer) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that drop connections (closed streams, pooled sockets); loud otherwise."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, as the SDKs' connection pools expect
    # Headers and body go out in separate writes: with Nagle's algorithm the second one waits for the
    # client's delayed ACK, ~40-50 ms a call on loopback, which would swamp every timing.
    disable_nagle_algorithm = True
    server: _HTTPServer
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: pytest shows the SDK's view of failures, the access log only adds noise."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    # -- request ----------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        raw = self._read_body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0].rstrip("/")
        request = RecordedRequest(
            method=self.command,
            path=path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw=raw,
            received_at=time.monotonic(),
        )
        provider: Provider = (
            "anthropic" if path.endswith(("/messages", "/messages/count_tokens")) else "openai"
        )
        reply, failure, stream_break, n = self.server.owner._admit(request)
        try:
            if reply.first_byte_delay:
                time.sleep(reply.first_byte_delay)
            if failure is not None:
                self._send_error(provider, failure, n)
                return
            route = next((h for suffix, h in _ROUTES.items() if path.endswith(suffix)), None)
            if route is None or self.command != "POST" or not isinstance(body, dict):
                status = 404 if route is None else 400
                self._send_error(provider, _Failure(status, 1, None, f"{self.command} {self.path}", None), n)
                return
            route(self, body, reply, stream_break, n)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (closed a stream early): nothing to do

    # -- response helpers -------------------------------------------------------------------------------

    def _request_id_header(self, provider: Provider) -> str:
        return "request-id" if provider == "anthropic" else "x-request-id"

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, provider: Provider, failure: _Failure, n: int) -> None:
        status = failure.status
        message = failure.message or f"Injected HTTP {status} from the loopback LLM server"
        request_id = f"req_loopback_{n}"
        payload: dict[str, Any]
        if provider == "anthropic":
            error_type = failure.error_type or _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
            payload = {
                "type": "error",
                "error": {"type": error_type, "message": message},
                "request_id": request_id,
            }
        else:
            default_type, code = _OPENAI_ERROR_TYPES.get(status, ("server_error", None))
            error_type = failure.error_type or default_type
            payload = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
        headers = {self._request_id_header(provider): request_id}
        if failure.retry_after is not None:
            headers["retry-after"] = str(failure.retry_after)
        self._send_json(status, payload, headers)

    def _start_stream(self, provider: Provider, n: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header(self._request_id_header(provider), f"req_loopback_{n}")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, event: str | None, data: Any) -> None:
        """One server-sent event, in its own HTTP chunk so the client sees it as soon as it is written."""
        text = data if isinstance(data, str) else json.dumps(data)
        self._chunk((f"event: {event}\n" if event else "").encode() + f"data: {text}\n\n".encode())

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _deltas(self, reply: Reply, stream_break: StreamBreak | None) -> Iterator[str]:
        """The text deltas with their delays; stops early (returning) where a break is due."""
        for index, chunk in enumerate(reply.text_chunks()):
            if stream_break is not None and index >= stream_break.after_chunks:
                return
            time.sleep(reply.first_token_delay if index == 0 else reply.chunk_delay)
            yield chunk

    def _broken(self, stream_break: StreamBreak | None, event: str | None, payload: Any) -> bool:
        """Ends a stream that is due to break; returns whether it did."""
        if stream_break is None:
            return False
        if stream_break.mode == "error":
            self._event(event, payload)
            self._end_stream()
        else:
            self.close_connection = True  # no terminating chunk: the client sees a truncated body
        return True

    # -- Anthropic Messages -----------------------------------------------------------------------------

    def _messages(self, body: dict[str, Any], reply: Reply, stream_break: StreamBreak | None, n: int) -> None:
        model = reply.response_model(str(body.get("model", "")))
        usage = reply.usage
        full_usage: dict[str, Any] = {
            "input_tokens": usage.input_tokens,
            "cache_creation_input_tokens": usage.cache_write_tokens,
            "cache_read_input_tokens": usage.cache_read_tokens,
        }
        cache_creation = {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens,
            "ephemeral_1h_input_tokens": 0,
        }
        message_id = f"msg_loopback_{n:08d}"
        if body.get("stream") is not True:
            final_usage = {
                **full_usage,
                "cache_creation": cache_creation,
                "output_tokens": usage.output_tokens,
                "service_tier": "standard",
            }
            if usage.reasoning_tokens:
                final_usage["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
            tool_blocks = [
                {
                    "type": "tool_use",
                    "id": c.call_id("toolu", n, i),
                    "name": c.name,
                    "input": dict(c.arguments),
                }
                for i, c in enumerate(reply.tool_calls)
            ]
            text_blocks = [{"type": "text", "text": reply.text}] if reply.text or not tool_blocks else []
            message = {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [*text_blocks, *tool_blocks],
                "stop_reason": "tool_use" if tool_blocks else "end_turn",
                "stop_sequence": None,
                "usage": final_usage,
            }
            self._send_json(200, message, {"request-id": f"req_loopback_{n}"})
            return

        self._start_stream("anthropic", n)
        start_usage = {
            **full_usage,
            "cache_creation": cache_creation,
            "output_tokens": 1,
            "service_tier": "standard",
        }
        start: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        self._event("message_start", {"type": "message_start", "message": start})
        with_text = bool(reply.text) or not reply.tool_calls
        if with_text:
            block = {"type": "text", "text": ""}
            self._event(
                "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
            )
        self._event("ping", {"type": "ping"})
        for text in self._deltas(reply, stream_break) if with_text else ():
            delta = {"type": "text_delta", "text": text}
            self._event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        if self._broken(stream_break, "error", overloaded):
            return
        if with_text:
            self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
        for i, call in enumerate(reply.tool_calls):
            index = i + int(with_text)
            tool_block = {
                "type": "tool_use",
                "id": call.call_id("toolu", n, i),
                "name": call.name,
                "input": {},
            }
            self._event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": tool_block},
            )
            json_delta = {"type": "input_json_delta", "partial_json": json.dumps(dict(call.arguments))}
            self._event(
                "content_block_delta", {"type": "content_block_delta", "index": index, "delta": json_delta}
            )
            self._event("content_block_stop", {"type": "content_block_stop", "index": index})
        delta_usage: dict[str, Any] = {"output_tokens": usage.output_tokens}
        if reply.anthropic_delta_usage == "full":
            delta_usage = {**full_usage, **delta_usage}
        if usage.reasoning_tokens:
            delta_usage["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use" if reply.tool_calls else "end_turn", "stop_sequence": None},
            "usage": delta_usage,
        }
        self._event("message_delta", message_delta)
        self._event("message_stop", {"type": "message_stop"})
        self._end_stream()

    def _count_tokens(
        self, body: dict[str, Any], reply: Reply, stream_break: StreamBreak | None, n: int
    ) -> None:
        self._send_json(200, {"input_tokens": reply.usage.input_tokens}, {"request-id": f"req_loopback_{n}"})

    # -- OpenAI Chat Completions ------------------------------------------------------------------------

    def _chat_usage(self, usage: Usage) -> dict[str, Any]:
        return {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": usage.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _chat(self, body: dict[str, Any], reply: Reply, stream_break: StreamBreak | None, n: int) -> None:
        model = reply.response_model(str(body.get("model", "")))
        base = {
            "id": f"chatcmpl-loopback{n:08d}",
            "created": int(time.time()),
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_loopback",
        }
        if body.get("stream") is not True:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": reply.text or None,
                "refusal": None,
                "annotations": [],
            }
            if reply.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": c.call_id("call", n, i),
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))},
                    }
                    for i, c in enumerate(reply.tool_calls)
                ]
            choice = {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
            completion = {
                **base,
                "object": "chat.completion",
                "choices": [choice],
                "usage": self._chat_usage(reply.usage),
            }
            self._send_json(200, completion, {"x-request-id": f"req_loopback_{n}"})
            return

        include_usage = (body.get("stream_options") or {}).get("include_usage") is True
        chunk_base: dict[str, Any] = {**base, "object": "chat.completion.chunk"}

        def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**chunk_base, "choices": [choice], **({"usage": None} if include_usage else {})}

        self._start_stream("openai", n)
        self._event(None, chunk({"role": "assistant", "content": "", "refusal": None}, None))
        for text in self._deltas(reply, stream_break):
            self._event(None, chunk({"content": text}, None))
        error = {
            "error": {
                "message": "The server had an error",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
        if self._broken(stream_break, None, error):
            return
        for i, call in enumerate(reply.tool_calls):
            opening = {"name": call.name, "arguments": ""}
            first = {"index": i, "id": call.call_id("call", n, i), "type": "function", "function": opening}
            self._event(None, chunk({"tool_calls": [first]}, None))
            arguments = {"arguments": json.dumps(dict(call.arguments))}
            self._event(None, chunk({"tool_calls": [{"index": i, "function": arguments}]}, None))
        self._event(None, chunk({}, "tool_calls" if reply.tool_calls else "stop"))
        if include_usage:
            self._event(None, {**chunk_base, "choices": [], "usage": self._chat_usage(reply.usage)})
        self._event(None, "[DONE]")
        self._end_stream()

    # -- OpenAI Responses -------------------------------------------------------------------------------

    def _responses(
        self, body: dict[str, Any], reply: Reply, stream_break: StreamBreak | None, n: int
    ) -> None:
        usage = reply.usage
        item_id = f"msg_loopback_{n:08d}"

        def part(text: str) -> dict[str, Any]:
            return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}

        def item(status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                "id": item_id,
                "type": "message",
                "status": status,
                "content": content,
                "role": "assistant",
            }

        def response(status: str, output: list[dict[str, Any]], with_usage: bool) -> dict[str, Any]:
            return {
                "id": f"resp_loopback_{n:08d}",
                "object": "response",
                "created_at": int(time.time()),
                "status": status,
                "background": False,
                "error": None,
                "incomplete_details": None,
                "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"),
                "model": reply.response_model(str(body.get("model", ""))),
                "output": output,
                "parallel_tool_calls": True,
                "previous_response_id": body.get("previous_response_id"),
                "reasoning": {"effort": None, "summary": None},
                "service_tier": "default",
                "store": True,
                "temperature": 1.0,
                "text": {"format": {"type": "text"}, "verbosity": "medium"},
                "tool_choice": "auto",
                "tools": [],
                "top_p": 1.0,
                "truncation": "disabled",
                "usage": {
                    "input_tokens": usage.input_tokens,
                    "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
                    "output_tokens": usage.output_tokens,
                    "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
                    "total_tokens": usage.input_tokens + usage.output_tokens,
                }
                if with_usage
                else None,
                "user": None,
                "metadata": {},
            }

        done_item = item("completed", [part(reply.text)])
        function_calls = [
            {
                "id": f"fc_loopback_{n}_{i}",
                "type": "function_call",
                "call_id": c.call_id("call", n, i),
                "name": c.name,
                "arguments": json.dumps(dict(c.arguments)),
                "status": "completed",
            }
            for i, c in enumerate(reply.tool_calls)
        ]
        if body.get("stream") is not True:
            output = [done_item] if reply.text or not function_calls else []
            self._send_json(
                200,
                response("completed", [*output, *function_calls], True),
                {"x-request-id": f"req_loopback_{n}"},
            )
            return

        sequence = itertools.count()

        def event(kind: str, **fields: Any) -> None:
            self._event(kind, {"type": kind, "sequence_number": next(sequence), **fields})

        self._start_stream("openai", n)
        event("response.created", response=response("in_progress", [], False))
        event("response.in_progress", response=response("in_progress", [], False))
        event("response.output_item.added", output_index=0, item=item("in_progress", []))
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        event("response.content_part.added", **where, part=part(""))
        for text in self._deltas(reply, stream_break):
            event("response.output_text.delta", **where, delta=text, logprobs=[])
        if stream_break is not None:
            error = {
                "type": "error",
                "code": "server_error",
                "message": "The server had an error",
                "param": None,
            }
            self._broken(stream_break, "error", {**error, "sequence_number": next(sequence)})
            return
        event("response.output_text.done", **where, text=reply.text, logprobs=[])
        event("response.content_part.done", **where, part=part(reply.text))
        event("response.output_item.done", output_index=0, item=done_item)
        for i, done_call in enumerate(function_calls):
            opening = {**done_call, "arguments": "", "status": "in_progress"}
            event("response.output_item.added", output_index=i + 1, item=opening)
            args = {"item_id": done_call["id"], "output_index": i + 1}
            event("response.function_call_arguments.delta", **args, delta=done_call["arguments"])
            event("response.function_call_arguments.done", **args, arguments=done_call["arguments"])
            event("response.output_item.done", output_index=i + 1, item=done_call)
        event("response.completed", response=response("completed", [done_item, *function_calls], True))
        self._end_stream()


# Longest suffix first: "/v1/messages/count_tokens" must not reach the Messages handler.
_ROUTES = {
    "/messages/count_tokens": _Handler._count_tokens,
    "/messages": _Handler._messages,
    "/chat/completions": _Handler._chat,
    "/responses": _Handler._responses,
}
