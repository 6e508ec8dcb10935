"""`amelia ui`: the command center as a local web app (Starlette on uvicorn, imported only
by `ui`: nothing on the run path imports this module).

Routes
    GET  /                         the project: pipelines, steps and DAG, runs, cost, health
    GET  /runs/{id}                one run (the report's body), live while it runs
    GET  /parts/runs, /parts/run/{id}   fragments the page's script swaps in after a run
    GET  /api/pipelines, /api/pipeline?name=, /api/runs, /api/runs/{id}, /api/current,
         /api/health               JSON
    GET  /events                   server-sent events: the live run's engine events
    POST /api/runs {"file": NAME}  start a run of a listed pipeline (202; 409 when busy)
    POST /api/runs/current/cancel  cancel it
    /chat, /api/chat…              the chat page and its answers: amelia/web/chat.py

Safety (DESIGN §11): every POST needs the per-process token (header X-Amelia-Token, which
only a page served here knows) and no foreign Origin; every request needs a Host naming
this server (a DNS-rebinding page cannot read it); a pipeline or run named in a URL is
looked up, never opened as a path; no response carries a secret (events come redacted
from the bus, views through safetext, health says only whether a key is set).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import threading
import time

from .control import EVENT_STATES, Broker, Busy, RunControl
from .project import UiProject

TOKEN_HEADER = "x-amelia-token"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WILDCARD = {"0.0.0.0", "::", ""}
KEEPALIVE = 15.0  # seconds between SSE comments: a dead listener is found within this
HEALTH_TTL = 30.0  # doctor's checks are kept this long (they hash every object)
RUNS_SHOWN = 30
MAX_BODY = 64 * 1024
CHAT_LINK = '<nav class="pages" aria-label="Pages"><a href="/chat">Chat with the project\'s models</a></nav>'
HEADERS = {  # on every response
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def _script() -> str:
    from .dag import STATE_MARK
    from .html import RUN_SCRIPT, STATE_CLASSES

    with open(os.path.join(os.path.dirname(__file__), "live.js"), encoding="utf-8") as f:
        live = f.read()
    consts = {"classes": STATE_CLASSES, "marks": STATE_MARK, "events": EVENT_STATES}
    return RUN_SCRIPT + "\nvar AMELIA = " + json.dumps(consts) + ";\n" + live


class Ui:
    """The state behind the routes: the project, the live run, the token, who may call."""

    def __init__(self, project: UiProject, host: str, jobs: int = 0):
        self.project = project
        self.token = secrets.token_urlsafe(32)
        self.broker = Broker()
        self.control = RunControl(project.store, self.broker, jobs)
        self.host = host
        self.port = 0  # set once bound
        self.script = _script()
        self.health: tuple = (0.0, None)
        self.health_lock = threading.Lock()
        from .chat import ChatControl  # the chat page's answers (amelia/web/chat.py)

        self.chats = ChatControl(project, self.control.busy)
        from .control import Follower  # a run started in a terminal, shown live too

        self.follower = Follower(project.store, self.broker, self.control.busy)

    # -- who may call ---------------------------------------------------------------------
    def host_allowed(self, host_header: str) -> bool:
        """The Host a browser sends names this server: loopback names (or the host bound),
        any when bound to every interface (the user chose to expose it)."""
        if self.host in WILDCARD:
            return True
        name = _host_name(host_header)
        return name in LOOPBACK or name == self.host.strip("[]").lower()

    def may_change(self, request) -> str:
        """Why a state-changing request is refused, or "" when it may go on."""
        given = request.headers.get(TOKEN_HEADER, "")
        if not given or not secrets.compare_digest(given.encode(), self.token.encode()):
            return "missing or wrong token: state-changing requests come from the ui's own page"
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
            return "cross-origin request refused"
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return "cross-site request refused"
        return ""


def _host_name(host_header: str) -> str:
    h = (host_header or "").strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


# -- reading the project ------------------------------------------------------------------

def _recent_runs(ui: Ui, limit: int = RUNS_SHOWN) -> tuple:
    from .dashboard import usage_by_model

    store = ui.project.store
    runs = store.history.runs(limit)
    totals = store.history.usage_totals(r["id"] for r in runs)
    for r in runs:
        r["usage"] = totals.get(r["id"])
    models = usage_by_model(store, runs)
    return runs, models


def _last_states(ui: Ui, pipeline, runs: list) -> dict:
    """step → its state in the last run of this pipeline (the dashboard's starting point)."""
    last = next((r for r in runs if r.get("pipeline") == pipeline.name), None)
    if last is None:
        return {}
    run = ui.project.store.history.run(last["id"]) or {"steps": []}
    out = {}
    for s in run["steps"]:
        state = s["status"]
        if state == "running" and run.get("status") != "running":
            state = "cancelled"
        out[s["step"]] = state
    return out


def _sources(ui: Ui, pipeline) -> list:
    if not any(s.kind == "index" for s in pipeline.steps):
        return []
    from ..rag.retrieval import is_indexed
    from ..rag.sources import source_configs

    out = []
    for name, config in source_configs(pipeline).items():
        try:
            indexed = is_indexed(config, ui.project.store.dir)
        except (OSError, ValueError):
            indexed = False
        out.append((name, indexed, list(config.paths) + list(config.urls)))
    return out


def _run_view(ui: Ui, run_id: str) -> dict | None:
    from .view import run_view

    run = ui.project.run(run_id)
    if run is None:
        return None
    view = run_view(ui.project.store, ui.project.pipeline_of_run(run), run_id)
    live = ui.broker.state()
    if live["run_id"] == run_id and live["status"] in ("running", "starting"):
        counts: dict = {}
        for s in view["steps"]:  # the store has the steps once the run ends: until then, the events
            s["state"] = live["steps"].get(s["id"], s["state"])
            counts[s["state"]] = counts.get(s["state"], 0) + 1
        view["counts"] = counts
    return view


def _health(ui: Ui) -> list:
    """doctor's checks that need no network (the ui never probes a provider)."""
    from dataclasses import asdict

    from .. import doctor

    with ui.health_lock:
        at, checks = ui.health
        if checks is None or time.monotonic() - at > HEALTH_TTL:
            root = ui.project.root
            found = doctor.python_and_packages() + doctor.keys(root) + doctor.store(root) + [doctor.disk(root)]
            checks = [asdict(c) for c in found]
            ui.health = (time.monotonic(), checks)
        return checks


# -- the app ------------------------------------------------------------------------------

def make_app(ui: Ui):
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from ..errors import AmeliaError
    from . import dashboard
    from .html import esc, page, run_body
    from .view import pipeline_view

    def html_page(title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(page(title, body, script=ui.script, meta={"amelia-token": ui.token},
                                 css=dashboard.CSS), status_code=status)

    def not_found(what: str, api: bool):
        if api:
            return JSONResponse({"error": f"no {what}"}, status_code=404)
        return html_page("not found", f'<h1>Not found</h1><p>No {esc(what)}.</p><p><a href="/">The project</a></p>',
                         404)

    def _dashboard(request: Request):
        project = ui.project
        refs = project.pipelines()
        name = request.query_params.get("pipeline")
        chosen = project.pipeline_ref(name)
        if name and chosen is None:
            return not_found(f"pipeline {name!r} in this project", False)
        runs, models = _recent_runs(ui)
        pview, states, error, sources = None, {}, "", []
        if chosen is not None:
            try:
                pipeline = project.load(chosen)
            except AmeliaError as e:
                from ..safetext import safe

                error = safe(e.render())
            else:
                pview = pipeline_view(pipeline)
                states = _last_states(ui, pipeline, runs)
                sources = _sources(ui, pipeline)
        live = f'<div id="live" data-page="dashboard" data-pipeline="{esc(chosen.name if chosen else "")}"></div>'
        body = live + CHAT_LINK + dashboard.body(project.root, refs, chosen, pview, states, error, runs, models,
                                                 sources)
        return html_page(f"amelia ui · {os.path.basename(project.root)}", body)

    async def home(request: Request):
        return await run_in_threadpool(_dashboard, request)

    def _run_page(run_id: str):
        view = _run_view(ui, run_id)
        if view is None:
            return not_found(f"run {run_id!r}", False)
        live = (f'<div id="live" class="controls run-bar" data-page="run" data-run="{esc(view["id"])}">'
                f'<nav aria-label="Back"><a href="/">← the project</a></nav>'
                f'<span id="run-status" role="status" aria-live="polite"></span>'
                f'<button type="button" id="run-cancel" hidden>Cancel run</button></div>')
        return html_page(f"amelia run {view['id']} · {view['pipeline']}",
                         live + f'<div id="run-body">{run_body(view)}</div>')

    async def run_page(request: Request):
        return await run_in_threadpool(_run_page, request.path_params["run_id"])

    def _runs_part():
        runs, models = _recent_runs(ui)
        return HTMLResponse(dashboard.runs_section(runs, models))

    async def runs_part(request: Request):
        return await run_in_threadpool(_runs_part)

    def _run_part(run_id: str):
        view = _run_view(ui, run_id)
        return HTMLResponse(run_body(view)) if view is not None else not_found("run", True)

    async def run_part(request: Request):
        return await run_in_threadpool(_run_part, request.path_params["run_id"])

    # -- JSON -------------------------------------------------------------------------------
    async def api_pipelines(request: Request):
        refs = await run_in_threadpool(ui.project.pipelines)
        return JSONResponse([{"name": r.name} for r in refs])

    def _pipeline(name: str):
        ref = ui.project.pipeline_ref(name)
        if ref is None:
            return not_found("such pipeline", True)
        try:
            return JSONResponse(pipeline_view(ui.project.load(ref)) | {"ref": ref.name})
        except AmeliaError as e:
            from ..safetext import safe

            return JSONResponse({"error": safe(e.render())}, status_code=422)

    async def api_pipeline(request: Request):
        return await run_in_threadpool(_pipeline, request.query_params.get("name", ""))

    async def api_runs(request: Request):
        runs, _ = await run_in_threadpool(_recent_runs, ui)
        return JSONResponse(runs)

    def _api_run(run_id: str):
        view = _run_view(ui, run_id)
        return JSONResponse(view) if view is not None else not_found(f"run {run_id!r}", True)

    async def api_run(request: Request):
        return await run_in_threadpool(_api_run, request.path_params["run_id"])

    async def api_current(request: Request):
        return JSONResponse(ui.broker.state() | {"busy": ui.control.busy()})

    async def api_health(request: Request):
        return JSONResponse(await run_in_threadpool(_health, ui))

    # -- changes ----------------------------------------------------------------------------
    def refused(request: Request):
        why = ui.may_change(request)
        return JSONResponse({"error": why}, status_code=403) if why else None

    def _start(name: str):
        ref = ui.project.pipeline_ref(name) if name else None
        if ref is None:
            return JSONResponse({"error": "no such pipeline in this project"}, status_code=404)
        try:
            pipeline = ui.project.load(ref)
        except AmeliaError as e:
            from ..safetext import safe

            return JSONResponse({"error": safe(e.render())}, status_code=422)
        try:
            ui.control.start(ref.name, pipeline)
        except Busy as e:
            return JSONResponse({"error": str(e)}, status_code=409)
        return JSONResponse({"started": ref.name}, status_code=202)

    async def start_run(request: Request):
        bad = refused(request)
        if bad is not None:
            return bad
        raw = await request.body()
        try:
            data = json.loads(raw[:MAX_BODY + 1]) if len(raw) <= MAX_BODY else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("file"), str):
            return JSONResponse({"error": 'send JSON {"file": "<a pipeline listed by /api/pipelines>"}'},
                                status_code=400)
        return await run_in_threadpool(_start, data["file"])

    async def cancel_run(request: Request):
        bad = refused(request)
        if bad is not None:
            return bad
        if not ui.control.cancel():
            return JSONResponse({"error": "no run is going"}, status_code=409)
        return JSONResponse({"cancelling": True}, status_code=202)

    # -- live -------------------------------------------------------------------------------
    async def events(request: Request):
        q: asyncio.Queue = asyncio.Queue()
        if not ui.broker.listen(asyncio.get_running_loop(), q):
            return Response("the server is stopping", status_code=503)

        async def stream():
            try:
                yield "retry: 1000\n\n"
                while True:
                    try:
                        item = await asyncio.wait_for(q.get(), KEEPALIVE)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if item is None:  # the server stops
                        return
                    yield "data: " + json.dumps(item) + "\n\n"
            finally:
                ui.broker.leave(q)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

    routes = [
        Route("/", home),
        Route("/runs/{run_id}", run_page),
        Route("/parts/runs", runs_part),
        Route("/parts/run/{run_id}", run_part),
        Route("/api/pipelines", api_pipelines),
        Route("/api/pipeline", api_pipeline),
        Route("/api/runs", api_runs, methods=["GET"]),
        Route("/api/runs", start_run, methods=["POST"]),
        Route("/api/runs/current/cancel", cancel_run, methods=["POST"]),
        Route("/api/runs/{run_id}", api_run),
        Route("/api/current", api_current),
        Route("/api/health", api_health),
        Route("/events", events),
    ]
    from .chat import routes as chat_routes  # /chat and its API (amelia/web/chat.py)

    routes += chat_routes(ui)
    return Guard(Starlette(routes=routes), ui)


class Guard:
    """ASGI middleware: a Host naming this server on every request (DNS rebinding), and the
    safety headers on every response."""

    def __init__(self, app, ui: Ui):
        self.app = app
        self.ui = ui

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = dict(scope.get("headers") or ()).get(b"host", b"").decode("latin-1")
        if not self.ui.host_allowed(host):
            from starlette.responses import PlainTextResponse

            return await PlainTextResponse("unknown host", status_code=403, headers=HEADERS)(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or ())
                present = {k.lower() for k, _ in headers}
                headers += [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()
                            if k.lower().encode() not in present]
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, with_headers)


