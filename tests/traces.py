"""A real OTLP/HTTP trace receiver: an HTTP server on a free port taking what
OpenTelemetry's exporter POSTs to /v1/traces, decoded with OpenTelemetry's own protobuf
definitions."""

from __future__ import annotations

import gzip
import time
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from tests.monitoring.receivers import HttpReceiver


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root
    kind: int  # 2: server, 1: internal
    attributes: dict
    failed: bool
    start_ns: int
    end_ns: int


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


class OtlpReceiver(HttpReceiver):
    """``endpoint`` goes into OTEL_EXPORTER_OTLP_ENDPOINT; ``spans()`` decodes all."""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[ReceivedSpan]:
        found = []
        for post in list(self.received):
            assert post.path == "/v1/traces", post.path
            body = post.body
            if post.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                service = next(_value(a.value) for a in resource.resource.attributes
                               if a.key == "service.name")
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        found.append(ReceivedSpan(
                            service, span.name, span.trace_id.hex(), span.span_id.hex(),
                            span.parent_span_id.hex(), span.kind,
                            {a.key: _value(a.value) for a in span.attributes},
                            span.status.code == 2, span.start_time_unix_nano,
                            span.end_time_unix_nano))
        return found

    def wait_for(self, condition, timeout: float = 20) -> list[ReceivedSpan]:
        """The spans, once ``condition(spans)`` holds (the exporter sends in batches)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if condition(spans):
                return spans
            assert time.monotonic() < deadline, f"spans so far: {[s.name for s in spans]}"
            time.sleep(0.2)
