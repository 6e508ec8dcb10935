"""`run:` steps: a command, as in Make, run by a shell (bash unless `shell:` says) from
the project root.

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
# `shell:` by name, as GitHub Actions names them; any other text is split as a command
# line and given the command after `-c`.
NAMED_SHELLS = {"bash": SHELL, "sh": ("sh", "-e", "-c")}
TAIL_LINES = 20
MAX_ARG_STRLEN = 128 * 1024  # Linux's limit on one argument (the command given to -c)


@dataclass(frozen=True)
class RunConfig:
    command: str  # as the shell runs it: each ${{ ref }} replaced by ${AMELIA_…}, its variable
    shell: tuple = ()  # the shell's argv before the command; () is SHELL, the default

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        return cls(d["command"], tuple(d.get("shell") or ()))

    @property
    def argv(self) -> tuple:
        return (self.shell or SHELL) + (self.command,)


CONFIG = RunConfig
KEY_REPLACES = ("shell",)  # the shell as resolved (pipeline default included), not as written


def key_material(config: RunConfig) -> dict:
    # Nothing for the default shell: keys made before `shell:` existed stay the same.
    return {"shell": list(config.shell)} if config.shell else {}


def resolve(ctx, sid: str, data: dict) -> Resolved:
    text = data["run"]
    command = templates.substitute(text, lambda ref: "${" + templates.env_name(ref) + "}")
    if "shell" in data:
        shell = parse_shell(data["shell"], ctx.err, ctx.base + ("shell",))
    elif isinstance(ctx.doc.data, dict) and "shell" in ctx.doc.data:
        shell = parse_shell(ctx.doc.data["shell"], ctx.err, ("shell",))
    else:
        shell = ()
    return Resolved(RunConfig(command, shell), texts=((text, ctx.base + ("run",), None),))


def parse_shell(text: str, err, path: tuple) -> tuple:
    """`sh`, `bash`, or a command line such as "bash -eo pipefail"; () for the default."""
    import shlex

    argv = NAMED_SHELLS.get(text.strip())
    if argv is None:
        try:
            words = tuple(shlex.split(text))
        except ValueError as e:
            err(f"shell '{text}' cannot be read as a command line: {e}", path,
                "write it as a command line, e.g. `bash -eo pipefail`, or use `sh` or `bash`")
            return ()
        if not words:
            err("shell is empty", path, "use `sh`, `bash`, or a command line such as `bash -eo pipefail`")
            return ()
        argv = words + ("-c",)
    return () if argv == SHELL else argv


def execute(step, ctx, cancel) -> StepResult:
    import subprocess

    from ..processes import GRACE, StepCancelled, signal_group

    env = dict(os.environ)
    env.update(ctx.template_values(step))
    env["AMELIA_STEP"] = step.id
    env["AMELIA_RUN_ID"] = ctx.run_id
    log_path = ctx.log_path(step)
    if step.depfile:
        _remove_depfile(step, ctx)
    with open(log_path, "wb") as log:
        try:
            proc = ctx.processes.spawn(
                step.config.argv, cancel, cwd=workspace_of(step, ctx).cwd, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        except FileNotFoundError:
            shell = step.config.argv[0]
            raise StepError(f"the shell '{shell}' was not found on PATH",
                            hint=f"install {shell}, or name another with `shell:`") from None
        except OSError as e:
            if e.errno != errno.E2BIG:
                raise
            size = len(step.config.command.encode("utf-8", "replace"))
            if size >= MAX_ARG_STRLEN:
                raise StepError(f"the command is {size // 1024} KiB, more than the "
                                f"{MAX_ARG_STRLEN // 1024} KiB the OS passes to a shell",
                                hint="put the commands in a script file and run that") from None
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
    from ..safetext import sanitize_file

    sanitize_file(log_path)  # a user may `cat` it: no escape sequence or key left raw
    if cancel.cancelled:
        raise StepCancelled(cancel.reason)
    if code is None:
        raise StepError(f"timed out after {step.timeout:g}s", tail=_tail(log_path))
    if code != 0:
        what = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise StepError(f"command {what}", exit_code=code, tail=_tail(log_path))
    return StepResult(discovered=read_depfile(step, ctx.root) if step.depfile else ())


def _remove_depfile(step, ctx) -> None:
    """A depfile left by an earlier run must not pass for this run's."""
    from ..confine import Escape, check_parent

    full = os.path.join(ctx.root, step.depfile)
    try:
        check_parent(ctx.root, full)
        os.unlink(full)
    except FileNotFoundError:
        pass
    except Escape as e:
        raise StepError(f"depfile {step.depfile}: {e}", hint=e.hint) from None
    except OSError as e:
        raise StepError(f"cannot remove the old depfile {step.depfile}: {e.strerror}") from None


def read_depfile(step, root: str) -> tuple:
    """The project files the step's depfile names, relative to the root, sorted."""
    from .. import depfile, paths
    from ..confine import Escape, check_parent

    full = os.path.join(root, step.depfile)
    try:
        check_parent(root, full)
        with open(full, encoding="utf-8", errors="surrogateescape") as f:
            deps = depfile.parse(f.read())
    except FileNotFoundError:
        raise StepError(f"the command did not write its depfile {step.depfile}",
                        hint="write it (e.g. cc -MMD -MF " + step.depfile + "), or remove `depfile:`") from None
    except depfile.DepfileError as e:
        raise StepError(f"depfile {step.depfile} is malformed: {e}",
                        hint="it must be in Make's format: `target: dep dep \\`") from None
    except Escape as e:
        raise StepError(f"depfile {step.depfile}: {e}", hint=e.hint) from None
    except OSError as e:
        raise StepError(f"cannot read depfile {step.depfile}: {e.strerror}") from None
    out = set()
    real_root = os.path.realpath(root)
    for dep in deps:
        rel = os.path.relpath(dep, real_root) if os.path.isabs(dep) else paths.normalize(dep)
        problem = paths.confinement_problem(rel, root) if rel else "names the project root"
        if problem or rel.startswith("../") or rel == "..":
            raise StepError(f"depfile {step.depfile} lists {dep}, which is outside the project",
                            hint="list project files only: gcc's -MMD leaves out system headers, -MD does not")
        if not (rel.split("/")[0] in paths.SKIP_DIRS):
            out.add(rel)
    return tuple(sorted(out))


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-TAIL_LINES:])
