"""The ui's chat page: `amelia chat` in the browser.

Routes (mounted by server.make_app)
    GET  /chat[?session=ID][&pipeline=NAME]   the page: models, sources, a session's turns
    GET  /parts/chat/sessions                  the sessions list (swapped in after a turn)
    GET  /api/chat/sessions                    the same, as `amelia chat --list --json`
    POST /api/chat {session, model, source, message, pipeline}
                                               the answer, streamed as JSON lines (below)
    POST /api/chat/stop {session}              end the answer going in that session

The stream's lines: {"type": "session", id, model, source} first, then "text" chunks
and "note"s, and one of "done" {answer, usage, citations, session}, "stopped" or
"error" {error, hint}. A refusal comes before the stream as a JSON error and a status
(400 bad request, 403 token, 404 unknown session or pipeline, 409 an answer is going in
that session, 422 the model or source cannot answer: a missing key, no index).

A turn is what `amelia chat` does (amelia/chat/: the same prompt, grounding, history,
usage line and store API), so a session goes on in the terminal or here alike. It is
kept whole when its answer is complete, else not at all: Stop (or the page going away)
is Ctrl-C. The model call runs on a thread of its own; Stop ends the stream at once and
the call at its next chunk (its answer is dropped).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from dataclasses import dataclass

SESSION_ID = re.compile(r"^[a-z0-9]{1,32}$")  # store.chats ids: looked up, never a path
MAX_MESSAGE = 32 * 1024
MAX_BODY = MAX_MESSAGE * 2 + 4096
SESSIONS_SHOWN = 50
KEEPALIVE = 5.0  # seconds between blank lines: a page gone is noticed while a model thinks
JOIN = 10.0
THREAD = "amelia-ui-chat"  # the tests look for leftover amelia-ui* threads
ENDS = ("done", "stopped", "error")


class Refused(Exception):
    """A request the chat cannot take: said as JSON with this status."""

    def __init__(self, status: int, message: str, hint: str = ""):
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint

    def body(self) -> dict:
        from ..safetext import redact

        return {"error": redact(self.message), "hint": redact(self.hint)}


class Stopped(Exception):
    """Raised in the model's stream (from on_text) to end an answer that was stopped."""


@dataclass(frozen=True)
class Ask:
    """One checked question, ready to answer."""

    session: str
    question: str
    model_name: str
    config: object  # ModelConfig
    source_name: str
    source: object  # SourceConfig or None
    store_dir: str
    history: tuple  # ChatMessages of the session so far (as stored now)


class Turn:
    """An answer going: its lines go to the stream's queue; stopped or kept, never both."""

    def __init__(self, ask: Ask, loop, queue):
        self.ask = ask
        self.loop, self.queue = loop, queue
        self.lock = threading.Lock()
        self.stopped = False
        self.kept = False

    def put(self, item: dict) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the server's loop is closed: nobody reads
            pass

    def stop(self) -> bool:
        """Stop it unless it was kept already; whether it was stopped now."""
        with self.lock:
            if self.kept or self.stopped:
                return False
            self.stopped = True
        self.put({"type": "stopped"})
        return True

    def text(self, chunk: str) -> None:
        """on_text of the model call: each chunk to the page (redacted); a stop ends the call."""
        from ..safetext import redact

        if self.stopped:
            raise Stopped()
        self.put({"type": "text", "text": redact(chunk)})


