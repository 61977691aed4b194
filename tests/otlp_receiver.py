"""A real, in-process OTLP receiver (gRPC and HTTP/protobuf) for tests.

Tests point the *real* OpenTelemetry exporters at this receiver instead of mocking them, so what is
asserted is what actually went over the wire: encoding, endpoint/env-var resolution, compression,
retries and timeouts included. It is built on the service code generated in ``opentelemetry-proto``
and listens on an ephemeral loopback port, so tests can run in parallel without port clashes.

Typical use::

    with OTLPReceiver("grpc") as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint)
        ...  # emit telemetry, force_flush()
        (span,) = rx.wait_for_spans(1, name="checkout")
        assert span.attributes["order.id"] == 42
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
import zlib
from concurrent import futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Protocol = Literal["grpc", "http/protobuf"]
Behaviour = Literal["ok", "unavailable", "reject", "hang"]
Signal = Literal["traces", "metrics", "logs"]
MetricKind = Literal["sum", "gauge", "histogram", "exponential_histogram", "summary"]
Temporality = Literal["delta", "cumulative", "unspecified"]

_R = TypeVar("_R")

# Poll interval for wait_for_*; short so tests stay fast, long enough not to spin.
_POLL_SECONDS = 0.02


# ----------------------------------------------------------------------------------------------------
# Flat, plain-python records (so assertions do not need to know the protobuf layout)
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRecord:
    """A span event."""

    name: str
    attributes: dict[str, Any]
    time_unix_nano: int


@dataclass(frozen=True)
class LinkRecord:
    """A span link (ids as lowercase hex)."""

    trace_id: str
    span_id: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class SpanRecord:
    """One received span, flattened together with its resource and scope.

    Ids are lowercase hex (``""`` for an absent parent), ``kind`` and ``status_code`` use the short
    API names (``"SERVER"``, ``"ERROR"``, ...) so they compare naturally with ``opentelemetry.trace`` enums'
    ``.name``.
    """

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: str
    attributes: dict[str, Any]
    status_code: str
    status_message: str
    events: tuple[EventRecord, ...]
    links: tuple[LinkRecord, ...]
    resource: dict[str, Any]
    scope_name: str
    scope_version: str
    start_time_unix_nano: int
    end_time_unix_nano: int

    @property
    def event_names(self) -> list[str]:
        """Event names in order, the most common thing to assert on."""
        return [e.name for e in self.events]


@dataclass(frozen=True)
class MetricPoint:
    """One received metric data point, flattened with its metric, resource and scope.

    Which value fields are set depends on ``kind``: ``value`` for sum/gauge; ``count``/``sum``/``min``/
    ``max`` for the histogram kinds and summary; ``bucket_counts``/``explicit_bounds`` for explicit
    histograms; ``scale``/``zero_count``/``positive_*``/``negative_*`` for exponential histograms;
    ``quantiles`` for summary.
    ``is_monotonic`` is only meaningful for sums and ``temporality`` is ``None`` for gauge and summary.
    """

    name: str
    description: str
    unit: str
    kind: MetricKind
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    temporality: Temporality | None
    is_monotonic: bool | None
    start_time_unix_nano: int
    time_unix_nano: int
    value: int | float | None = None
    count: int | None = None
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    bucket_counts: tuple[int, ...] = ()
    explicit_bounds: tuple[float, ...] = ()
    scale: int | None = None
    zero_count: int | None = None
    positive_offset: int | None = None
    positive_bucket_counts: tuple[int, ...] = ()
    negative_offset: int | None = None
    negative_bucket_counts: tuple[int, ...] = ()
    quantiles: dict[float, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LogRecordData:
    """One received log record (an OTel *event* when ``event_name`` is set), flattened with its resource
    and scope; trace and span ids are lowercase hex (``""`` when the record carries no trace context)."""

    event_name: str
    body: Any
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    severity_number: int
    severity_text: str
    trace_id: str
    span_id: str
    time_unix_nano: int


@dataclass(frozen=True)
class ReceivedRequest:
    """A successfully accepted export request, kept raw for assertions the flat records do not cover."""

    signal: Signal
    protocol: Protocol
    headers: dict[str, str]
    body: (
        trace_service_pb2.ExportTraceServiceRequest
        | metrics_service_pb2.ExportMetricsServiceRequest
        | logs_service_pb2.ExportLogsServiceRequest
    )


# ----------------------------------------------------------------------------------------------------
# Protobuf -> python decoding
# ----------------------------------------------------------------------------------------------------


def decode_any_value(value: AnyValue) -> Any:
    """Decode an OTLP ``AnyValue`` into the equivalent python value (arrays -> list, kvlist -> dict)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [decode_any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return decode_attributes(value.kvlist_value.values)
    return getattr(value, which)


def decode_attributes(attributes: Sequence[KeyValue]) -> dict[str, Any]:
    """Decode repeated ``KeyValue`` into a plain dict."""
    return {kv.key: decode_any_value(kv.value) for kv in attributes}


def _enum_short(name: str, prefix: str) -> str:
    return name.removeprefix(prefix)


def _temporality(value: int) -> Temporality:
    name = metrics_pb2.AggregationTemporality.Name(value)
    return _enum_short(name, "AGGREGATION_TEMPORALITY_").lower()  # type: ignore[return-value]


def spans_from_request(request: trace_service_pb2.ExportTraceServiceRequest) -> list[SpanRecord]:
    """Flatten one trace export request into ``SpanRecord``s."""
    out: list[SpanRecord] = []
    for rs in request.resource_spans:
        resource = decode_attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    SpanRecord(
                        name=s.name,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        kind=_enum_short(trace_pb2.Span.SpanKind.Name(s.kind), "SPAN_KIND_"),
                        attributes=decode_attributes(s.attributes),
                        status_code=_enum_short(
                            trace_pb2.Status.StatusCode.Name(s.status.code), "STATUS_CODE_"
                        ),
                        status_message=s.status.message,
                        events=tuple(
                            EventRecord(e.name, decode_attributes(e.attributes), e.time_unix_nano)
                            for e in s.events
                        ),
                        links=tuple(
                            LinkRecord(lk.trace_id.hex(), lk.span_id.hex(), decode_attributes(lk.attributes))
                            for lk in s.links
                        ),
                        resource=resource,
                        scope_name=ss.scope.name,
                        scope_version=ss.scope.version,
                        start_time_unix_nano=s.start_time_unix_nano,
                        end_time_unix_nano=s.end_time_unix_nano,
                    )
                )
    return out


