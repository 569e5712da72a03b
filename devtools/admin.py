"""pixel-admin: create tenants and app credentials (the secret is printed once, never stored).

    bin/pixel-admin tenant create acme --name "Acme Inc."
    bin/pixel-admin app create --tenant acme [--tenant other] [--name "Acme site"]
    bin/pixel-admin app rotate-secret APP_ID
    bin/pixel-admin app delete APP_ID

By default it talks to the local stack of `make dev`; `--aws --table NAME` targets a deployed
table with your usual AWS credentials.
"""

import argparse
import os
import sys
from collections.abc import Sequence

from pixel_core import auth
from pixel_core.models import AppItem, bind_models, find

LOCAL_ENDPOINT = "http://127.0.0.1:8000"
LOCAL_TABLE = "pixel-gateway-local"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pixel-admin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=os.environ.get("TABLE_NAME", LOCAL_TABLE))
    parser.add_argument("--endpoint-url", default=os.environ.get("DYNAMODB_ENDPOINT_URL", LOCAL_ENDPOINT))
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
    rotate = app.add_parser("rotate-secret", help="issue a new secret; the old one stops working")
    rotate.add_argument("app_id")
    delete = app.add_parser("delete", help="revoke an app")
    delete.add_argument("app_id")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    bind_models(table_name=args.table, host=None if args.aws else args.endpoint_url, region=args.region)
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
