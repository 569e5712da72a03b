"""The README's examples (and docs/api.md's) work as written, in order, against `make dev`'s stack.

Each page's shell blocks (```bash / ```sh) are split into steps: a command (with its `\\`
continuation lines) and, under it, the answer the page shows in `# {"data": ...}` (or Meta-shaped `# {"events_received": ...}`) comment lines
(continued on `#   ` lines). Every step runs in bash with the variables the page assigned before it,
and PORT set to the stack's port (the pages use `${PORT:-3000}`, as `make dev` does). An answer
shown is compared as JSON: `...` as an object member allows members the page leaves out, and a
string ending in `...` matches any string starting with what precedes it. A step with no answer
shown must still answer without GraphQL errors. Reads (GraphQL queries) are retried for a while,
as counts arrive through the queue a few seconds after the events.
"""

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.dev_stack import REPO_ROOT, DevStack

SHELL_BLOCK = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.MULTILINE | re.DOTALL)
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
# An answer shown under a command: GraphQL's, or the server-events endpoint's (Meta's shape).
ANSWER = re.compile(r'# \{"(?:data|events_received|error)"')
ELIDED_MEMBER = re.compile(r"(?<=[{,])\s*\.\.\.\s*(?=[},])")
READ_SECONDS = 30
DEV_APP = {"DEV_APP_ID": "dev-app", "DEV_APP_SECRET": "dev-secret-change-me"}


@dataclass
class Step:
    command: str
    shown: str = ""

    @property
    def expected(self) -> Any:
        text = ELIDED_MEMBER.sub('"...":"..."', self.shown)
        value, _end = json.JSONDecoder().raw_decode(text)  # what follows the JSON is a remark
        return value


def steps_of(block: str) -> list[Step]:
    steps: list[Step] = []
    lines = block.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if ANSWER.match(line):
            assert steps, f"an answer with no command above it: {line}"
            shown = [line[1:].strip()]
            while index < len(lines) and lines[index].startswith("#  "):
                shown.append(lines[index][1:].strip())
                index += 1
            steps[-1].shown = "".join(shown)
        elif line.strip() and not line.startswith("#"):
            command = [line]
            while command[-1].endswith("\\") and index < len(lines):
                command.append(lines[index])
                index += 1
            steps.append(Step("\n".join(command)))
    return steps


def page_blocks(path: Path) -> list[str]:
    return SHELL_BLOCK.findall(path.read_text(encoding="utf-8"))


def matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        open_ended = expected.get("...") == "..."
        keys = {key for key in expected if key != "..."} if open_ended else set(expected)
        if not open_ended and keys != set(actual):
            return False
        return all(key in actual and matches(expected[key], actual[key]) for key in keys)
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, str) and expected.endswith("..."):
        return isinstance(actual, str) and actual.startswith(expected[:-3])
    return bool(expected == actual) and type(expected) is type(actual)


def is_read(step: Step, assignments: dict[str, str]) -> bool:
    """A step that sends a GraphQL query (a read), named by a variable the page assigned."""
    return any(
        assignments.get(name, "").lstrip("'\"").startswith("query")
        for name in re.findall(r"\$([A-Z_]+)", step.command)
    )


def run_page(path: Path, port: int) -> None:
    blocks = page_blocks(path)
    if path.name == "README.md":
        # The first block is `make dev` and `make test` themselves: the DevStack stands in for make dev.
        assert blocks[0].split()[:2] == ["make", "dev"], blocks[0]
        blocks = blocks[1:]
    steps = [step for block in blocks for step in steps_of(block)]
    assert any(step.shown for step in steps), f"{path.name} shows no answers"
    env = {**os.environ, "PORT": str(port)}
    assignments: dict[str, str] = {}
    prelude: list[str] = []
    for number, step in enumerate(steps, 1):
        if match := ASSIGNMENT.match(step.command):
            assignments[match.group(1)] = match.group(2)
            prelude.append(step.command)
            continue
        script = "set -euo pipefail\n" + "\n".join([*prelude, step.command])
        deadline = time.monotonic() + (READ_SECONDS if is_read(step, assignments) else 0)
        while True:
            result = subprocess.run(
                ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60, check=False
            )
            where = f"{path.name}, step {number}:\n{step.command}\nanswered: {result.stdout}{result.stderr}"
            assert result.returncode == 0, where
            answer = json.loads(result.stdout)
            ok = matches(step.expected, answer) if step.shown else "errors" not in answer
            if ok or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        assert ok, f"{where}\nthe page shows: {step.shown or '(an answer without errors)'}"


def test_answers_shown_are_compared_as_the_module_says() -> None:
    step = Step("curl", '{"a":{"b":1,...},"c":"Event dropped: ...","d":[1]}  (a remark)')
    assert matches(step.expected, {"a": {"b": 1, "x": 2}, "c": "Event dropped: domain", "d": [1]})
    assert not matches(step.expected, {"a": {"b": 2}, "c": "Event dropped: x", "d": [1]})
    assert not matches(step.expected, {"a": {"b": 1}, "c": "Success", "d": [1]})
    assert not matches({"n": 1.0}, {"n": 1})
    assert not matches({"a": 1}, {"a": 1, "b": 2})


def test_the_steps_of_a_block_are_its_commands_and_the_answers_under_them() -> None:
    block = 'A=1\n# a remark\ncurl x \\\n  -d y\n# {"data":{"x":\n#   1}}\n\ncurl z\n'
    assert steps_of(block) == [Step("A=1"), Step("curl x \\\n  -d y", '{"data":{"x":1}}'), Step("curl z")]


@pytest.mark.dynamodb_local
@pytest.mark.parametrize("page", ["README.md", "docs/api.md"])
def test_every_example_of_the_page_works_as_written_in_order(tmp_path: Path, page: str) -> None:
    # Given make dev's stack, fresh, with make dev's own development app
    stack = DevStack(tmp_path / "dynamodb")
    stack.env.update(DEV_APP)
    stack.start()
    try:
        # When the page's examples run in order, Then each answers what the page shows
        run_page(REPO_ROOT / page, stack.port)
    finally:
        stack.stop()
