"""The chat loop: read a line, answer it streamed, say what it cost, keep the turn.

Lines starting with `/` are commands (/sources, /model NAME, /help, /exit). Ctrl-D (end
of input) and /exit end the chat with exit 0, Ctrl-C with 130: between turns or in the
middle of an answer (which is then not kept). A non-TTY stdin is read to its end, without
prompt or banner, so `echo question | amelia chat` prints just the answer and its cost.

Model text is shown through safetext.escape (no escape sequence of a model's answer
reaches the terminal) and never through rich markup; what is kept in state.db is
redacted (safetext.redact) first.
"""

from __future__ import annotations

import os
import time

from ..errors import AmeliaError
from ..safetext import escape, escape_line, redact
from . import grounding
from .history import budget, trim
from .project import is_indexed, model_problem, pick_model

PROMPT = "> "
STEP = "chat"  # the step id usage is reported under
COMMANDS = ("/sources", "/model", "/help", "/exit", "/quit")
HELP = "/sources · /model [NAME] · /help · /exit (or Ctrl-D)"


def describe(config) -> str:
    return f"{config.provider} {config.model}" if config.model else f"{config.provider}, its default model"


def cost_text(cost, provider: str) -> str:
    from ..providers.pricing import FREE_PROVIDERS

    if provider in FREE_PROVIDERS:
        return "free"
    if cost is None:
        return "cost unknown"
    return f"${cost:.4f}" if cost >= 0.0001 or cost == 0 else "<$0.0001"


def usage_line(usage, cost, provider: str) -> str:
    return (f"{usage.input_tokens} in / {usage.output_tokens} out tokens · "
            f"{cost_text(cost, provider)}")


class StreamPrinter:
    """An answer's chunks, shown as they arrive, escaped. A CR is held back until the next
    chunk (the first half of a CRLF split between chunks is the line break's own)."""

    def __init__(self, out):
        self.out = out
        self.parts: list[str] = []
        self.pending = ""
        self.last = "\n"  # the last character shown

    def _show(self, text: str) -> None:
        if text:
            shown = escape(text)
            self.out.write(shown)
            self.out.flush()
            self.last = shown[-1]

    def write(self, chunk: str) -> None:
        self.parts.append(chunk)
        text, self.pending = self.pending + chunk, ""
        if text.endswith("\r"):
            text, self.pending = text[:-1], "\r"
        self._show(text)

    def finish(self, answer: str, note) -> None:
        """The answer is complete. If what streamed is not the answer (the provider retried
        after a dropped stream, and showed its start twice; or it did not stream), the
        answer is shown again whole."""
        self._show(self.pending)
        self.pending = ""
        streamed = "".join(self.parts)
        if streamed != answer:
            if streamed:
                self.end_line()
                note("(the stream was cut and the question asked again; the answer in full:)")
            self._show(answer)
        self.end_line()

    def end_line(self) -> None:
        if self.last != "\n":
            self.out.write("\n")
            self.last = "\n"
        self.out.flush()


