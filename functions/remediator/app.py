"""Remediator: one of the cluster's remediation alarms changed state -> remember it, then take the next
remediation step (or say why none is taken). The reconciler takes the following steps, once a minute,
for as long as the alarm stands."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kcluster.events import EventNotForUs, EventRejected, parse_alarm_event
from kcluster.observability import logger, metrics, tracer
from kcluster.wiring import build_clients, build_service

clients = build_clients()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        parsed = parse_alarm_event(event)
    except EventRejected as rejected:
        # Not raised: a retry of the same event would not fit any better.
        logger.error("event refused", extra={"reason": str(rejected)})
        return {"ok": False, "refused": str(rejected)}
    logger.set_correlation_id(parsed.detail.alarmName)
    service = build_service(clients)
    try:
        service.on_alarm(parsed)
    except EventNotForUs as other:
        logger.warning("alarm of another cluster ignored", extra={"reason": str(other)})
        return {"ok": False, "ignored": str(other)}
    service.remediate()
    return {"ok": True}
