"""`provider: claude-code`: the Claude Code CLI (`claude -p`) as a subprocess.

The CLI runs in `request.workdir` (else the project root `AMELIA_ROOT`, else the current
directory) with stdin closed. Edits are accepted without a prompt (`--permission-mode
acceptEdits`) only when that workdir is one of Amelia's worktrees (`.amelia/worktrees/…`,
where the agent step's sandbox puts it): never in the user's checkout, where the CLI's
default mode refuses edits in `-p` mode. It prints one JSON result:
`{"type": "result", "is_error": false, "result": "...", "usage": {...},
"total_cost_usd": 0.01, ...}`. The executable is `$CLAUDE_CODE_PATH`, else `claude` on
PATH. A call that outlives `timeout:` has its whole process group killed.

The CLI has no constrained decoding, so for `schema:` the prompt asks for JSON only and
the agent step validates (and repairs) the answer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass

from amelia.providers import Completion, ProviderBase, ProviderError, Request, Usage
from amelia.safetext import safe
from amelia.providers.local import turn  # imports nothing heavy

PATH_ENV = "CLAUDE_CODE_PATH"
# An argument longer than this goes through stdin instead (Linux caps one argv string
# at 128 KiB).
MAX_ARG_BYTES = 100_000
TAIL_CHARS = 2000
# Messages of failures that another attempt may get past.
TRANSIENT = re.compile(r"overloaded|rate.?limit|too many requests|\b(429|500|502|503|504|529)\b"
                       r"|timed? ?out|timeout|econnreset|econnrefused|socket hang up|network"
                       r"|connection (error|reset|refused)|temporarily", re.I)


@dataclass(frozen=True)
class ClaudeCodeCompletion(Completion):
    """A Completion plus what the CLI reports beyond it."""

    cost_usd: float | None = None  # the CLI's total_cost_usd
    session_id: str = ""
    num_turns: int = 0


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    """The end of what claude printed: secrets redacted before the cut (a cut key is not
    recognised), control and escape sequences shown, never passed on."""
    text = safe((text or "").strip())
    return text if len(text) <= limit else "…" + text[-limit:]


def schema_instruction(schema: dict) -> str:
    return ("Answer with JSON only: a single JSON value, with no prose before or after it and "
            "no code fences, that is valid against this JSON schema:\n"
            + json.dumps(schema, indent=2, sort_keys=True))


def build_prompt(request: Request) -> str:
    """Shared context, earlier turns and the prompt, flattened into one message (the CLI
    takes a single prompt), plus the JSON instruction for schema requests."""
    parts = []
    if request.shared_context:
        parts.append(request.shared_context)
    if request.history:
        turns = "\n\n".join(f"[{t['role']}]\n{t['content']}"
                              for t in map(turn, request.history))
        parts.append(f"Earlier in this conversation:\n\n{turns}\n\n[user]")
    parts.append(request.prompt)
    if request.json_schema is not None:
        parts.append(schema_instruction(request.json_schema))
    return "\n\n".join(p for p in parts if p)


_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```\s*$", re.S)


def strip_fence(text: str) -> str:
    m = _FENCE.match(text)
    return m.group(1) if m else text


def parse_result(stdout: str) -> dict | None:
    """The CLI's JSON result: the whole output, else its last line that is one."""
    text = (stdout or "").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return value
        if isinstance(value, list):  # stream-json style output collected in a list
            results = [v for v in value if isinstance(v, dict) and v.get("type") == "result"]
            return results[-1] if results else None
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and ("result" in value or value.get("type") == "result"):
                return value
    return None


WORKTREES = (".amelia", "worktrees")  # targets.WORKTREES, as path components
SCRATCH = ".scratch"  # git.worktrees.SCRATCH


def is_amelia_worktree(path: str | None) -> bool:
    """Whether path is in one of Amelia's linked worktrees: under `.amelia/worktrees/NAME`
    (or `.scratch/NAME`), whose top has a `.git` file (a checkout has a `.git` folder)."""
    if not path:
        return False
    parts = os.path.realpath(path).split(os.sep)
    for i in range(len(parts) - 2):
        if tuple(parts[i:i + 2]) != WORKTREES:
            continue
        depth = i + 4 if parts[i + 2] == SCRATCH else i + 3
        if len(parts) >= depth and parts[depth - 1] not in ("", ".", ".."):
            marker = os.path.join(os.sep.join(parts[:depth]), ".git")
            if os.path.isfile(marker) and not os.path.islink(marker):
                return True
    return False


