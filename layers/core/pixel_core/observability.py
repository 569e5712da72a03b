"""Logger and metrics, created once; every module imports them from here.

- Logs: JSON (Powertools Logger); handlers add the Lambda context and, for the API, the API
  Gateway request id as correlation id. Never log secrets, tokens or e-mails (or their hashes).
- Metrics: CloudWatch embedded metric format (Powertools Metrics), flushed by each handler's
  `@metrics.log_metrics`: no PutMetricData calls, no extra latency.
- Traces: Lambda's active tracing (template.yaml, `Tracing: Active`) records every invocation
  and AWS call segment without the X-Ray SDK, so no module pays that SDK's import cost.
"""

import warnings

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE_NAME = "pixel-gateway"
METRICS_NAMESPACE = "PixelGateway"

# Most API requests count nothing; an empty flush is normal, not worth a warning per request.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)


def count(name: str, value: int = 1) -> None:
    """A count metric of this invocation (EventsAccepted, EventsDropped, ...)."""
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
