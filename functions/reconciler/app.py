"""Reconciler: every minute, re-derive from the world what lost or late events should have told us."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kcluster.observability import logger, metrics, tracer
from kcluster.wiring import build_clients, build_service

clients = build_clients()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    build_service(clients).reconcile()
    return {"ok": True}
