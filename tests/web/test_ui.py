"""`amelia ui` in a real browser (headless Chromium via Playwright) and over plain HTTP.

Each test serves a temporary project in this process (UiServer on a free port) and stops
it at the end: the fixture checks that no server or run thread is left and the port is
closed. The CLI's own start and Ctrl-C are checked in a subprocess.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager

import pytest

from web.browser import browser, browser_page, open_url  # noqa: F401

SECRET = "sk-test-secret-value"

PIPELINE = """\
amelia: 1
name: demo
steps:
  prepare:
    description: waits a moment, then writes a file
    run: sleep 1.5 && mkdir -p build && echo hello > build/a.txt
    output: build/a.txt
  summary:
    run: tr a-z A-Z < build/a.txt > build/b.md
    inputs: [build/a.txt]
    output: build/b.md
"""

SLOW = """\
amelia: 1
name: slow
steps:
  wait:
    run: sleep 30 && echo done > done.txt
    output: done.txt
"""

LEAKY = """\
amelia: 1
name: leaky
steps:
  leak:
    run: mkdir -p build && echo "key=$OPENAI_API_KEY" | tee build/leak.txt
    output: build/leak.txt
"""


def _ui_threads() -> list:
    return [t for t in threading.enumerate() if t.name.startswith("amelia-ui")]


@contextmanager
def serving(project, text: str = PIPELINE, monkeypatch=None):
    """The ui over `project` (its amelia.yaml = text), on 127.0.0.1 and a free port."""
    from amelia.web.project import UiProject
    from amelia.web.server import UiServer

    project.pipeline(text)
    cwd = os.getcwd()
    os.chdir(project.root)
    before = set(threading.enumerate())
    ui_project = UiProject(str(project.root), str(project.root / "amelia.yaml"))
    server = UiServer(ui_project, "127.0.0.1", 0)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        ui_project.close()
        os.chdir(cwd)
    assert not _ui_threads(), "a server or run thread was left running"
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.05)  # the event loop's worker threads end with it
    assert not (set(threading.enumerate()) - before), f"threads left: {set(threading.enumerate()) - before}"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.ui.port), timeout=1).close()


def request(server, method: str, path: str, body=None, headers=None) -> tuple:
    """(status, text) of one request, the path sent as given (no normalising)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.ui.port, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def post(server, path: str, body=None, **headers) -> tuple:
    return request(server, "POST", path, body if body is not None else {},
                   {"X-Amelia-Token": server.token, **headers})


