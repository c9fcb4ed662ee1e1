"""The operator's paths of the OpenAPI document: ``/metrics`` (views/observability.py)."""

from __future__ import annotations

from .openapi_parts import ERROR


def operations_paths() -> dict:
    """``/metrics``: Prometheus's text format, behind ``approvalrules.metrics.token`` if set."""
    return {
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of this process (or of every process of the "
                "host with PROMETHEUS_MULTIPROC_DIR): request durations, decisions, jobs, "
                "caches, pending approvals and the outbox backlog (docs/deployment.md, "
                "Observability). Not an API key: when approvalrules.metrics.token is set, send "
                "it as 'Authorization: Bearer <token>'",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The metrics, in Prometheus's text exposition format "
                        "(OpenMetrics when the Accept header asks for it)",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": {
                        "description": "The metrics token is missing or wrong "
                        "(missing_metrics_token, invalid_metrics_token)",
                        "content": {"application/json": {"schema": ERROR}},
                    },
                },
            }
        }
    }