class ChatControl:
    """One answer at a time per session, each on its own thread."""

    def __init__(self, project, run_busy=lambda: False):
        self.project = project  # UiProject
        self.run_busy = run_busy  # whether the ui's run goes (it may use the vector store)
        self.retrieving = 0
        self.lock = threading.Lock()
        self.active: dict = {}  # session id → Turn
        self.threads: set = set()
        self.models = None  # llm.ModelSession, made at the first question
        self.local = threading.local()  # each thread's last call's cost (ModelSession reports it)
        self.closed = False

    def busy(self, session: str) -> bool:
        with self.lock:
            return session in self.active

    def begin(self, ask: Ask, loop, queue) -> Turn:
        with self.lock:
            if self.closed:
                raise Refused(503, "the server is stopping")
            if ask.session in self.active:
                raise Refused(409, f"an answer is being written in session {ask.session}",
                              hint="wait for it, or stop it")
            if self.models is None:
                from ..llm import ModelSession

                self.models = ModelSession(self.project.root, self._usage, jobs=1)
            turn = Turn(ask, loop, queue)
            self.active[ask.session] = turn
            thread = threading.Thread(target=self._answer, args=(turn,), name=THREAD, daemon=True)
            self.threads.add(thread)
        thread.start()
        return turn

    def new_session_id(self) -> str:
        chats = self.project.store.state.chats
        while True:
            sid = chats.unused_id()
            with self.lock:
                if sid not in self.active:  # a new session not saved yet has it
                    return sid

    def stop_session(self, session: str) -> bool:
        with self.lock:
            turn = self.active.get(session)
        if turn is None or not turn.stop():
            return False
        self.release(turn)
        return True

    def release(self, turn: Turn) -> None:
        with self.lock:
            if self.active.get(turn.ask.session) is turn:
                del self.active[turn.ask.session]

    def stop(self) -> None:
        """The server stops: every answer is stopped (not kept), its thread joined."""
        with self.lock:
            self.closed = True
            turns = list(self.active.values())
            threads = list(self.threads)
        for turn in turns:
            turn.stop()
        for thread in threads:
            thread.join(JOIN)
        if self.models is not None:
            self.models.close()

    def _usage(self, step, config, completion, retries, latency, cost) -> None:
        self.local.cost = cost  # called on the thread that made the call

    # -- a turn, as amelia.chat.loop.Chat.ask ---------------------------------------------
    def _answer(self, turn: Turn) -> None:
        from ..chat import grounding
        from ..chat.history import budget, trim
        from ..chat.loop import STEP, usage_line
        from ..providers import ProviderError, Request
        from ..rag.errors import RagError
        from ..safetext import redact

        ask = turn.ask
        try:
            hits = None
            if ask.source is not None:
                hits = self._retrieve(ask)
            history, left_out = trim(ask.history, budget(ask.config))
            if left_out:
                turn.put({"type": "note", "text": f"(the {left_out} oldest turn{'s are' if left_out != 1 else ' is'}"
                                                  f" no longer sent to the model: the conversation is longer than "
                                                  f"its budget)"})
            request = Request(system=grounding.GROUNDED_SYSTEM if hits is not None else grounding.SYSTEM,
                              prompt=grounding.prompt(ask.question, hits) if hits is not None else ask.question,
                              history=tuple(history))
            self.local.cost = None
            asked = time.time()
            completion = self.models.call(STEP, ask.config, request, on_text=turn.text)
            cost = self.local.cost
            answer = redact(completion.text)
            with turn.lock:
                if turn.stopped:
                    return
                self._keep(ask, answer, completion, cost, asked)
                turn.kept = True
            turn.put({"type": "done", "session": ask.session, "answer": answer,
                      "usage": usage_line(completion.usage, cost, ask.config.provider),
                      "citations": ([redact(line) for line in grounding.citation_lines(completion.text, hits)]
                                    if hits is not None else [])})
        except Stopped:
            pass
        except ProviderError as e:
            turn.put(_error(f"model '{ask.model_name}' did not answer: {e.message}",
                            "ask again, or choose another model"))
        except RagError as e:
            turn.put(_error(e.message, e.hint))
        except Exception as e:  # noqa: BLE001 - said in the page; the server goes on
            turn.put(_error(f"{type(e).__name__}: {e}"))
        finally:
            self.release(turn)
            with self.lock:
                self.threads.discard(threading.current_thread())

    def _retrieve(self, ask: Ask) -> list:
        """The source's excerpts for the question. The embedded vector store is one
        process's at a time: let go once no chat retrieves and no ui run goes (as the ui's
        runs do), so `amelia index` works in a terminal beside the ui."""
        import sys

        from ..chat.grounding import Grounding

        with self.lock:
            self.retrieving += 1
        try:
            return Grounding(ask.source_name, ask.source, ask.store_dir).retrieve(ask.question)
        finally:
            with self.lock:
                self.retrieving -= 1
                idle = self.retrieving == 0
            vectors = sys.modules.get("amelia.rag.vectors")
            if idle and vectors is not None and not self.run_busy():
                vectors.close_all()

    def _keep(self, ask: Ask, answer: str, completion, cost, asked: float) -> None:
        """Exactly what `amelia chat` keeps (loop.Chat._keep): one transaction."""
        from ..safetext import redact
        from ..store.chats import ChatMessage

        u = completion.usage
        turn = [ChatMessage("user", redact(ask.question), time=asked),
                ChatMessage("assistant", answer, ask.model_name, u.input_tokens, u.output_tokens, cost,
                            time.time())]
        self.project.store.state.chats.save_turn(ask.session, ask.model_name, ask.source_name, turn)


