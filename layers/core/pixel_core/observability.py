"""Logger (and later metrics and tracing), created once; every module imports them from here."""

from aws_lambda_powertools import Logger

SERVICE_NAME = "pixel-gateway"

logger = Logger(service=SERVICE_NAME)