class Chat:
    def __init__(self, setup, stdin, out, err):
        from ..llm import ModelSession

        self.setup = setup
        self.project = setup.project
        self.chats = setup.store.state.chats
        self.stdin, self.out, self.err = stdin, out, err
        self.model_name, self.config = setup.model_name, setup.model
        self.grounding = (grounding.Grounding(setup.source_name, setup.source, setup.store.dir)
                          if setup.source is not None else None)
        self.messages = list(setup.history)
        self.interactive = _isatty(stdin)
        self.color = _isatty(out) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self.cost = None
        self.told_trimmed = False
        self.models = ModelSession(self.project.root, self._usage, jobs=1)
        if self.interactive:
            import importlib

            try:
                importlib.import_module("readline")  # line editing and history for input()
            except ImportError:
                pass

    # -- output ------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A dim line: usage, notes."""
        self.say(f"\x1b[2m{text}\x1b[0m" if self.color else text)

    def problem(self, e: AmeliaError) -> None:
        from ..safetext import safe

        self.out.flush()
        self.err.write(safe(e.render()) + "\n")
        self.err.flush()

    def _usage(self, step, config, completion, retries, latency, cost) -> None:
        self.cost = cost  # ModelSession reports each call's cost here

    # -- the loop ----------------------------------------------------------------------
    def banner(self) -> None:
        self.say(f"amelia chat · model {escape_line(self.model_name)} ({escape_line(describe(self.config))})"
                 f" · session {self.setup.session_id}")
        if self.grounding:
            self.say(f"grounded in source {escape_line(self.grounding.name)}: answers cite excerpts as [n]")
        if self.setup.resumed:
            n = len([m for m in self.messages if m.role == "user"])
            self.say(f"resumed: {n} earlier turn{'s' if n != 1 else ''}")
        self.note(HELP)

    def read(self) -> str:
        if self.interactive:
            return input(PROMPT)  # EOFError at Ctrl-D
        line = self.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    def run(self) -> int:
        from ..entry import Terminated

        try:
            if self.interactive:
                self.banner()
            while True:
                try:
                    line = self.read().strip()
                except EOFError:
                    if self.interactive:
                        self.say("")
                    return 0
                if not line:
                    continue
                if line.startswith("/"):
                    code = self.command(line)
                    if code is not None:
                        return code
                    continue
                self.ask(line)
        except KeyboardInterrupt as e:  # Ctrl-C: the chat ends; the turn under way is not kept
            self.out.write("\n")
            self.out.flush()
            return 143 if isinstance(e, Terminated) else 130

    def close(self) -> None:
        self.models.close()
        self.setup.store.close()

    # -- a turn ------------------------------------------------------------------------
    def ask(self, text: str) -> None:
        from ..providers import ProviderError, Request

        hits = None
        if self.grounding:
            from ..rag.errors import RagError

            try:
                hits = self.grounding.retrieve(text)
            except RagError as e:
                self.problem(AmeliaError(e.message, hint=e.hint))
                return
        history, left_out = trim(self.messages, budget(self.config))
        if left_out and not self.told_trimmed:
            self.told_trimmed = True
            self.note(f"(the {left_out} oldest turn{'s are' if left_out != 1 else ' is'} no longer "
                      f"sent to the model: the conversation is longer than its budget)")
        request = Request(system=grounding.GROUNDED_SYSTEM if self.grounding else grounding.SYSTEM,
                          prompt=grounding.prompt(text, hits) if self.grounding else text,
                          history=tuple(history))
        self.cost = None
        printer = StreamPrinter(self.out)
        asked = time.time()
        try:
            completion = self.models.call(STEP, self.config, request, on_text=printer.write)
        except ProviderError as e:
            printer.end_line()
            self.problem(AmeliaError(f"model '{self.model_name}' did not answer: {e.message}",
                                     hint="ask again, or choose another model with /model NAME"))
            return
        printer.finish(completion.text, self.note)
        self.note(usage_line(completion.usage, self.cost, self.config.provider))
        if hits is not None:
            for line in grounding.citation_lines(completion.text, hits):
                self.say(escape_line(line))
        self._keep(text, completion, asked)

    def _keep(self, text: str, completion, asked: float) -> None:
        from ..store.chats import ChatMessage

        u = completion.usage
        turn = [ChatMessage("user", redact(text), time=asked),
                ChatMessage("assistant", redact(completion.text), self.model_name, u.input_tokens,
                            u.output_tokens, self.cost, time.time())]
        self.chats.save_turn(self.setup.session_id, self.model_name,
                             self.grounding.name if self.grounding else "", turn)
        self.messages += turn

    # -- commands ----------------------------------------------------------------------
    def command(self, line: str) -> int | None:
        """Run a /command; an exit code ends the chat."""
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        if name in ("/exit", "/quit"):
            return 0
        if name == "/help":
            self.say(HELP)
        elif name == "/sources":
            self.list_sources()
        elif name == "/model":
            self.switch_model(arg)
        else:
            from ..errors import did_you_mean

            self.problem(AmeliaError(f"unknown command {escape_line(name)}",
                                     hint=did_you_mean(name, COMMANDS) or f"commands: {HELP}"))
        return None

    def list_sources(self) -> None:
        sources = self.project.sources
        if not sources:
            self.say(f"no sources: declare them under `sources:` in "
                     f"{escape_line(self.project.file) or 'a pipeline file'}")
            return
        width = max(len(n) for n in sources)
        active = self.grounding.name if self.grounding else ""
        for name, config in sources.items():
            what = ", ".join(tuple(config.paths) + tuple(config.urls)) or "-"
            state = ("indexed" if is_indexed(config, self.setup.store.dir)
                     else f"not indexed (amelia index --source {name})")
            mark = "*" if name == active else " "
            self.say(escape_line(f"{mark} {name:<{width}}  {what}  {state}"))

    def switch_model(self, name: str) -> None:
        if not name:
            for n, config in self.project.models.items():
                mark = "*" if n == self.model_name else " "
                self.say(escape_line(f"{mark} {n}  ({describe(config)})"))
            return
        try:
            config = pick_model(self.project, name)
            problem = model_problem(name, config, self.project.root)
            if problem:
                raise problem
        except AmeliaError as e:
            self.problem(e)
            return
        self.model_name, self.config = name, config
        self.say(f"model {escape_line(name)} ({escape_line(describe(config))})")


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
