"""Reactor: lifecycle, command-status and node events from the queue -> the launch workflow.

Each queue message is one EventBridge event. A message that does not parse, or that could not be
decided yet, is reported as a batch item failure (retried, then dead-lettered); one about another
cluster is logged and dropped; the others are done.
"""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from kcluster.events import EventNotForUs, EventRejected, KnownEvent, parse_event
from kcluster.observability import logger, metrics, tracer
from kcluster.service import EventDeferred, Service, build_clients, build_service

clients = build_clients()
# One bad message must not fail (and so retry) the messages beside it.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def parsed_or_none(body: str) -> KnownEvent | None:
    """The event a message carries, or None: refused messages are reported by handle_record."""
    try:
        return parse_event(body)
    except EventRejected:
        return None


def handle_record(record: SQSRecord, service: Service) -> None:
    try:
        service.handle(parse_event(record.body))
    except EventNotForUs as other:
        logger.warning("event for another cluster ignored", extra={"reason": str(other)})
    except EventRejected as rejected:
        logger.error("event refused", extra={"reason": str(rejected), "message_id": record.message_id})
        raise
    except EventDeferred as deferred:
        logger.info("event deferred", extra={"reason": str(deferred), "message_id": record.message_id})
        raise


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    service = build_service(clients)
    # Every instance the batch's events make claims about, looked up at once (DescribeAutoScalingInstances
    # takes 50 ids): a batch of forged events costs one call, not one per event.
    parsed = [parsed_or_none(record["body"]) for record in event["Records"]]
    service.check_world([p for p in parsed if p is not None])
    with processor(records=event["Records"], handler=lambda record: handle_record(record, service)):
        processor.process()
    service.dispatch()
    return processor.response()
