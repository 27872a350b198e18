"""The gateway: an OpenAI-compatible proxy that logs every production call as a trace.

``create_gateway`` builds it on a store; ``serve_app`` combines it with the API for
``panopticon serve`` (roles ``api``, ``gateway``). The hot path is :mod:`.proxy`; the
log sink :mod:`.logging` (each call a trace, through the trace store's writer); limits and
budgets :mod:`.limits`; keys and routes :mod:`.routing`; OpenAI <-> Anthropic
:mod:`.translate`."""

from panopticon.gateway.app import create_gateway, serve_app
from panopticon.gateway.logging import BatchingSink, CallRecord, SpanStore, TraceSink
from panopticon.gateway.proxy import Gateway, GatewayOptions

__all__ = [
    "BatchingSink",
    "CallRecord",
    "Gateway",
    "GatewayOptions",
    "SpanStore",
    "TraceSink",
    "create_gateway",
    "serve_app",
]
