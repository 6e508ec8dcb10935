"""Errors a user can act on: each has a location, a hint and an exit code (DESIGN §9).

Anything that is not an AmeliaError is a bug and shows a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_INVALID = 2
EXIT_STALE = 3
EXIT_ENVIRONMENT = 4
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C); 128 + the signal's number, as shells report it
EXIT_TERMINATED = 143  # SIGTERM


@dataclass(frozen=True)
class Location:
    """Where in a file something is: 1-based line and column, and the key path."""

    file: str
    line: int = 0
    col: int = 0
    path: str = ""  # dotted key path, e.g. steps.design.needs[0]
    snippet: str = ""  # the source line, for the caret display

    def prefix(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}"
        return self.file


class AmeliaError(Exception):
    """An error the user can fix. Rendered without a traceback."""

    exit_code = EXIT_INVALID
    kind = "error"

    def __init__(self, message: str, location: Location | None = None, hint: str = "",
                 included_from: str = ""):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint
        # An error in an included recipe: the include lines that brought it in, outermost
        # first ("amelia.yaml:4 (as review)").
        self.included_from = included_from

    def render(self) -> str:
        """`FILE:LINE:COL: error: message`, then key path, snippet with caret, hint."""
        loc = self.location
        head = f"{loc.prefix()}: " if loc else ""
        lines = [f"{head}error: {self.message}"]
        if loc and loc.path:
            lines.append(f"  at {loc.path}")
        if loc and loc.snippet and loc.line:
            gutter = f"{loc.line:>4} | "
            lines.append(f"{gutter}{loc.snippet}")
            # Keep tabs under tabs so the caret lines up with the column.
            pad = "".join("\t" if ch == "\t" else " " for ch in loc.snippet[: max(loc.col - 1, 0)])
            lines.append(" " * len(gutter) + pad + "^")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        if self.included_from:
            lines.append(f"  included from {self.included_from}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        loc = self.location
        return {
            "kind": type(self).__name__,
            "message": self.message,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "col": loc.col if loc else None,
            "path": loc.path if loc else None,
            "hint": self.hint or None,
            **({"included_from": self.included_from} if self.included_from else {}),
        }


class PipelineError(AmeliaError):
    """The pipeline file is invalid (YAML, schema or semantic check)."""


class UsageError(AmeliaError):
    """A bad command line: unknown step, bad -p value, bad flag combination."""


class ErrorGroup(AmeliaError):
    """Several errors found at once; reported together, exit code of the first."""

    def __init__(self, errors: list[AmeliaError]):
        super().__init__(f"{len(errors)} errors")
        self.errors = errors
        self.exit_code = errors[0].exit_code if errors else EXIT_INVALID

    def render(self) -> str:
        body = "\n".join(e.render() for e in self.errors)
        n = len(self.errors)
        return f"{body}\n{n} error{'s' if n != 1 else ''} found"

    def to_dict(self) -> dict:
        return {"kind": "ErrorGroup", "errors": [e.to_dict() for e in self.errors]}


class EnvironmentProblem(AmeliaError):
    """Something outside the pipeline stops us: lock held, missing key, bad store."""

    exit_code = EXIT_ENVIRONMENT


class LockHeld(EnvironmentProblem):
    pass


class StoreProblem(EnvironmentProblem):
    """The store under .amelia/ cannot be used: damaged, read-only, or the disk is full.

    Raised by the store in place of sqlite3/OSError tracebacks; the location names the file.
    """


class StaleOutputs(AmeliaError):
    """`run --check` found steps that would run."""

    exit_code = EXIT_STALE


class StepsFailed(AmeliaError):
    exit_code = EXIT_STEP_FAILED


class PlanError(AmeliaError):
    """`plan` / `run --dry-run`: a step cannot run as declared (an input nothing provides)."""


class Interrupted(AmeliaError):
    exit_code = EXIT_INTERRUPTED

    @classmethod
    def by_signal(cls, signum: int) -> "Interrupted":
        import signal

        e = cls("interrupted" if signum != signal.SIGTERM else "terminated")
        e.exit_code = EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED
        return e

    def render(self) -> str:
        """Not an error the user made: said as the run's end, as after a failed step."""
        return f"amelia: {self.message}"


def raise_all(errors: list[AmeliaError]) -> None:
    """Raise nothing, the one error, or all of them as a group."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorGroup(errors)


def did_you_mean(word: str, choices) -> str:
    """A hint naming the closest choice, or ''."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def shown(text: str) -> str:
    """A name or path for a message: control characters (a newline, a NUL byte) escaped,
    never printed raw."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
