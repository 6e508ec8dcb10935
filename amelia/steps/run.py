"""`run:` steps: a command, as in Make, run by bash from the project root.

Template values reach the command as environment variables only; the command text
holds `${AMELIA_…}` references in their place, so no value is ever parsed as shell.
"""

from __future__ import annotations

import os
import signal
import subprocess

from . import StepError, StepResult

SHELL = ("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c")
TAIL_LINES = 20


def execute(step, ctx) -> StepResult:
    env = dict(os.environ)
    env.update(ctx.template_values(step))
    env["AMELIA_STEP"] = step.id
    env["AMELIA_RUN_ID"] = ctx.run_id
    with open(ctx.log_path(step), "wb") as log:
        try:
            proc = subprocess.Popen(
                SHELL + (step.command,), cwd=ctx.root, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        except FileNotFoundError:
            raise StepError("bash was not found on PATH", hint="install bash") from None
        ctx.track(proc)
        try:
            code = proc.wait(timeout=step.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise StepError(f"timed out after {step.timeout:g}s", tail=_tail(ctx.log_path(step))) from None
        finally:
            ctx.untrack(proc)
    if code != 0:
        what = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise StepError(f"command {what}", exit_code=code, tail=_tail(ctx.log_path(step)))
    return StepResult()


def _kill(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-TAIL_LINES:])