# -- serving ------------------------------------------------------------------------------

def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one); EnvironmentProblem when taken."""
    from ..errors import EnvironmentProblem

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise EnvironmentProblem(f"cannot listen on {host!r}: {e.strerror}", hint="pass --host 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError as e:
        sock.close()
        raise EnvironmentProblem(f"cannot listen on {host}:{port}: {e.strerror}",
                                 hint="another program uses that port: pass --port with another, "
                                      "or --port 0 for any free one") from None
    sock.set_inheritable(False)
    return sock


class UiServer:
    """The app served by uvicorn on a thread of this process; `stop` ends it, its run and
    its listeners, and joins every thread it started."""

    def __init__(self, project: UiProject, host: str = "127.0.0.1", port: int = 8765, jobs: int = 0):
        self.ui = Ui(project, host, jobs)
        self.sock = bind(host, port)
        self.ui.port = self.sock.getsockname()[1]
        self.host = host
        self.server = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in WILDCARD else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.ui.port}/"

    @property
    def token(self) -> str:
        return self.ui.token

    def start(self, timeout: float = 10.0) -> None:
        import uvicorn

        config = uvicorn.Config(make_app(self.ui), log_config=None, log_level="warning", access_log=False,
                                lifespan="off", ws="none", http="h11", loop="asyncio",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="amelia-ui-server", daemon=True)
        self.thread.start()
        self.ui.follower.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                from ..errors import EnvironmentProblem

                raise EnvironmentProblem(f"the ui server did not start: {self.error or 'timed out'}")
            time.sleep(0.01)

    def _serve(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as e:  # noqa: BLE001 - said by start() or wait()
            self.error = e

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self) -> None:
        """Cancel the run (its steps stop as on Ctrl-C), end the listeners' streams, stop
        serving; idempotent."""
        self.ui.follower.stop()
        self.ui.control.stop()
        self.ui.chats.stop()  # answers being written end (not kept), their threads joined
        self.ui.broker.close()
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(10)
        self.sock.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