def _error(message: str, hint: str = "") -> dict:
    from ..safetext import redact

    return {"type": "error", "error": redact(message), "hint": redact(hint)}


# -- what a page or a question is about ---------------------------------------------------

@dataclass(frozen=True)
class Context:
    pipeline: str  # the listed pipeline's name, "" without one
    project: object  # amelia.chat.project.Project


def context(ui_project, name: str | None) -> Context:
    """The chat's models and sources: of the pipeline named (a listed one), else the
    first; without a pipeline file, the built-in models. Refused when named and unknown;
    AmeliaError when the file is invalid."""
    from ..chat.project import DEFAULT, Project, load_project

    ref = ui_project.pipeline_ref(name)
    if name and ref is None:
        raise Refused(404, f"no pipeline {name!r} in this project")
    if ref is None:
        from ..resolve.models import DEFAULT_MODEL, model_config

        return Context("", Project(ui_project.root, "", {DEFAULT: model_config(DEFAULT, DEFAULT_MODEL)}, {}))
    return Context(ref.name, load_project(ref.file))


def chat_models(project) -> dict:
    """The models a chat may use (not claude-code: it edits files, in steps only)."""
    from ..chat.project import NOT_FOR_CHAT

    return {n: c for n, c in project.models.items() if c.provider not in NOT_FOR_CHAT}


def problems_of(project, models: dict) -> dict:
    """model → why it cannot answer here, as `amelia chat` says it ("" when it can)."""
    from ..chat.project import model_problem

    out = {}
    for name, config in models.items():
        problem = model_problem(name, config, project.root)
        out[name] = _said(problem) if problem else ""
    return out


def _said(e) -> str:
    return e.message + (f"\n(hint: {e.hint})" if getattr(e, "hint", "") else "")


def sources_of(project, store_dir: str) -> list:
    from ..chat.project import is_indexed

    out = []
    for name, config in project.sources.items():
        try:
            indexed = is_indexed(config, store_dir)
        except (OSError, ValueError):
            indexed = False
        out.append((name, indexed, list(config.paths) + list(config.urls)))
    return out


def find_session(chats, sid: str):
    if not SESSION_ID.match(sid or ""):
        return None
    return chats.session(sid)


def past_turns(messages, models: dict) -> list:
    """A session's turns for the page: (question, answer, who answered, usage line)."""
    from ..chat.loop import cost_text

    out, question = [], None
    for m in messages:
        if m.role == "user":
            question = m.content
        elif m.role == "assistant" and question is not None:
            config = models.get(m.model or "")
            usage = (f"{m.input_tokens or 0} in / {m.output_tokens or 0} out tokens · "
                     f"{cost_text(m.cost, config.provider if config else '')}")
            out.append((question, m.content, m.model or "model", usage))
            question = None
    return out