def logs_from_request(request: logs_service_pb2.ExportLogsServiceRequest) -> list[LogRecordData]:
    out = []
    for resource_logs in request.resource_logs:
        resource = decode_attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                out.append(
                    LogRecordData(
                        event_name=record.event_name,
                        body=decode_any_value(record.body) if record.HasField("body") else None,
                        attributes=decode_attributes(record.attributes),
                        resource=resource,
                        scope_name=scope_logs.scope.name,
                        severity_number=record.severity_number,
                        severity_text=record.severity_text,
                        trace_id=record.trace_id.hex(),
                        span_id=record.span_id.hex(),
                        time_unix_nano=record.time_unix_nano,
                    )
                )
    return out


def _opt(msg: Any, name: str) -> float | None:
    return getattr(msg, name) if msg.HasField(name) else None


def metrics_from_request(request: metrics_service_pb2.ExportMetricsServiceRequest) -> list[MetricPoint]:
    """Flatten one metrics export request into ``MetricPoint``s (one per data point)."""
    out: list[MetricPoint] = []
    for rm in request.resource_metrics:
        resource = decode_attributes(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind is None:
                    continue
                data = getattr(m, kind)
                temporality = (
                    _temporality(data.aggregation_temporality) if kind not in ("gauge", "summary") else None
                )
                is_monotonic = data.is_monotonic if kind == "sum" else None
                for dp in data.data_points:
                    common: dict[str, Any] = {
                        "name": m.name,
                        "description": m.description,
                        "unit": m.unit,
                        "kind": kind,
                        "attributes": decode_attributes(dp.attributes),
                        "resource": resource,
                        "scope_name": sm.scope.name,
                        "temporality": temporality,
                        "is_monotonic": is_monotonic,
                        "start_time_unix_nano": dp.start_time_unix_nano,
                        "time_unix_nano": dp.time_unix_nano,
                    }
                    if kind in ("sum", "gauge"):
                        which = dp.WhichOneof("value")
                        out.append(MetricPoint(**common, value=getattr(dp, which) if which else None))
                    elif kind == "histogram":
                        out.append(
                            MetricPoint(
                                **common,
                                count=dp.count,
                                sum=_opt(dp, "sum"),
                                min=_opt(dp, "min"),
                                max=_opt(dp, "max"),
                                bucket_counts=tuple(dp.bucket_counts),
                                explicit_bounds=tuple(dp.explicit_bounds),
                            )
                        )
                    elif kind == "exponential_histogram":
                        out.append(
                            MetricPoint(
                                **common,
                                count=dp.count,
                                sum=_opt(dp, "sum"),
                                min=_opt(dp, "min"),
                                max=_opt(dp, "max"),
                                scale=dp.scale,
                                zero_count=dp.zero_count,
                                positive_offset=dp.positive.offset,
                                positive_bucket_counts=tuple(dp.positive.bucket_counts),
                                negative_offset=dp.negative.offset,
                                negative_bucket_counts=tuple(dp.negative.bucket_counts),
                            )
                        )
                    else:  # summary
                        out.append(
                            MetricPoint(
                                **common,
                                count=dp.count,
                                sum=dp.sum,
                                quantiles={q.quantile: q.value for q in dp.quantile_values},
                            )
                        )
    return out


# ----------------------------------------------------------------------------------------------------
# Transports
# ----------------------------------------------------------------------------------------------------

_REQUEST_TYPES: dict[Signal, type] = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}
_RESPONSE_TYPES: dict[Signal, type] = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}
_HTTP_PATHS: dict[str, Signal] = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}


