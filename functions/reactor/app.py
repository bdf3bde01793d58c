"""Reactor: lifecycle, command-status and node events from the queue -> the launch workflow.

Each queue message is one EventBridge event, parsed once by the batch processor. A message that does
not fit, or that could not be decided yet, is reported as a batch item failure (retried, then
dead-lettered); one about another cluster is logged and dropped; the others are done.
"""

from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from kcluster.events import EventNotForUs, ReactorBatchProcessor, ReactorRecord
from kcluster.intake import EventDeferred
from kcluster.observability import logger, metrics, tracer
from kcluster.service import Service
from kcluster.wiring import build_clients, build_service

clients = build_clients()
processor = ReactorBatchProcessor(logger)


def handle_record(record: ReactorRecord, service: Service) -> None:
    try:
        service.handle(record.body)
    except EventNotForUs as other:
        logger.warning("event for another cluster ignored", extra={"reason": str(other)})
    except EventDeferred as deferred:
        logger.info("event deferred", extra={"reason": str(deferred), "message_id": record.messageId})
        raise


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    service = build_service(clients)
    with processor(records=event["Records"], handler=lambda record: handle_record(record, service)):
        # Every instance the batch's events make claims about, looked up at once (DescribeAutoScalingInstances
        # takes 50 ids): a batch of forged events costs one call, not one per event.
        service.check_world([record.body for record in processor.validate()])
        processor.process()
    service.dispatch()
    return processor.response()
