"""The ui's one live run: started on a thread under the project lock, its events fanned out
to the browsers listening on /events, cancelled on request.

No web framework here (plain threads and asyncio queues): the server wires it to routes.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

# event type → the step state it puts the step in (the run page's and dashboard's classes)
EVENT_STATES = {"step_started": "running", "step_cached": "cached", "step_completed": "ran",
                "step_failed": "failed", "step_skipped": "skipped", "step_cancelled": "cancelled"}
# a planned action → the state a step shows before it starts
PLANNED_STATES = {"run": "pending", "cached": "pending", "blocked": "blocked", "error": "failed"}


class Busy(Exception):
    """A run is going already (this ui's, or another process holds the project lock)."""


class Broker:
    """The engine's events, as JSON, to every SSE listener; and the current run's state, so a
    page that (re)connects starts from it. Thread-safe: the run thread publishes, the event
    loop's tasks listen."""

    def __init__(self):
        self.lock = threading.Lock()
        self.listeners: list = []  # (loop, asyncio.Queue)
        self.closed = False
        self.current: dict = {"run_id": "", "file": "", "status": "idle", "steps": {}, "error": ""}

    def state(self) -> dict:
        with self.lock:
            return json.loads(json.dumps(self.current))

    def listen(self, loop, q) -> bool:
        with self.lock:
            if self.closed:
                return False
            self.listeners.append((loop, q))
            return True

    def leave(self, q) -> None:
        with self.lock:
            self.listeners = [(lp, x) for lp, x in self.listeners if x is not q]

    def close(self) -> None:
        """The server stops: every listener's stream ends (None is the end)."""
        with self.lock:
            self.closed = True
            listeners, self.listeners = self.listeners, []
        for loop, q in listeners:
            _put(loop, q, None)

    def begin(self, file: str) -> None:
        with self.lock:
            self.current = {"run_id": "", "file": file, "status": "starting", "steps": {}, "error": ""}
        self.publish({"type": "ui_run_starting", "file": file})

    def end(self, status: str, error: str = "", run_id: str = "") -> None:
        with self.lock:
            self.current["status"] = status
            self.current["error"] = error
            self.current["run_id"] = self.current["run_id"] or run_id  # a no-op run has no events
        self.publish({"type": "ui_run_ended", "status": status, "error": error,
                      "run_id": self.current["run_id"]})

    def event(self, e) -> None:
        """A reporter on the run's bus: events arrive redacted (Bus.emit)."""
        self.event_dict(json.loads(json.dumps(e.to_dict(), default=str)))

    def event_dict(self, d: dict) -> None:
        """An event as its JSON form (from the bus, or a run's events.jsonl)."""
        with self.lock:
            cur = self.current
            if d["type"] == "run_started":
                cur["run_id"] = d["run_id"]
                cur["status"] = "running"
                cur["steps"] = {sid: PLANNED_STATES.get(action, "pending") for sid, action, _ in d["steps"]}
            elif d["type"] in EVENT_STATES:
                cur["steps"][d["step"]] = EVENT_STATES[d["type"]]
            elif d["type"] == "run_finished":
                cur["status"] = d["status"]
        self.publish(d)

    def publish(self, item: dict) -> None:
        with self.lock:
            listeners = list(self.listeners)
        for loop, q in listeners:
            _put(loop, q, item)


def _put(loop, q, item) -> None:
    try:
        loop.call_soon_threadsafe(q.put_nowait, item)
    except RuntimeError:  # that listener's loop is closed: it has gone
        pass


class Follower:
    """A run started elsewhere (`amelia run` in a terminal) shown live: while this ui runs
    nothing, the newest run that is `running` in the history is followed through the
    events its process writes to .amelia/logs/RUN/events.jsonl (reporters.EventsFileReporter),
    each one published as if this ui ran it."""

    POLL = 0.3  # seconds between looks for a run, and for new lines of one

    def __init__(self, store, broker: Broker, busy):
        self.store = store
        self.broker = broker
        self.busy = busy  # () -> bool: this ui's own run goes (its events come from its bus)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.ended: set = set()  # runs followed to their end

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="amelia-ui-follow", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def _loop(self) -> None:
        while not self.stopping.wait(self.POLL):
            if self.busy():
                continue
            try:
                runs = self.store.history.runs(1)
            except Exception:  # noqa: BLE001 - a busy or damaged state.db: look again later
                continue
            if runs and runs[0]["status"] == "running" and runs[0]["id"] not in self.ended:
                self._follow(runs[0]["id"], runs[0]["file"])

    def _follow(self, run_id: str, file: str) -> None:
        import os

        path = os.path.join(self.store.dir, "logs", run_id, "events.jsonl")
        self.broker.begin(file)
        offset, partial, quiet = 0, "", 0.0
        while not self.stopping.wait(self.POLL / 3):
            try:
                with open(path, encoding="utf-8") as f:
                    f.seek(offset)
                    data = f.read()
                    offset = f.tell()
            except FileNotFoundError:
                data = ""
            lines = (partial + data).split("\n")
            partial = lines.pop()  # a line not written whole yet
            quiet = 0.0 if data else quiet + self.POLL / 3
            for line in lines:
                try:
                    d = json.loads(line)
                except ValueError:
                    continue
                if d.get("run_id") != run_id or "type" not in d:
                    continue
                self.broker.event_dict(d)
                if d["type"] == "run_finished":
                    self._end(run_id, d.get("status", "ok"))
                    return
            if quiet >= 2.0:  # nothing new for a while: is it still running (or was it killed)?
                quiet = 0.0
                row = self._row(run_id)
                if row is not None and row["status"] != "running":
                    self._end(run_id, row["status"])
                    return

    def _row(self, run_id: str):
        try:
            return self.store.history.run(run_id)
        except Exception:  # noqa: BLE001
            return None

    def _end(self, run_id: str, status: str) -> None:
        self.ended.add(run_id)
        self.broker.end(status, run_id=run_id)


class Reporter:
    """What RunHooks.reporter gets: called with each event (already redacted by the bus)."""

    def __init__(self, broker: Broker):
        self.broker = broker

    def __call__(self, e) -> None:
        self.broker.event(e)


class _Null:
    """run_locked's text stream: the few lines it writes outside events (a removed orphan
    output, a no-op's summary) are not shown by the ui."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class RunControl:
    """One run at a time, on its own thread, under the project lock (taken per run, so a
    `amelia run` in a terminal works while the ui is idle)."""

    def __init__(self, store, broker: Broker, jobs: int = 0):
        self.store = store
        self.broker = broker
        self.jobs = jobs
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.scheduler = None
        self.cancel_signal = 0

    def busy(self) -> bool:
        with self.lock:
            return self.thread is not None

    def start(self, file: str, pipeline) -> None:
        """Run `pipeline` (resolved from `file`) now; Busy when a run goes or the lock is held."""
        from ..errors import LockHeld

        with self.lock:
            if self.thread is not None:
                raise Busy("a run started from this ui is going; cancel it or wait for it to end")
            try:
                self.store.lock.acquire()
            except LockHeld as e:
                raise Busy(e.message) from None
            self.scheduler = None
            self.cancel_signal = 0
            self.broker.begin(file)
            self.thread = threading.Thread(target=self._run, args=(file, pipeline), name="amelia-ui-run",
                                           daemon=True)
            self.thread.start()

    def cancel(self) -> bool:
        """Stop the current run's steps (as Ctrl-C does); False when none goes."""
        with self.lock:
            if self.thread is None:
                return False
            self.cancel_signal = signal.SIGINT
            scheduler = self.scheduler
        if scheduler is not None:
            scheduler.interrupt(signal.SIGINT)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """The server stops: cancel the run and wait for it to end (its lock is released)."""
        self.cancel()
        with self.lock:
            thread = self.thread
        if thread is not None:
            thread.join(timeout)

    def _attach(self, scheduler) -> None:
        with self.lock:
            self.scheduler = scheduler
            stop = self.cancel_signal
        if stop:  # cancelled before the scheduler existed
            scheduler.interrupt(stop)

    def _run(self, file: str, pipeline) -> None:
        from .. import api
        from ..errors import AmeliaError, Interrupted, StepsFailed

        status, error, run_id = "ok", "", ""
        opts = api.RunOptions(file=file, jobs=self.jobs, argv=("ui", file))
        hooks = api.RunHooks(reporter=Reporter(self.broker), on_scheduler=self._attach)
        try:
            result = api.run_locked(pipeline, self.store, opts, _Null(), time.time(), hooks)
            status, run_id = result.get("status", "ok"), result.get("run_id", "")
        except Interrupted:
            status = "cancelled"
        except StepsFailed as e:
            status, error = "failed", e.message
        except AmeliaError as e:
            status, error = "error", _plain(e)
        except Exception as e:  # noqa: BLE001 - the ui says it; the server goes on
            status, error = "error", f"{type(e).__name__}: {e}"
        finally:
            self.store.lock.release()
            # the embedded Qdrant store is one process's at a time: let go between runs
            # (as `watch` does), so `amelia query` works beside the ui
            vectors = sys.modules.get("amelia.rag.vectors")
            if vectors is not None:
                vectors.close_all()
        if self.cancel_signal and status != "error":
            status = "cancelled"
        with self.lock:  # ended before another start can begin
            self.thread = None
            self.scheduler = None
            self.broker.end(status, _redacted(error), run_id)


def _plain(e) -> str:
    return e.message + (f" ({e.hint})" if getattr(e, "hint", "") else "")


def _redacted(text: str) -> str:
    if not text:
        return text
    from ..safetext import redact

    return redact(text)