class Provider(ProviderBase):
    name = "claude-code"

    def executable(self) -> str:
        configured = self.env.get(PATH_ENV)
        if configured:
            path = os.path.expanduser(configured)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
            found = shutil.which(path, path=self.env.get("PATH", os.environ.get("PATH")))
            if found:
                return found
            raise ProviderError(f"{PATH_ENV}={configured} is not an executable file; point "
                                f"{PATH_ENV} at the Claude Code CLI (`claude`)", retryable=False)
        found = shutil.which("claude", path=self.env.get("PATH", os.environ.get("PATH")))
        if not found:
            raise ProviderError(f"the Claude Code CLI (`claude`) is not on PATH; install it, or "
                                f"set {PATH_ENV} to its path", retryable=False)
        return found

    def workdir(self, request: Request | None = None) -> str:
        """Where the CLI runs: `request.workdir`, else the project root (AMELIA_ROOT), else
        the cwd. Only the first may be a worktree where edits are accepted."""
        return (getattr(request, "workdir", None) or self.env.get("AMELIA_ROOT")
                or os.getcwd())

    def command(self, request: Request) -> tuple[list[str], str | None]:
        """argv, and the text to send on stdin (None: stdin is closed)."""
        prompt = build_prompt(request)
        args = [self.executable(), "-p"]
        stdin_text = None
        if len(prompt.encode()) > MAX_ARG_BYTES:
            stdin_text = prompt  # `claude -p` reads the prompt from stdin
        else:
            args.append(prompt)
        args += ["--output-format", "json"]
        # A coding step edits files in its worktree: edits are accepted without a prompt
        # (nobody is there to answer one) there only; other tools keep Claude Code's own
        # permission rules. Anywhere else (the user's checkout) edits stay refused.
        if is_amelia_worktree(getattr(request, "workdir", None)):
            args += ["--permission-mode", "acceptEdits"]
        if request.system:
            args += ["--append-system-prompt", request.system]
        if self.config.model:
            args += ["--model", self.config.model]
        return args, stdin_text

    def complete(self, request: Request, on_text=None) -> Completion:
        args, stdin_text = self.command(request)
        env = {str(k): str(v) for k, v in self.env.items()} if self.env else None
        timeout = self.config.timeout
        host = getattr(request, "processes", None)  # the step's: stopped with it
        popen = dict(cwd=self.workdir(request), env=env, text=True, encoding="utf-8",
                     errors="replace", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL)
        try:
            if host is not None:
                proc = host.spawn(args, **popen)
            else:
                proc = subprocess.Popen(args, start_new_session=True, **popen)
        except FileNotFoundError as e:
            raise ProviderError(f"cannot run the Claude Code CLI {args[0]}: {e}; set "
                                f"{PATH_ENV} to its path", retryable=False) from None
        except PermissionError as e:
            raise ProviderError(f"cannot run the Claude Code CLI {args[0]}: {e} (check "
                                f"{PATH_ENV})", retryable=False) from None
        try:
            stdout, stderr = proc.communicate(stdin_text, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ProviderError(f"claude timed out after {timeout:g}s", retryable=True) from None
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            _kill_group(proc, only_leftovers=True)
            if host is not None:
                host.release(proc)

        result = parse_result(stdout)
        if proc.returncode != 0:
            detail = tail(stderr) or (tail(str(result.get("result", ""))) if result else "") \
                or tail(stdout)
            message = f"claude exited with status {proc.returncode}"
            if detail:
                message += f": {detail}"
            retryable = not _is_permanent(detail)
            raise ProviderError(message, retryable=retryable)
        if result is None:
            raise ProviderError(f"claude printed no JSON result: {tail(stdout) or tail(stderr)}",
                                retryable=True)
        if result.get("is_error") or str(result.get("subtype", "success")).startswith("error"):
            detail = str(result.get("result") or result.get("subtype") or "unknown error")
            raise ProviderError(f"claude reported an error: {tail(detail)}",
                                retryable=bool(TRANSIENT.search(detail)))
        text = result.get("result")
        if not isinstance(text, str):
            raise ProviderError("claude's JSON result has no `result` text", retryable=True)
        if request.json_schema is not None:
            text = strip_fence(text)
        if on_text and text:
            on_text(text)
        raw_usage = result.get("usage") or {}
        usage = Usage(input_tokens=_int(raw_usage.get("input_tokens")),
                      output_tokens=_int(raw_usage.get("output_tokens")),
                      cached_tokens=_int(raw_usage.get("cache_read_input_tokens")),
                      cache_write_tokens=_int(raw_usage.get("cache_creation_input_tokens")))
        cost = result.get("total_cost_usd")
        model_usage = result.get("modelUsage")
        model = next(iter(model_usage), "") if isinstance(model_usage, dict) else ""
        return ClaudeCodeCompletion(
            text=text, usage=usage, model=model or self.config.model or "claude-code",
            stop_reason=str(result.get("stop_reason") or result.get("subtype") or ""),
            cost_usd=float(cost) if isinstance(cost, (int, float)) else None,
            session_id=str(result.get("session_id") or ""),
            num_turns=_int(result.get("num_turns")))


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _is_permanent(detail: str) -> bool:
    """Failures no retry fixes: not logged in, a bad key, a bad flag."""
    if TRANSIENT.search(detail):
        return False
    return bool(re.search(r"invalid api key|authenticat|not logged in|/login|unknown option"
                          r"|error: option|credit balance|permission denied", detail, re.I))


def _kill_group(proc: subprocess.Popen, only_leftovers: bool = False) -> None:
    """Kill the CLI and everything it started (its own session/process group)."""
    if only_leftovers and proc.returncode is None:
        return  # still ours to wait for: only reached via an exception already handled
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    if not only_leftovers:
        try:
            proc.communicate(timeout=5)
        except Exception:  # noqa: BLE001
            pass