def check(ui_project, control: ChatControl, data) -> Ask:
    """A question from the page, checked as `amelia chat` checks its flags and session."""
    from ..chat.project import DEFAULT, model_problem, pick_model, pick_source
    from ..errors import AmeliaError

    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        raise Refused(400, 'send JSON {"message": TEXT, "model": NAME, "source": NAME, "session": ID}')
    question = data["message"].strip()
    if not question:
        raise Refused(400, "the message is empty")
    if len(question) > MAX_MESSAGE:
        raise Refused(400, f"the message is longer than {MAX_MESSAGE:,} characters")
    fields = {k: data.get(k) or "" for k in ("session", "model", "source", "pipeline")}
    if not all(isinstance(v, str) for v in fields.values()):
        raise Refused(400, "session, model, source and pipeline are names (strings)")
    chats = ui_project.store.state.chats
    session, history = None, ()
    if fields["session"]:
        session = find_session(chats, fields["session"])
        if session is None:
            raise Refused(404, f"no chat session '{fields['session']}'", hint="the page lists them")
        history = tuple(chats.messages(session["id"]))
    try:
        ctx = context(ui_project, fields["pipeline"])
        project = ctx.project
        model_name = fields["model"] or (session and session["model"]) or DEFAULT
        config = pick_model(project, model_name)
        source_name = fields["source"]
        source = pick_source(project, source_name) if source_name else None
    except AmeliaError as e:
        raise Refused(400, e.message, getattr(e, "hint", "")) from None
    problem = model_problem(model_name, config, project.root)
    if problem:
        raise Refused(422, problem.message, problem.hint)
    store_dir = ui_project.store.dir
    if source is not None and not dict((n, i) for n, i, _ in sources_of(project, store_dir)).get(source_name):
        raise Refused(422, f"source '{source_name}' is not indexed yet",
                      hint=f"run `amelia index --source {source_name}`")
    sid = session["id"] if session else control.new_session_id()
    return Ask(sid, question, model_name, config, source_name, source, store_dir, history)


# -- routes -------------------------------------------------------------------------------

