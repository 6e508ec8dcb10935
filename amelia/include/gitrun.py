"""git for remote recipes, with the rules of amelia.git.worktrees._git.

No shell; no hooks; no prompt (GIT_TERMINAL_PROMPT=0: a repository that needs a password
and has no credential helper fails instead of waiting); only the file, https and http
transports (`protocol.allow=never`, and GIT_ALLOW_PROTOCOL set, since a user's value of it
would override the config); the variables that point git at a repository removed, so a
run from inside a user's hook never touches their repository. User-supplied text goes
after `--end-of-options`. subprocess, not GitPython: these calls need bytes in and out
(blobs) and a timeout, and the environment is built whole instead of `env -u`.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from ..git.worktrees import LOCAL_ENV
from ..safetext import escape_line
from .errors import RecipeError

TIMEOUT = 600  # seconds; a fetch over a slow network, not a hung one forever
ALLOWED = ("file", "https", "http")
CONFIG = (
    "core.hooksPath=/dev/null", "core.fsmonitor=false", "protocol.allow=never",
    *(f"protocol.{p}.allow=always" for p in ALLOWED),
    "fetch.recurseSubmodules=false", "submodule.recurse=false",
    "gc.auto=0", "maintenance.auto=false",  # no background gc left running after a fetch
)


def environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_ENV}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_ALLOW_PROTOCOL"] = ":".join(ALLOWED)
    return env


def git(cwd: str, *args: str, input: bytes | None = None, check: bool = True) -> tuple:
    """Run `git ARGS` in cwd: (status, stdout bytes, stderr text). A failure raises
    RecipeError (with git's first fatal line) when check."""
    exe = shutil.which("git")
    if not exe:
        raise RecipeError("git is not installed (or not on PATH)",
                          "install git: recipes from git repositories are fetched with it")
    command = [exe]
    for c in CONFIG:
        command += ["-c", c]
    command += list(args)
    try:
        proc = subprocess.run(command, cwd=cwd, env=environment(), input=input,
                              stdin=subprocess.DEVNULL if input is None else None,
                              capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise RecipeError(f"git {args[0]} took longer than {TIMEOUT} s",
                          "check the network and the repository's URL") from e
    except OSError as e:
        raise RecipeError(f"cannot run git: {e.strerror or e}", "check the git installation") from e
    err = proc.stderr.decode("utf-8", "replace")
    if check and proc.returncode != 0:
        raise RecipeError(f"git {args[0]} failed: {reason(err) or f'exit {proc.returncode}'}")
    return proc.returncode, proc.stdout, err


def reason(stderr: str) -> str:
    """git's first `fatal:`/`error:` line (the later ones are generic advice), made safe to
    show (git quotes the remote's own text)."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
    line = (fatal or lines or [""])[0]
    for prefix in ("fatal: ", "error: "):
        if line.startswith(prefix):
            line = line[len(prefix):]
    return escape_line(line)[:500]
