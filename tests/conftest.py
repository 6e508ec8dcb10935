"""Shared fixtures: every test gets its own HOME and a temporary project."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "cases"
UPDATE_GOLDEN = os.environ.get("AMELIA_UPDATE_GOLDEN") == "1"


@pytest.fixture(autouse=True)
def _no_secrets_between_tests():
    """The secrets registry lives as long as the process: one test's fake key must not
    redact another test's text."""
    yield
    from amelia.safetext import forget_secrets

    forget_secrets()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("AMELIA_UPDATE_GOLDEN", raising=False) if not UPDATE_GOLDEN else None


class Project:
    """A temporary project directory with helpers to write files and run amelia."""

    def __init__(self, root: Path):
        self.root = root

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
        return p

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def link_outside(self, rel: str, outside: Path, files: dict | None = None) -> Path:
        """Replace the project's `rel` (a directory, if there) by a symlink to `outside`, a
        folder outside the project holding `files`: what a careless user or an attacker does."""
        import shutil

        outside.mkdir(parents=True, exist_ok=True)
        for name, text in (files or {}).items():
            (outside / name).write_text(text)
        shutil.rmtree(self.root / rel, ignore_errors=True)
        os.symlink(outside, self.root / rel)
        return outside

    def pipeline(self, text: str, name: str = "amelia.yaml") -> Path:
        return self.write(name, text)

    def run(self, *args, env=None, timeout=120, check=None) -> subprocess.CompletedProcess:
        """`amelia ARGS` in the project, as a user would run it."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.run([sys.executable, "-m", "amelia", *args], cwd=self.root, env=full_env,
                              capture_output=True, text=True, timeout=timeout)
        if check is not None:
            assert proc.returncode == check, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc


@pytest.fixture
def project(tmp_path) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    return Project(root)


def assert_golden(actual: str, golden: Path) -> None:
    """Compare with a golden file; AMELIA_UPDATE_GOLDEN=1 rewrites it."""
    if UPDATE_GOLDEN or not golden.exists():
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
        if not UPDATE_GOLDEN:
            pytest.fail(f"golden file {golden} was missing; written now, check it and rerun")
    assert actual == golden.read_text()


def in_parallel(fn, n: int) -> float:
    """Call fn() from n threads at once; the seconds until all returned."""
    import threading
    import time

    threads = [threading.Thread(target=fn) for _ in range(n)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - start


@contextmanager
def run_context(root: Path, pipeline_yaml: str, run_id: str = "run-1"):
    """A RunContext on the pipeline `pipeline_yaml` written to root/amelia.yaml, with a real
    store; closed (and its processes killed) afterwards. For tests of the runner and of
    step kinds that call them directly, without `python -m amelia`."""
    from amelia import api
    from amelia.runner import RunContext
    from amelia.store import Store

    (root / "amelia.yaml").write_text(textwrap.dedent(pipeline_yaml))
    pipeline = api.validate(str(root / "amelia.yaml"))
    store = Store(str(root))
    ctx = RunContext(pipeline, store, run_id)
    try:
        yield ctx
    finally:
        ctx.processes.kill_all()  # a failed test leaves nothing running
        ctx.close()
        store.close()
