"""Traces (OpenTelemetry): a span for each API request (with its decode, predict, shadow
and log steps), each job and each monitor pass, exported over OTLP/HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (``Config.otlp_endpoint``) and nothing otherwise.

The request's span itself is FastAPI's (its native telemetry: HTTP semantic conventions,
the caller's ``traceparent`` continued, dependency and endpoint spans inside); this
module adds what it cannot know: the request id, model, version and variant that
answered, and the steps of the prediction.

Without a provider OpenTelemetry's API hands out non-recording spans: the code below runs
the same either way, and costs next to nothing when tracing is off.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span

from core.config import Config

TRACER = trace.get_tracer("vision")
_started = False

Attributes = Mapping[str, Any]


def start_tracing(config: Config, service: str) -> bool:
    """Exports this process's spans to ``config.otlp_endpoint`` as ``service`` (unless
    ``OTEL_SERVICE_NAME`` says otherwise); False: tracing is off. Once per process."""
    global _started
    if not config.otlp_endpoint or _started:
        return _started
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.propagate import set_global_textmap
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    # A caller's trace (W3C traceparent) only: OpenTelemetry's default also takes its
    # baggage, which nothing here reads and whose oversized headers its parser logs whole.
    set_global_textmap(TraceContextTextMapPropagator())
    # The exporter reads the endpoint (adding /v1/traces) and its headers from the
    # standard environment; the provider flushes what is left when the process exits.
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _started = True
    return True


def span(name: str, attributes: Attributes | None = None) -> AbstractContextManager[Span]:
    """A span, current inside the ``with`` (exceptions are recorded on it)."""
    return TRACER.start_as_current_span(name, attributes=dict(attributes or {}))


def record(name: str, parent: Context | None, start_ns: int, end_ns: int,
           attributes: Attributes | None = None) -> None:
    """A finished span of work done elsewhere (a batch's model call, in the batcher's
    thread), as a child of a request's span."""
    if parent is None:
        return
    done = TRACER.start_span(name, context=parent, start_time=start_ns,
                             attributes=dict(attributes or {}))
    done.end(end_time=end_ns)


def answered(request_id: str, model: str, version: int | None, variant: str | None
             ) -> None:
    """Names what answered on the request's span (FastAPI's own server span, which
    continues a caller's W3C ``traceparent``; it is there only while tracing is on)."""
    trace.get_current_span().set_attributes({
        "vision.request_id": request_id, "vision.model": model,
        "vision.version": version or 0, "vision.variant": variant or ""})


def current() -> Context:
    """The current context: what ``record`` needs to attach a span to this request."""
    return otel_context.get_current()


def trace_id(context: Context | None = None) -> str | None:
    """The trace id (32 hex digits) of the context's span; None when nothing is traced."""
    found = trace.get_current_span(context).get_span_context()
    return format(found.trace_id, "032x") if found.is_valid else None


def set_attributes(attributes: Attributes) -> None:
    """Adds to the current span what is known only at its end (a job's version)."""
    trace.get_current_span().set_attributes(dict(attributes))
