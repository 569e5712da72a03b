"""Loading a function of the template the way Lambda does: its handler from its CodeUri folder."""

import functools
import importlib.util
import sys
import threading
from typing import Any, cast

from devtools.iam_recorder import acting_as, register_code_folder
from devtools.sqs_event_source import Handler
from devtools.template import REPO_ROOT, load_template, resources_of_type


def load_handler(code_uri: str, handler: str, *, module_alias: str) -> Handler:
    """`handler` is Lambda's `module.function`; the module is loaded under `module_alias`
    because every function names its entry module `app`.

    The AWS calls the module and the handler make are the template function's own for
    devtools.iam_recorder (what its role must grant)."""
    module_name, _, function_name = handler.rpartition(".")
    folder = REPO_ROOT / code_uri
    spec = importlib.util.spec_from_file_location(module_alias, folder / f"{module_name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {handler} from {folder}")
    function_id = template_function_id(code_uri, handler)
    module = importlib.util.module_from_spec(spec)
    if str(folder) not in sys.path:
        sys.path.append(str(folder))  # the function's own packages, as in /var/task
    with acting_as(function_id):
        spec.loader.exec_module(module)
    sys.modules[module_alias] = module
    entry = cast(Handler, getattr(module, function_name))
    register_code_folder(folder, function_id)

    @functools.wraps(entry)
    def invoke(event: dict[str, Any], context: Any) -> dict[str, Any] | None:
        with INVOCATION_LOCK, acting_as(function_id):
            return entry(event, context)

    return invoke


# Lambda runs one invocation at a time in a container; locally, every function shares one process
# (the API's request threads, the SQS pollers) and so one Powertools Logger and Metrics, whose
# per-invocation state is not thread-safe ("dictionary changed size during iteration" in the metrics
# flush under concurrent requests). So invocations take turns, as in a single container.
INVOCATION_LOCK = threading.RLock()


@functools.cache
def template_function_id(code_uri: str, handler: str) -> str:
    """The logical id of the template's function with this CodeUri and Handler."""
    for function_id, resource in resources_of_type(load_template(), "AWS::Serverless::Function").items():
        properties = resource.get("Properties", {})
        if (
            str(properties.get("CodeUri", "")).rstrip("/") == code_uri.rstrip("/")
            and properties.get("Handler") == handler
        ):
            return function_id
    return f"{code_uri}:{handler}"  # not a function of the template: recorded under its own name


def register_template_functions() -> None:
    """AWS calls made from a template function's CodeUri folder are that function's (also when a
    test runs its code without `load_handler`, e.g. the GraphQL schema through graphql_sync)."""
    for function_id, resource in resources_of_type(load_template(), "AWS::Serverless::Function").items():
        register_code_folder(REPO_ROOT / resource["Properties"]["CodeUri"], function_id)
