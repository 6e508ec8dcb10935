"""`run:` steps: a command, as in Make, run by bash from the project root.

Template values reach the command as environment variables only; the command text
holds `${AMELIA_…}` references in their place, so no value is ever parsed as shell.
The command as written is part of the step's definition (its cache key); the kind adds
no key material of its own.
"""

from __future__ import annotations

import errno
import os
import signal
from dataclasses import dataclass

from .. import templates
from . import Resolved, StepError, StepResult, workspace_of

SHELL = ("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c")
TAIL_LINES = 20


@dataclass(frozen=True)
class RunConfig:
    command: str  # as bash runs it: each ${{ ref }} replaced by ${AMELIA_…}, its variable


CONFIG = RunConfig


def resolve(ctx, sid: str, data: dict) -> Resolved:
    text = data["run"]
    command = templates.substitute(text, lambda ref: "${" + templates.env_name(ref) + "}")
    return Resolved(RunConfig(command), texts=((text, ctx.base + ("run",), None),))


def execute(step, ctx, cancel) -> StepResult:
    import subprocess

    from ..processes import GRACE, StepCancelled, signal_group

    env = dict(os.environ)
    env.update(ctx.template_values(step))
    env["AMELIA_STEP"] = step.id
    env["AMELIA_RUN_ID"] = ctx.run_id
    log_path = ctx.log_path(step)
    with open(log_path, "wb") as log:
        try:
            proc = ctx.processes.spawn(
                SHELL + (step.config.command,), cancel, cwd=workspace_of(step, ctx).cwd, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        except FileNotFoundError:
            raise StepError("bash was not found on PATH", hint="install bash") from None
        except OSError as e:
            if e.errno != errno.E2BIG:
                raise
            raise StepError("the step's environment is too large to start a command",
                            hint="pass large values through files: read the upstream output "
                                 "file in the command instead of ${{ steps.X.output }}") from None
        try:
            code = proc.wait(timeout=step.timeout)
        except subprocess.TimeoutExpired:
            ctx.processes.stop(proc.pid)
            code = None
            try:
                proc.wait(timeout=GRACE)
            except subprocess.TimeoutExpired:  # it ignores SIGTERM
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        finally:
            ctx.processes.release(proc)
    if cancel.cancelled:
        raise StepCancelled(cancel.reason)
    if code is None:
        raise StepError(f"timed out after {step.timeout:g}s", tail=_tail(log_path))
    if code != 0:
        what = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise StepError(f"command {what}", exit_code=code, tail=_tail(log_path))
    return StepResult()


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-TAIL_LINES:])
