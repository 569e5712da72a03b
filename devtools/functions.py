"""Loading a function of the template the way Lambda does: its handler from its CodeUri folder."""

import importlib.util
import sys
from typing import cast

from devtools.sqs_event_source import Handler
from devtools.template import REPO_ROOT


def load_handler(code_uri: str, handler: str, *, module_alias: str) -> Handler:
    """`handler` is Lambda's `module.function`; the module is loaded under `module_alias`
    because every function names its entry module `app`."""
    module_name, _, function_name = handler.rpartition(".")
    folder = REPO_ROOT / code_uri
    spec = importlib.util.spec_from_file_location(module_alias, folder / f"{module_name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {handler} from {folder}")
    module = importlib.util.module_from_spec(spec)
    if str(folder) not in sys.path:
        sys.path.append(str(folder))  # the function's own packages, as in /var/task
    spec.loader.exec_module(module)
    sys.modules[module_alias] = module
    return cast(Handler, getattr(module, function_name))