class _GrpcService(
    trace_service_pb2_grpc.TraceServiceServicer,
    metrics_service_pb2_grpc.MetricsServiceServicer,
    logs_service_pb2_grpc.LogsServiceServicer,
):
    """The three OTLP gRPC services in one object: ``Export`` tells the signal from the request type."""

    def __init__(self, receiver: OTLPReceiver) -> None:
        self._rx = receiver

    def _export(self, request: Any, context: grpc.ServicerContext) -> Any:
        signal: Signal = next(kind for kind, cls in _REQUEST_TYPES.items() if isinstance(request, cls))
        behaviour = self._rx._note_request()
        if behaviour == "hang":
            # Hold the call until the client gives up (deadline) or the receiver stops; never block stop().
            give_up = time.monotonic() + self._rx.hang_seconds
            while (
                context.is_active()
                and time.monotonic() < give_up
                and not self._rx._stopping.wait(_POLL_SECONDS)
            ):
                pass
            context.abort(grpc.StatusCode.UNAVAILABLE, "otlp test receiver: hang ended")
        if behaviour == "unavailable":
            if self._rx.retry_delay is not None:
                info = RetryInfo(retry_delay=_duration(self._rx.retry_delay))
                context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),))
            context.abort(grpc.StatusCode.UNAVAILABLE, "otlp test receiver: unavailable on purpose")
        if behaviour == "reject":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "otlp test receiver: rejected on purpose")
        headers = {md.key: md.value for md in context.invocation_metadata() if isinstance(md.value, str)}
        self._rx._store(ReceivedRequest(signal, "grpc", headers, request))
        return _RESPONSE_TYPES[signal]()

    Export = _export  # the name the generated gRPC glue dispatches to (aliased to keep pep8 naming clean)


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


class _HttpHandler(http.server.BaseHTTPRequestHandler):
    """OTLP/HTTP binary protobuf endpoint.

    Stays on HTTP/1.0 (one request per connection) so stop() leaves no idle keep-alive handler threads.
    """

    server: _HttpServer

    def do_POST(self) -> None:
        rx = self.server.receiver
        signal = _HTTP_PATHS.get(self.path.split("?", 1)[0])
        if signal is None:
            self._reply(404, b"unknown path", "text/plain")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        behaviour = rx._note_request()
        if behaviour == "hang":
            rx._stopping.wait(rx.hang_seconds)
            self._reply(503, b"hang ended", "text/plain")
            return
        if behaviour == "unavailable":
            extra = {"Retry-After": f"{rx.retry_delay:g}"} if rx.retry_delay is not None else {}
            self._reply(503, b"unavailable on purpose", "text/plain", extra)
            return
        if behaviour == "reject":
            self._reply(400, b"rejected on purpose", "text/plain")
            return
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/x-protobuf":
            self._reply(415, f"unsupported content type {content_type!r}".encode(), "text/plain")
            return
        try:
            encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding not in ("", "identity"):
                raise ValueError(f"unsupported content encoding {encoding!r}")
            request = _REQUEST_TYPES[signal].FromString(body)
        except Exception as exc:
            self._reply(400, f"bad request: {exc}".encode(), "text/plain")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        rx._store(ReceivedRequest(signal, "http/protobuf", headers, request))
        self._reply(200, _RESPONSE_TYPES[signal]().SerializeToString(), "application/x-protobuf")

    def _reply(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # client already gave up (e.g. its timeout fired during "hang")

    def log_message(self, *args: Any) -> None:
        """Silence per-request stderr logging; pytest output stays readable."""


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: OTLPReceiver) -> None:
        self.receiver = receiver
        super().__init__(("127.0.0.1", 0), _HttpHandler)