def routes(ui) -> list:
    """The chat's routes, over the ui's project, token and page frame."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
    from starlette.routing import Route

    from . import chat_page, dashboard
    from .html import esc, page

    control: ChatControl = ui.chats

    def html(title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(page(title, body, script=_script(), meta={"amelia-token": ui.token},
                                 css=dashboard.CSS + chat_page.CSS), status_code=status)

    def sessions_html(current: str = "") -> str:
        return chat_page.sessions_list(ui.project.store.state.chats.sessions(SESSIONS_SHOWN), current)

    def _page(params) -> HTMLResponse:
        from ..chat.project import DEFAULT
        from ..errors import AmeliaError
        from ..safetext import safe

        chats = ui.project.store.state.chats
        sid = params.get("session") or ""
        session = find_session(chats, sid) if sid else None
        if sid and session is None:
            return html("chat · not found", f'<h1>Not found</h1><p>No chat session {esc(sid)!s}.</p>'
                        '<p><a href="/chat">A new chat</a></p>', 404)
        others = [r.name for r in ui.project.pipelines()]
        try:
            ctx = context(ui.project, params.get("pipeline"))
        except Refused as e:
            return html("chat · not found", f'<h1>Not found</h1><p>{esc(e.message)}</p>', 404)
        except AmeliaError as e:
            body = chat_page.body(root=ui.project.root, pipeline=params.get("pipeline") or "", others=others,
                                  models={}, model="", problems={}, sources=[], source="", session="", turns=[],
                                  resumed_note="", error=safe(e.render()), sessions="")
            return html("amelia chat", body)
        project = ctx.project
        models = chat_models(project)
        model = params.get("model") or (session and session["model"]) or DEFAULT
        note = ""
        if model not in models:
            if session and not params.get("model"):
                note = f"it used model '{model}', which this pipeline no longer has: pick one"
            model = DEFAULT if DEFAULT in models else next(iter(models), "")
        source = params.get("source") or (session and session["source"]) or ""
        turns = past_turns(chats.messages(session["id"]), project.models) if session else []
        if session:
            n = len(turns)
            note = "; ".join(x for x in (f"resumed: {n} earlier turn{'s' if n != 1 else ''}", note) if x)
        body = chat_page.body(root=ui.project.root, pipeline=ctx.pipeline,
                              others=[o for o in others if o != ctx.pipeline], models=models, model=model,
                              problems=problems_of(project, models),
                              sources=sources_of(project, ui.project.store.dir),
                              source=source if source in project.sources else "",
                              session=session["id"] if session else "", turns=turns, resumed_note=note, error="",
                              sessions=sessions_html(session["id"] if session else ""))
        return html(f"amelia chat{' · ' + session['id'] if session else ''}", body)

    async def chat_home(request: Request):
        return await run_in_threadpool(_page, request.query_params)

    async def sessions_part(request: Request):
        current = request.query_params.get("session") or ""
        return HTMLResponse(await run_in_threadpool(sessions_html, current))

    async def sessions_api(request: Request):
        return JSONResponse(await run_in_threadpool(ui.project.store.state.chats.sessions, SESSIONS_SHOWN))

    async def read_json(request: Request):
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise Refused(400, "the request is too long")
        try:
            return json.loads(raw)
        except ValueError:
            raise Refused(400, "the request is not JSON") from None

    async def ask(request: Request):
        why = ui.may_change(request)
        if why:
            return JSONResponse({"error": why}, status_code=403)
        try:
            checked = await run_in_threadpool(check, ui.project, control, await read_json(request))
            q: asyncio.Queue = asyncio.Queue()
            turn = control.begin(checked, asyncio.get_running_loop(), q)
        except Refused as e:
            return JSONResponse(e.body(), status_code=e.status)

        async def lines():
            try:
                yield _line({"type": "session", "id": checked.session, "model": checked.model_name,
                             "source": checked.source_name})
                while True:
                    try:
                        item = await asyncio.wait_for(q.get(), KEEPALIVE)
                    except asyncio.TimeoutError:
                        yield "\n"  # a blank line: the reader skips it; a closed page fails it
                        continue
                    yield _line(item)
                    if item["type"] in ENDS:
                        return
            finally:  # the page went away mid-answer: Ctrl-C (no-op once kept)
                if turn.stop():
                    control.release(turn)

        return StreamingResponse(lines(), media_type="application/x-ndjson",
                                 headers={"X-Accel-Buffering": "no"})

    async def stop(request: Request):
        why = ui.may_change(request)
        if why:
            return JSONResponse({"error": why}, status_code=403)
        try:
            data = await read_json(request)
        except Refused as e:
            return JSONResponse(e.body(), status_code=e.status)
        sid = data.get("session") if isinstance(data, dict) else None
        if not isinstance(sid, str) or not SESSION_ID.match(sid):
            return JSONResponse({"error": 'send JSON {"session": ID}'}, status_code=400)
        if not control.stop_session(sid):
            return JSONResponse({"error": "no answer is being written in that session"}, status_code=409)
        return JSONResponse({"stopped": sid})

    return [
        Route("/chat", chat_home),
        Route("/parts/chat/sessions", sessions_part),
        Route("/api/chat/sessions", sessions_api),
        Route("/api/chat", ask, methods=["POST"]),
        Route("/api/chat/stop", stop, methods=["POST"]),
    ]


def _line(item: dict) -> str:
    return json.dumps(item) + "\n"


_SCRIPT: list = []


def _script() -> str:
    """The page's script (chat.js), read once."""
    if not _SCRIPT:
        import os

        with open(os.path.join(os.path.dirname(__file__), "chat.js"), encoding="utf-8") as f:
            _SCRIPT.append(f.read())
    return _SCRIPT[0]
