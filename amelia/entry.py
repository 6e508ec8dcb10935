"""The console script. `run` and `plan` with plain flags skip click entirely.

A no-op run must cost less than click's import (DESIGN §3), so the common forms of
`run`/`plan` are parsed here; anything else (help, unknown flags) goes to cli.py,
which defines the same options for people and for --help.
"""

from __future__ import annotations

import os
import sys

# flag → (RunOptions field, takes a value, repeatable)
RUN_FLAGS = {
    "-p": ("params", True, True), "--param": ("params", True, True),
    "-j": ("jobs", True, False), "--jobs": ("jobs", True, False),
    "--force": ("force", True, True), "--only": ("only", True, True),
    "-m": ("models", True, True), "--model": ("models", True, True),
    "--force-all": ("force_all", False, False), "--dry-run": ("dry_run", False, False),
    "--check": ("check", False, False), "--json": ("json", False, False),
    "--wait": ("wait", False, False), "-v": ("verbose", False, False),
    "--adopt": ("adopt", False, False), "--push": ("push", False, False),
    "--frozen": ("frozen", False, False),
    "--verbose": ("verbose", False, False), "--debug": ("debug", False, False),
}


def parse_param(text: str) -> tuple:
    from .errors import UsageError

    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(f"-p takes name=value, got {text!r}", hint='e.g. -p goal="Add password reset"')
    return name.strip(), value


def fast_parse(args: list) -> dict | None:
    """RunOptions fields for the forms we know, else None (click then takes over)."""
    got: dict = {"params": [], "force": [], "only": [], "models": []}
    files = []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and a != "-":
            flag, eq, inline = a.partition("=") if a.startswith("--") else (a[:2], "", a[2:])
            if flag not in RUN_FLAGS:
                return None
            name, takes_value, repeat = RUN_FLAGS[flag]
            if takes_value:
                if eq or inline:
                    value = inline
                elif i + 1 < len(args):
                    i += 1
                    value = args[i]
                else:
                    return None
                if name == "jobs":
                    if not value.isdigit() or int(value) < 1:
                        return None
                    got["jobs"] = int(value)
                elif repeat:
                    got[name].append(value)
            elif eq or inline:
                return None
            else:
                got[name] = True
        else:
            files.append(a)
        i += 1
    if len(files) > 1:
        return None
    got["file"] = files[0] if files else None
    return got


def options_from(fields: dict, command: str, argv: list):
    from .api import RunOptions

    fields = dict(fields)
    fields.pop("debug", None)
    params = tuple(parse_param(p) for p in fields.pop("params", ()))
    from .api import parse_model_overrides

    models = tuple(m for text in fields.pop("models", ()) for m in parse_model_overrides(text))
    if command == "plan":
        fields["dry_run"] = True
    return RunOptions(params=params, models=models, force=tuple(fields.pop("force", ())),
                      only=tuple(fields.pop("only", ())), argv=tuple(argv), **fields)


def run_command(fields: dict, command: str, argv: list) -> int:
    """Run or plan, mapping errors to exit codes; shared by the fast path and click."""
    from .errors import AmeliaError

    debug = fields.get("debug", False)
    try:
        from .api import run

        run(options_from(fields, command, argv))
        return 0
    except AmeliaError as e:
        if debug:
            import traceback

            traceback.print_exc()
        from .api import report_error

        return report_error(e, as_json=fields.get("json", False) and not _printed_events(e))
    except KeyboardInterrupt as e:  # before or after the run's own handlers
        sys.stderr.write("amelia: interrupted\n")
        return 143 if isinstance(e, Terminated) else 130


def _printed_events(e) -> bool:
    """Failed steps and --check were already reported in the JSON stream itself."""
    from .errors import StepsFailed

    return isinstance(e, StepsFailed)


# Modules whose teardown at interpreter exit costs a quarter of a second or more.
HEAVY_MODULES = ("langgraph", "langchain_core", "openai", "anthropic", "llama_cpp")


def exit_now(code: int) -> None:
    """Exit with `code`. After a run that loaded the heavy modules, skip the interpreter's
    teardown (0.25-0.3 s here): every file and database is closed by then, and the OS
    releases the project lock."""
    if any(m in sys.modules for m in HEAVY_MODULES):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside a run's execution: unwind like Ctrl-C (locks released), exit 143."""


def _terminate(_signum, _frame):
    raise Terminated()


def main(argv: list | None = None) -> None:
    if argv is None:
        import _signal  # the C module: `signal` builds its enums, ~1 ms of the no-op

        _signal.signal(_signal.SIGTERM, _terminate)
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in ("run", "plan"):
        fields = fast_parse(args[1:])
        if fields is not None:
            exit_now(run_command(fields, args[0], args))
    if "--debug" in args[1:]:  # accepted after the command too, as on run/plan
        args = ["--debug"] + [a for a in args if a != "--debug"]
    from .cli import main as cli_main

    cli_main(args)
