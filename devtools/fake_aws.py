"""Fake AWS credentials for tests and benchmarks: set before anything imports botocore, they make
sure no request could ever be signed for a real account, and a call nothing mocks fails loudly.
Standard library only, so it can run before any other import."""

import os

FAKE_AWS_ENVIRONMENT: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
# Settings of this machine that would point a client at a real account or a running local stack.
_MACHINE_SETTINGS = ("AWS_PROFILE", "DYNAMODB_ENDPOINT_URL")


def use_fake_aws() -> None:
    """Puts the fake credentials in this process's environment and drops the machine's own."""
    os.environ.update(FAKE_AWS_ENVIRONMENT)
    for name in _MACHINE_SETTINGS:
        os.environ.pop(name, None)
