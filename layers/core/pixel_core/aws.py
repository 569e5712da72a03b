"""AWS clients for SQS and KMS, made with botocore directly from one session per container.

PynamoDB already loads botocore; boto3 on top of it would only add its resource layer, which this
package does not use, to the first request that sends or decrypts. Clients pick up the same
environment as boto3's would (region, credentials, `AWS_ENDPOINT_URL_<SERVICE>`).

`SERVICES` is every AWS service the functions call. The built layer ships botocore's data for these
alone, without documentation (devtools/lambda_build.py reads this tuple): 28 MB less to unpack, and
a first client that reads 40 KB of models instead of 1.4 MB (docs/operations.md, "Cold start").
`client` refuses any other service, so calling a new one fails every test until it is added here.
"""

import functools
from typing import Any

import botocore.session
from botocore.config import Config

from pixel_core.config import settings

# A literal: lambda_build reads it without importing botocore. PynamoDB makes the DynamoDB client.
SERVICES = ("dynamodb", "sqs", "kms")
# Short timeouts: a request should fail fast rather than hold its caller.
FAIL_FAST = Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 3, "mode": "standard"})


@functools.cache
def session() -> botocore.session.Session:
    # PynamoDB's own session: one loader, hence service models and endpoint data read once, for
    # the DynamoDB client and these alike (a second session would read them all again, ~50 ms).
    from pixel_core.models import TableItem  # noqa: PLC0415  # models need config only; no cycle

    connection_session: botocore.session.Session = TableItem._get_connection().connection.session
    return connection_session


def client(service_name: str, config: Config = FAIL_FAST) -> Any:
    if service_name not in SERVICES:
        raise ValueError(
            f"{service_name!r} is not in pixel_core.aws.SERVICES: the built layer has no model for it"
        )
    return session().create_client(service_name, region_name=settings.region, config=config)