# ----------------------------------------------------------------------------------------------------
# Public receiver
# ----------------------------------------------------------------------------------------------------


class OTLPReceiver:
    """An OTLP receiver on ``127.0.0.1:<ephemeral>`` for one protocol, storing everything it accepts.

    ``behaviour`` can be flipped at any time to exercise exporter fault handling:

    * ``"ok"`` - accept and store (default).
    * ``"unavailable"`` - gRPC ``UNAVAILABLE`` / HTTP 503 (retryable). If ``retry_delay`` is set it is sent as
      gRPC ``RetryInfo`` / HTTP ``Retry-After``, which the exporters use *instead of* their 1s, 2s, 4s...
      backoff.
    * ``"reject"`` - gRPC ``INVALID_ARGUMENT`` / HTTP 400 (not retryable).
    * ``"hang"`` - hold the request for ``hang_seconds`` (or until the gRPC client's deadline, or ``stop()``).

    Rejected requests are not stored, but every export call is counted in ``requests_seen``.
    """

    def __init__(self, protocol: Protocol = "grpc", *, hang_seconds: float = 30.0) -> None:
        if protocol not in ("grpc", "http/protobuf"):
            raise ValueError(f"unsupported OTLP protocol {protocol!r}")
        self.protocol: Protocol = protocol
        self.behaviour: Behaviour = "ok"
        self.retry_delay: float | None = None
        self.hang_seconds = hang_seconds
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._requests_seen = 0
        self._stopping = threading.Event()
        self._grpc_server: grpc.Server | None = None
        self._http_server: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None
        self._port: int | None = None

    # ---- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind an ephemeral port and start serving (returns self for chaining)."""
        if self._port is not None:
            raise RuntimeError("receiver already started")
        self._stopping.clear()
        if self.protocol == "grpc":
            # Enough workers that a few "hang" calls cannot starve the healthy ones.
            server = grpc.server(
                futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="otlp-rx-grpc")
            )
            service = _GrpcService(self)
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)
            metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(service, server)
            logs_service_pb2_grpc.add_LogsServiceServicer_to_server(service, server)
            self._port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            self._grpc_server = server
        else:
            httpd = _HttpServer(self)
            self._port = httpd.server_address[1]
            self._http_thread = threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="otlp-rx-http", daemon=True
            )
            self._http_thread.start()
            self._http_server = httpd
        return self

    def stop(self) -> None:
        """Stop serving; returns promptly even mid-``"hang"`` as hung handlers wait on an Event set here."""
        self._stopping.set()
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=None).wait(timeout=5)
            self._grpc_server = None
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
            if self._http_thread is not None:
                self._http_thread.join(timeout=5)
            self._http_server = None
            self._http_thread = None
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- addressing --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound ephemeral port."""
        if self._port is None:
            raise RuntimeError("receiver not started")
        return self._port

    @property
    def endpoint(self) -> str:
        """Base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and the gRPC exporters' ``endpoint=``)."""
        return f"http://127.0.0.1:{self.port}"

    def signal_endpoint(self, signal: Signal) -> str:
        """URL to pass as ``endpoint=`` to an exporter: HTTP exporters need the full ``/v1/<signal>`` path."""
        return self.endpoint if self.protocol == "grpc" else f"{self.endpoint}/v1/{signal}"

    def env(self) -> dict[str, str]:
        """Env vars that point zero-argument exporters (or a subprocess) at this receiver."""
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": self.protocol}

    # ---- recording (called from server threads) ----------------------------------------------------

    def _note_request(self) -> Behaviour:
        with self._lock:
            self._requests_seen += 1
            return self.behaviour

    def _store(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # ---- inspection --------------------------------------------------------------------------------

    @property
    def requests_seen(self) -> int:
        """Every export call that reached a handler, including failed/hung ones (useful to count retries)."""
        with self._lock:
            return self._requests_seen

    def requests(self, signal: Signal | None = None) -> list[ReceivedRequest]:
        """Return accepted requests (raw protobuf + headers), optionally for one signal."""
        with self._lock:
            return [r for r in self._requests if signal is None or r.signal == signal]

    def clear(self) -> None:
        """Forget everything received (the ``requests_seen`` counter too)."""
        with self._lock:
            self._requests.clear()
            self._requests_seen = 0

    def spans(self, name: str | None = None) -> list[SpanRecord]:
        """All received spans in arrival order, optionally only those called ``name``."""
        out = [s for r in self.requests("traces") for s in spans_from_request(r.body)]  # type: ignore[arg-type]
        return [s for s in out if name is None or s.name == name]

    def metrics(self, name: str | None = None) -> list[MetricPoint]:
        """All received data points in arrival order, optionally only for metric ``name``.

        With cumulative temporality each export repeats every series, so the *last* point per series is
        usually the one to assert on; see ``latest_metrics``.
        """
        out = [p for r in self.requests("metrics") for p in metrics_from_request(r.body)]  # type: ignore[arg-type]
        return [p for p in out if name is None or p.name == name]

    def latest_metrics(self, name: str | None = None) -> list[MetricPoint]:
        """Return the last point received per (metric name, attributes, resource) series."""
        latest: dict[tuple[str, str, str], MetricPoint] = {}
        for p in self.metrics(name):
            key = (p.name, repr(sorted(p.attributes.items())), repr(sorted(p.resource.items())))
            latest.pop(key, None)
            latest[key] = p
        return list(latest.values())

    def logs(self, event_name: str | None = None) -> list[LogRecordData]:
        """All received log records in arrival order, optionally only the events called ``event_name``."""
        out = [x for r in self.requests("logs") for x in logs_from_request(r.body)]  # type: ignore[arg-type]
        return [x for x in out if event_name is None or x.event_name == event_name]

    def wait_for_logs(
        self,
        until: int | Callable[[list[LogRecordData]], bool] = 1,
        *,
        event_name: str | None = None,
        timeout: float = 10.0,
    ) -> list[LogRecordData]:
        """Like ``wait_for_spans`` for log records (events)."""
        return self._wait(
            lambda: self.logs(event_name),
            until,
            timeout=timeout,
            what="log records",
            name=event_name,
            describe=_describe_log,
        )

    def wait_for_spans(
        self,
        until: int | Callable[[list[SpanRecord]], bool] = 1,
        *,
        name: str | None = None,
        timeout: float = 10.0,
    ) -> list[SpanRecord]:
        """Poll until at least ``until`` spans (or ``until(spans)`` is truthy); return the (filtered) spans.

        Export is asynchronous (batch processors, retries), so tests must wait rather than assert immediately.
        Raises AssertionError listing what *was* received on timeout.
        """
        return self._wait(
            lambda: self.spans(name), until, timeout=timeout, what="spans", name=name, describe=_describe_span
        )

    def wait_for_metrics(
        self,
        until: int | Callable[[list[MetricPoint]], bool] = 1,
        *,
        name: str | None = None,
        timeout: float = 10.0,
    ) -> list[MetricPoint]:
        """Like ``wait_for_spans`` for metric data points (``until`` counts points, not requests)."""
        return self._wait(
            lambda: self.metrics(name),
            until,
            timeout=timeout,
            what="metric points",
            name=name,
            describe=_describe_point,
        )

    def _wait(
        self,
        fetch: Callable[[], list[_R]],
        until: int | Callable[[list[_R]], bool],
        *,
        timeout: float,
        what: str,
        name: str | None,
        describe: Callable[[_R], str],
    ) -> list[_R]:
        check: Callable[[list[_R]], bool] = (
            (lambda items: len(items) >= until) if isinstance(until, int) else until
        )
        deadline = time.monotonic() + timeout
        while True:
            items = fetch()
            if check(items):
                return items
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL_SECONDS)
        wanted = f">= {until}" if isinstance(until, int) else "predicate"
        filt = f" named {name!r}" if name else ""
        shown = "\n  ".join(describe(i) for i in items[:50]) or "(none)"
        more = f"\n  ... and {len(items) - 50} more" if len(items) > 50 else ""
        raise AssertionError(
            f"timed out after {timeout}s waiting for {wanted} {what}{filt} on {self.protocol} receiver "
            f"(behaviour={self.behaviour!r}, requests_seen={self.requests_seen}, "
            f"accepted={len(self.requests())}); "
            f"got {len(items)}:\n  {shown}{more}"
        )


def _describe_span(s: SpanRecord) -> str:
    return f"{s.name} [{s.kind}, {s.status_code}] scope={s.scope_name!r} attrs={s.attributes}"


def _describe_log(x: LogRecordData) -> str:
    return (
        f"{x.event_name or '(no event name)'} [{x.severity_text}] scope={x.scope_name!r} attrs={x.attributes}"
    )


def _describe_point(p: MetricPoint) -> str:
    val = f"value={p.value}" if p.kind in ("sum", "gauge") else f"count={p.count} sum={p.sum}"
    return f"{p.name} ({p.kind}, unit={p.unit!r}) attrs={p.attributes} {val}"
