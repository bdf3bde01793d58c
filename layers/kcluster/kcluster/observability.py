"""Powertools Logger, Tracer and Metrics, shared by every function (service name from the environment)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()  # JSON lines; POWERTOOLS_SERVICE_NAME and POWERTOOLS_LOG_LEVEL come from the template
tracer = Tracer()
metrics = Metrics()  # POWERTOOLS_METRICS_NAMESPACE from the template