def wait_for(fn, timeout: float = 8.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def run_ended(server) -> dict:
    return wait_for(lambda: (s := json.loads(request(server, "GET", "/api/current")[1]))["status"]
                    not in ("starting", "running") and not s["busy"] and s, what="the run's end")


# -- the dashboard, live ------------------------------------------------------------------

def test_dashboard_lists_the_projects_steps(project, browser_page):  # noqa: F811
    with serving(project) as server:
        visit = open_url(browser_page, server.url)
        page = browser_page
        assert page.title().startswith("amelia ui")
        rows = page.locator("#dash-steps tbody tr")
        assert rows.count() == 2
        assert [rows.nth(i).get_attribute("data-step") for i in range(2)] == ["prepare", "summary"]
        assert "waits a moment" in rows.nth(0).inner_text()
        node = page.locator('svg.dag g.node[data-step="prepare"]')
        assert "state-pending" in node.get_attribute("class")
        assert page.locator(".run-panel b").inner_text() == "amelia.yaml"
        # the health panel is filled from /api/health by the page's script
        page.wait_for_selector("details.checks")
        checks = " ".join(page.locator("table.health").all_text_contents())
        assert "state.db" in checks and "key OPENAI_API_KEY" in checks
        assert page.locator("text=No runs yet.").count() == 1
        assert not visit.errors and not visit.blocked


def test_a_run_started_in_the_page_shows_each_step_change_without_a_reload(project, browser_page):  # noqa: F811
    with serving(project) as server:
        visit = open_url(browser_page, server.url)
        page = browser_page
        page.evaluate("window.__same_page = true")  # gone if anything reloads the page
        page.click("#run-start")
        running = page.wait_for_selector('svg.dag g.node[data-step="prepare"].state-running', timeout=5000)
        assert running.get_attribute("aria-label") == "prepare: running"
        assert "running" in page.locator('#dash-steps tr[data-step="prepare"] .badge').inner_text()
        assert page.locator("#run-start").is_disabled()
        page.wait_for_selector('svg.dag g.node[data-step="prepare"].state-ran', timeout=8000)
        page.wait_for_selector('svg.dag g.node[data-step="summary"].state-ran', timeout=5000)
        assert "ran" in page.locator('#dash-steps tr[data-step="summary"] .badge').inner_text()
        # the run's end: the status says so and the runs table is swapped in, still no reload
        page.wait_for_function("document.getElementById('run-status').textContent.includes(': ok')")
        page.wait_for_selector("#runs table.runs a[href^='/runs/']")
        assert page.evaluate("window.__same_page") is True
        assert (project.root / "build" / "b.md").read_text() == "HELLO\n"
        state = run_ended(server)
        assert state["status"] == "ok" and state["steps"] == {"prepare": "ran", "summary": "ran"}
        # the run's page: the report's body with the output
        page.click("#runs table.runs a[href^='/runs/']")
        page.wait_for_selector('svg.dag g.node[data-step="summary"].state-ran')
        assert "HELLO" in page.locator('details[data-step="summary"]').text_content()
        assert not visit.errors and not visit.blocked


def test_the_run_page_goes_live_and_shows_the_outputs_when_the_run_ends(project, browser_page):  # noqa: F811
    with serving(project) as server:
        assert post(server, "/api/runs", {"file": "amelia.yaml"})[0] == 202
        run_id = wait_for(lambda: json.loads(request(server, "GET", "/api/current")[1])["run_id"],
                          what="the run's id")
        visit = open_url(browser_page, f"{server.url}runs/{run_id}")
        page = browser_page
        page.evaluate("window.__same_page = true")
        page.wait_for_selector('svg.dag g.node[data-step="summary"].state-ran', timeout=8000)
        # once ended, the body is fetched again: outputs appear, still the same page
        page.wait_for_function("(document.querySelector('details[data-step=\"summary\"]')||{}).textContent"
                               "?.includes('HELLO')")
        assert page.evaluate("window.__same_page") is True
        assert not visit.errors and not visit.blocked


def test_cancel_stops_the_run_and_frees_the_project(project, browser_page):  # noqa: F811
    with serving(project, SLOW) as server:
        open_url(browser_page, server.url)
        page = browser_page
        page.click("#run-start")
        page.wait_for_selector('svg.dag g.node[data-step="wait"].state-running', timeout=5000)
        # one run at a time
        status, text = post(server, "/api/runs", {"file": "amelia.yaml"})
        assert status == 409 and "going" in json.loads(text)["error"]
        started = time.monotonic()
        page.click("#run-cancel")
        page.wait_for_selector('svg.dag g.node[data-step="wait"].state-cancelled', timeout=8000)
        assert time.monotonic() - started < 8
        page.wait_for_function("document.getElementById('run-status').textContent.includes('cancelled')")
        state = run_ended(server)
        assert state["status"] == "cancelled"
        assert not (project.root / "done.txt").exists()
        runs = server.ui.project.store.history.runs(5)
        assert [r["status"] for r in runs] == ["interrupted"]
        # the lock was let go: another process may run now
        from amelia.store.lock import ProjectLock

        lock = ProjectLock(str(project.root / ".amelia" / "lock"))
        lock.acquire()
        lock.release()


# -- safety -------------------------------------------------------------------------------

def test_a_post_without_the_token_is_refused_and_changes_nothing(project):
    with serving(project, SLOW) as server:
        page = request(server, "GET", "/")[1]
        assert re.search(r'<meta name="amelia-token" content="[^"]{32,}">', page)
        assert server.token in page
        refused = [
            request(server, "POST", "/api/runs", {"file": "amelia.yaml"}),
            request(server, "POST", "/api/runs", {"file": "amelia.yaml"}, {"X-Amelia-Token": "guess"}),
            request(server, "POST", "/api/runs", {"file": "amelia.yaml"},
                    {"X-Amelia-Token": server.token[:-1] + ("x" if server.token[-1] != "x" else "y")}),
            post(server, "/api/runs", {"file": "amelia.yaml"}, Origin="http://evil.example"),
            post(server, "/api/runs", {"file": "amelia.yaml"}, **{"Sec-Fetch-Site": "cross-site"}),
            request(server, "POST", "/api/runs/current/cancel"),
        ]
        assert [s for s, _ in refused] == [403] * 6, refused
        assert "token" in json.loads(refused[0][1])["error"]
        # a page on another name for this address (DNS rebinding) is refused, GET or POST
        assert request(server, "GET", "/", headers={"Host": f"evil.example:{server.ui.port}"})[0] == 403
        assert post(server, "/api/runs", {"file": "amelia.yaml"}, Host="evil.example")[0] == 403
        time.sleep(0.3)  # a run that was wrongly started would have begun by now
        assert not server.ui.control.busy()
        assert server.ui.project.store.history.runs(5) == []
        assert not (project.root / "done.txt").exists()
        # GET never changes anything: the start route refuses it
        assert request(server, "GET", "/api/runs/current/cancel")[0] in (404, 405)
        # the same request with the token (and its own origin) is accepted
        status, _ = post(server, "/api/runs", {"file": "amelia.yaml"}, Origin=server.url.rstrip("/"))
        assert status == 202
        assert post(server, "/api/runs/current/cancel")[0] == 202
        assert run_ended(server)["status"] == "cancelled"


def test_a_lock_held_by_another_process_is_a_409_with_its_message(project):
    from amelia.store.lock import ProjectLock

    with serving(project) as server:
        lock = ProjectLock(str(project.root / ".amelia" / "lock"))
        lock.acquire()
        try:
            status, text = post(server, "/api/runs", {"file": "amelia.yaml"})
        finally:
            lock.release()
        assert status == 409 and "another amelia process" in json.loads(text)["error"]
        assert not server.ui.control.busy()


def test_paths_outside_the_project_are_refused(project, tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text(PIPELINE)
    with serving(project) as server:
        for path in ("/runs/../../etc/passwd", "/runs/..%2F..%2Fetc%2Fpasswd", "/runs/%2e%2e",
                     "/api/runs/..%2F..%2Fetc%2Fpasswd", "/parts/run/..%2Fstate.db", "/../../etc/passwd",
                     "/?pipeline=../../etc/passwd", "/?pipeline=/etc/passwd", f"/?pipeline={outside}",
                     "/?pipeline=../outside.yaml", "/api/pipeline?name=/etc/passwd", "/etc/passwd",
                     "/.amelia/state.db", "/amelia.yaml"):
            status, text = request(server, "GET", path)
            assert status == 404, (path, status)
            assert "root:" not in text and "SQLite" not in text
        for name in ("/etc/passwd", "../outside.yaml", str(outside), "amelia.yaml/../amelia.yaml"):
            assert post(server, "/api/runs", {"file": name})[0] == 404, name
        assert post(server, "/api/runs", {"nope": 1})[0] == 400
        assert not server.ui.control.busy()


def test_no_secret_in_any_page_api_answer_or_event(project, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with serving(project, LEAKY) as server:
        events = []

        def listen():
            with urllib.request.urlopen(server.url + "events", timeout=10) as r:
                for line in r:
                    events.append(line.decode())
                    if "ui_run_ended" in events[-1]:
                        return

        listener = threading.Thread(target=listen)
        listener.start()
        wait_for(lambda: server.ui.broker.listeners, what="the listener")
        assert post(server, "/api/runs", {"file": "amelia.yaml"})[0] == 202
        listener.join(10)
        state = run_ended(server)
        assert state["status"] == "ok", state
        assert SECRET in (project.root / "build" / "leak.txt").read_text()  # the step did leak it
        run_id = state["run_id"]
        answers = ["".join(events)]
        for path in ("/", "/?pipeline=amelia.yaml", f"/runs/{run_id}", "/parts/runs", f"/parts/run/{run_id}",
                     "/api/pipelines", "/api/pipeline?name=amelia.yaml", "/api/runs", f"/api/runs/{run_id}",
                     "/api/current", "/api/health"):
            status, text = request(server, "GET", path)
            assert status == 200, path
            answers.append(text)
        assert "key=[redacted]" in answers[3]  # the run page shows the output, redacted
        assert any("OPENAI_API_KEY" in a for a in answers)  # health names the key, never its value
        for text in answers:
            assert SECRET not in text
            assert "test-secret" not in text


# -- the command --------------------------------------------------------------------------

def _start_cli(project, *args):
    proc = subprocess.Popen([sys.executable, "-m", "amelia", "ui", "--port", "0", *args], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line


def test_the_command_prints_its_url_and_stops_on_ctrl_c(project):
    project.pipeline(PIPELINE)
    proc, line = _start_cli(project)
    try:
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m and m.group(1) != "0", line
        with urllib.request.urlopen(m.group(0), timeout=5) as r:
            assert "prepare" in r.read().decode()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 130
    assert "Traceback" not in err and err == "amelia ui: stopped\n"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=1).close()


def test_another_host_warns_and_a_taken_port_is_an_environment_error(project):
    project.pipeline(PIPELINE)
    proc, line = _start_cli(project, "--host", "0.0.0.0")
    try:
        port = int(re.search(r":(\d+)/", line).group(1))
        taken = project.run("ui", "--port", str(port))  # the same port again: exit 4
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 143
    assert "warning: listening on 0.0.0.0" in err and "Traceback" not in err
    assert taken.returncode == 4 and f"cannot listen on 127.0.0.1:{port}" in taken.stderr
    assert "--port" in taken.stderr and "Traceback" not in taken.stderr


def test_a_noop_run_imports_no_web_server(project):
    project.pipeline(PIPELINE.replace("sleep 1.5 && ", ""))
    project.run("run", check=0)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "amelia", "run"], cwd=project.root,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "encodings" in imported  # the list was read
    assert not imported & {"starlette", "uvicorn", "anyio", "h11"}
    assert "amelia" in imported and not any(line.rstrip().endswith("amelia.web") for line in proc.stderr.splitlines())


def test_markup_from_the_store_never_runs_in_the_page(project, browser_page):  # noqa: F811
    """A hostile state.db (step ids, outputs and errors full of markup): shown, never run."""
    from web.story import EVIL_ID, synthetic

    synthetic(project.root).close()
    with serving(project) as server:
        for path in ("/", "/runs/20260101-000000-beef"):
            visit = open_url(browser_page, server.url + path.lstrip("/"))
            if path == "/":
                browser_page.wait_for_selector("details.checks")  # the page's script has run
            assert not visit.dialogs and not visit.errors and not visit.blocked, path
        assert EVIL_ID in browser_page.locator("table").first.inner_text()


def test_a_run_started_in_a_terminal_shows_live_too(project, browser_page):  # noqa: F811
    """`amelia run` in another process while the page is open: its events are followed from
    .amelia/logs/RUN/events.jsonl, and the node changes state without a reload."""
    with serving(project) as server:
        open_url(browser_page, server.url)
        page = browser_page
        page.evaluate("window.__same_page = true")
        proc = subprocess.Popen([sys.executable, "-m", "amelia", "run"], cwd=project.root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            page.wait_for_selector('svg.dag g.node[data-step="prepare"].state-running', timeout=8000)
            page.wait_for_selector('svg.dag g.node[data-step="summary"].state-ran', timeout=10000)
        finally:
            assert proc.wait(30) == 0
        assert page.evaluate("window.__same_page") is True
        state = run_ended(server)
        assert state["status"] == "ok" and state["steps"]["summary"] == "ran"
        # the ui's own run can start once the terminal's has ended (its lock released)
        assert post(server, "/api/runs", {"file": "amelia.yaml"})[0] == 202
        run_ended(server)
