"""What both agent benchmarks share: failures, logging, machine load, the command line."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class Failed(Exception):
    """A run failed or did something unexpected (not: a target was missed)."""


def logger(name: str):
    def log(msg):
        print(f"[{name}] {msg}", file=sys.stderr, flush=True)

    return log


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def in_git_tree(path: Path) -> bool:
    try:
        r = subprocess.run(["git", "-C", str(path), "rev-parse", "--is-inside-work-tree"],
                           capture_output=True, text=True)
    except OSError:
        return False
    return r.returncode == 0 and r.stdout.strip() == "true"


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--amelia", default=os.environ.get("AMELIA", str(REPO / ".venv/bin/amelia")),
                    help="amelia executable (default: $AMELIA, else <repo>/.venv/bin/amelia)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workdir", help="where the project goes (default: a new temporary "
                                      "directory, removed after); keep it outside any git tree")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    return ap


def run_main(args, bench, report, on_import_error: str = "") -> None:
    """bench(args) → figures; report(figures) prints them. Exit 1 only when a run failed."""
    if not os.access(args.amelia, os.X_OK):
        sys.exit(f"no amelia executable at {args.amelia} (pass --amelia PATH or set AMELIA)")
    try:
        r = bench(args)
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except ImportError as e:
        if not on_import_error:
            raise
        sys.exit(f"{on_import_error} ({e})")
    report(r)
    if args.json:
        print(json.dumps(r, indent=2))
