"""pixel-admin: create tenants and app credentials (the secret is printed once, never stored).

    bin/pixel-admin tenant create acme --name "Acme Inc."
    bin/pixel-admin app create --tenant acme [--tenant other] [--name "Acme site"]
    bin/pixel-admin app rotate-secret APP_ID
    bin/pixel-admin app delete APP_ID

By default it talks to the local stack of `make dev` (the same DYNAMODB_LOCAL_PORT, fake
credentials, no AWS set-up needed); `--aws --table NAME` targets a deployed table with your usual
AWS credentials. Errors are one line on stderr.
"""

import argparse
import os
import sys
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from pynamodb.exceptions import PynamoDBException

from devtools.dev import TABLE_NAME, DevSettings, use_fake_credentials
from pixel_core import auth
from pixel_core.config import settings
from pixel_core.models import AppItem, bind_models, find


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pixel-admin", description=__doc__.split("\n\n")[0])
    local_endpoint = f"http://127.0.0.1:{DevSettings.from_environment().dynamodb_port}"
    parser.add_argument("--table", default=os.environ.get("TABLE_NAME", TABLE_NAME))
    parser.add_argument("--endpoint-url", default=os.environ.get("DYNAMODB_ENDPOINT_URL", local_endpoint))
    parser.add_argument("--aws", action="store_true", help="use AWS's DynamoDB endpoint, not the local one")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    areas = parser.add_subparsers(dest="area", required=True)

    tenant = areas.add_parser("tenant").add_subparsers(dest="command", required=True)
    create_tenant = tenant.add_parser("create", help="create (or rename) a tenant")
    create_tenant.add_argument("tenant_id")
    create_tenant.add_argument("--name")

    app = areas.add_parser("app").add_subparsers(dest="command", required=True)
    create_app = app.add_parser("create", help="create an app bound to one or more tenants")
    create_app.add_argument("--tenant", dest="tenants", action="append", required=True)
    create_app.add_argument("--name")
    rotate = app.add_parser(
        "rotate-secret",
        help=f"issue a new secret; the old one stops working within {settings.auth_cache_seconds:g} s "
        "(AUTH_CACHE_SECONDS: running functions trust what they verified that long)",
    )
    rotate.add_argument("app_id")
    delete = app.add_parser("delete", help="revoke an app")
    delete.add_argument("app_id")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.aws:
        use_fake_credentials()  # DynamoDB Local takes any; never the user's real ones
    bind_models(table_name=args.table, host=None if args.aws else args.endpoint_url, region=args.region)
    try:
        return run(args)
    except (PynamoDBException, ClientError, BotoCoreError) as error:
        print(f"pixel-admin: {explained(error, args)}", file=sys.stderr)
    return 2


def explained(error: Exception, args: argparse.Namespace) -> str:
    """One line for what went wrong; PynamoDB wraps botocore's errors (`cause`)."""
    cause: BaseException = error
    while isinstance(cause, PynamoDBException) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, EndpointConnectionError):
        where = "AWS" if args.aws else f"{args.endpoint_url} (is `make dev` running?)"
        return f"cannot reach DynamoDB at {where}"
    if isinstance(cause, NoCredentialsError):
        return "no AWS credentials (configure them, or leave out --aws to use make dev)"
    return f"DynamoDB refused the request: {cause}"


def run(args: argparse.Namespace) -> int:
    try:
        if args.area == "tenant":
            tenant = auth.create_tenant(args.tenant_id, args.name)
            print(f"tenant {tenant.tenant_id} saved")
        elif args.command == "create":
            print_credentials(auth.create_app(set(args.tenants), name=args.name))
        elif args.command == "rotate-secret":
            existing = find(AppItem, AppItem.key(args.app_id))
            if existing is None:
                print(f"no app {args.app_id}", file=sys.stderr)
                return 1
            print_credentials(
                auth.create_app(set(existing.tenant_ids), name=existing.name, app_id=args.app_id)
            )
            print(
                f"The old secret stops working within {settings.auth_cache_seconds:g} s (AUTH_CACHE_SECONDS)."
            )
        elif not auth.delete_app(args.app_id):
            print(f"no app {args.app_id}", file=sys.stderr)
            return 1
        else:
            print(f"app {args.app_id} deleted")
    except ValueError as error:
        print(f"pixel-admin: {error}", file=sys.stderr)
        return 2
    return 0


def print_credentials(credentials: auth.NewCredentials) -> None:
    print(f"appId:     {credentials.app_id}")
    print(f"appSecret: {credentials.app_secret}")
    print(f"tenants:   {', '.join(sorted(credentials.tenant_ids))}")
    print("The secret is shown this once; only its SHA-256 digest is stored.")


if __name__ == "__main__":
    sys.exit(main())
