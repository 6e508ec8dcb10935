"""What benchmarks/schedule and benchmarks/throughput share: which amelia to run, a
scratch directory, timing a command, a table. Standard library only.

Which amelia: `--amelia-path PATH` (repeatable) names an amelia source tree, put first
on PYTHONPATH of the venv's Python (`python -m amelia`); `installed` is the amelia
installed in that venv (the work tree, editable). Default: `installed` ("current"),
plus BASE ("base") when that directory exists; make it with
`git worktree add /tmp/amelia-base 4906c14` (the commit before the engine rewrite).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE = Path("/tmp/amelia-base")
PYTHON = REPO / ".venv/bin/python"


class Failed(Exception):
    """A run exited non-zero or did not write what it should."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Amelia:
    label: str
    python: str
    path: str | None  # a source tree first on PYTHONPATH; None: the installed amelia

    def argv(self, *args: str) -> list:
        return [self.python, "-m", "amelia", *args]

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if self.path:
            env["PYTHONPATH"] = self.path
        return env


def add_options(ap) -> None:
    ap.add_argument("--amelia-path", action="append", metavar="PATH",
                    help="an amelia source tree to run (first on PYTHONPATH), or 'installed'; "
                         f"repeatable (default: installed, plus {BASE} if it exists)")
    ap.add_argument("--python", default=str(PYTHON), help="the venv's Python (default: %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")


def amelias(args) -> list:
    """The amelias to compare; each checked to import from where it should."""
    paths = args.amelia_path or ["installed"] + ([str(BASE)] if BASE.is_dir() else [])
    out = []
    for p in paths:
        if p == "installed":
            a = Amelia("current", args.python, None)
        else:
            path = Path(p).resolve()
            a = Amelia("base" if path == BASE.resolve() else path.name, args.python, str(path))
        # from "/", as the runs are (from the repo root, "" on sys.path beats PYTHONPATH)
        r = subprocess.run([a.python, "-c", "import amelia; print(amelia.__file__)"],
                           env=a.env(), capture_output=True, text=True, cwd="/")
        if r.returncode:
            raise Failed(f"{a.label}: cannot import amelia with {a.python}: {r.stderr.strip()[-500:]}")
        where = r.stdout.strip()
        if a.path and not where.startswith(a.path + os.sep):
            raise Failed(f"{a.label}: amelia imports from {where}, not from {a.path}")
        log(f"{a.label}: {where}")
        out.append(a)
    return out


@contextlib.contextmanager
def scratch(prefix: str, keep: bool = False):
    """A new directory under the system temp dir, removed after unless keep."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    r = subprocess.run(["git", "-C", str(d), "rev-parse", "--is-inside-work-tree"],
                       capture_output=True, text=True)
    if r.returncode == 0:
        shutil.rmtree(d)
        raise Failed(f"{d} is inside a git work tree (amelia would take it as its root); set TMPDIR")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that finally runs
    try:
        yield d
    finally:
        if keep:
            log(f"kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


def timed(argv: list, cwd, env=None, timeout: float = 300) -> float:
    """Wall seconds of argv run in cwd, output discarded. Failed if it exits non-zero or
    is still running after timeout seconds (then its process group is killed)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            code = p.wait(timeout=timeout)
        except BaseException as e:  # the timeout, or ^C / SIGTERM of this script
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            if isinstance(e, subprocess.TimeoutExpired):
                raise Failed(f"`{' '.join(map(str, argv))}` still running after {timeout:g} s "
                             f"in {cwd}: killed") from None
            raise
        wall = time.perf_counter() - t0
        if code:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-1500:]
            raise Failed(f"`{' '.join(map(str, argv))}` exited {code} in {cwd}\n{tail}")
    return wall


def table(cols: list, rows: list) -> None:
    """Print rows (lists of str) under cols, first column left-aligned."""
    widths = [max([len(str(c))] + [len(str(r[i])) for r in rows]) for i, c in enumerate(cols)]
    for row in [cols, *rows]:
        print("  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)
                        for i, (v, w) in enumerate(zip(row, widths))))
