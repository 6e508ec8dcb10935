"""The local model's worker process: a crash in llama.cpp fails one step, never the run or
pytest; cancel and timeout kill it; it never outlives the process that started it.

The crashes are real: the worker kills itself with SIGSEGV (local_worker.CRASH_ENV), as a
llama.cpp build with the wrong CPU flags does in decode.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("xllamacpp")

from amelia.processes import CancelToken, ProcessGroups, StepCancelled, StepProcesses  # noqa: E402
from amelia.providers import ModelConfig, ProviderError, Request  # noqa: E402
from amelia.providers import local, local_worker  # noqa: E402

try:
    local.default_model_path()
except ProviderError:  # pragma: no cover - the [local] extra is not installed
    pytest.skip("the bundled local model is not installed", allow_module_level=True)

CRASHED = "the local model crashed: signal 11 (SIGSEGV)"


def make(max_tokens=20, timeout=600.0):
    return local.Provider(ModelConfig(name="default", provider="local", max_tokens=max_tokens,
                                      timeout=timeout), {})


def gone(pid: int, within: float = 5.0) -> bool:
    """The process has exited (a zombie whose parent has not reaped it yet counts)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # our own child: reap it, or it lingers as a zombie
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False


@pytest.fixture
def fresh():
    """No warm worker from an earlier test: the next call starts one (with this test's env)."""
    local.close_all()
    yield
    local.close_all()


@pytest.mark.parametrize("point", ["chat", "load"])
def test_a_crash_in_the_worker_is_a_clear_error_and_the_next_call_works(fresh, monkeypatch, point):
    monkeypatch.setenv(local_worker.CRASH_ENV, point)
    with pytest.raises(ProviderError) as e:
        make().complete(Request(system="", prompt="Hi"))
    assert e.value.message.startswith(CRASHED)
    assert not e.value.retryable  # a segfault is not a network blip
    monkeypatch.delenv(local_worker.CRASH_ENV)
    before = local.LOADS
    assert make(max_tokens=5).complete(Request(system="", prompt="Hi")).text
    assert local.LOADS == before + 1  # a new worker replaced the dead one


def test_a_crashing_local_model_fails_only_its_step(project):
    project.pipeline("""\
        amelia: 1
        models:
          default: {provider: local, max_tokens: 5}
        steps:
          ask:
            agent: {system: You are terse.}
            prompt: Say hi.
            output: hi.md
          count:
            run: echo 3 > n.txt
            output: n.txt
          after:
            run: cat n.txt > m.txt
            inputs: [n.txt]
            output: m.txt
        """)
    r = project.run("run", env={local_worker.CRASH_ENV: "chat"}, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert CRASHED in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert project.read("m.txt") == "3\n"  # the other steps ran
    assert not project.exists("hi.md")


def test_cancelling_the_step_kills_the_worker(fresh):
    p = make(max_tokens=2000)
    p.warm()
    w = local.worker(local.default_model_path())
    token = CancelToken()
    request = Request(system="", prompt="Write a very long story about the sea.",
                      processes=StepProcesses(ProcessGroups(), token))
    with pytest.raises(StepCancelled):
        p.complete(request, on_text=lambda _chunk: token.cancel("interrupted"))
    assert gone(w.pid) and not w.alive()
    assert token._callbacks == []  # no callback left behind to kill a later worker
    assert make(max_tokens=5).complete(Request(system="", prompt="Hi")).text


def test_a_cancelled_step_does_not_start_a_call(fresh):
    token = CancelToken()
    token.cancel("interrupted")
    before = local.LOADS
    with pytest.raises(StepCancelled):
        make().complete(Request(system="", prompt="Hi",
                                processes=StepProcesses(ProcessGroups(), token)))
    assert local.LOADS == before


def test_a_call_that_times_out_kills_the_worker(fresh):
    p = make(max_tokens=2000, timeout=0.3)
    p.warm()  # the load is not part of the call's time
    w = local.worker(local.default_model_path())
    start = time.monotonic()
    with pytest.raises(ProviderError, match="timed out after 0.3s") as e:
        p.complete(Request(system="", prompt="Write a very long story about the sea."))
    assert time.monotonic() - start < 5 and not e.value.retryable
    assert gone(w.pid)
    assert make(max_tokens=5).complete(Request(system="", prompt="Hi")).text


def test_an_exception_in_on_text_does_not_leave_half_an_answer_for_the_next_call(fresh):
    p = make(max_tokens=200)

    def boom(_chunk):
        raise RuntimeError("reporter failed")

    with pytest.raises(RuntimeError):
        p.complete(Request(system="", prompt="Tell a story."), on_text=boom)
    c = make(max_tokens=5).complete(Request(system="", prompt="Hi"))
    assert c.stop_reason in ("stop", "length") and c.usage.output_tokens <= 5


def test_the_worker_exits_when_the_process_that_started_it_dies(tmp_path):
    script = (
        "import sys, time\n"
        "from amelia.providers import local\n"
        "w = local.worker(local.default_model_path())\n"
        "print(w.pid, flush=True)\n"
        "time.sleep(60)\n")
    host = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        pid = int(host.stdout.readline())
        os.kill(pid, 0)  # alive while its parent is
        os.kill(host.pid, signal.SIGKILL)  # no atexit, no cleanup: the parent is just gone
        host.wait()
        assert gone(pid, within=5.0)
    finally:
        host.kill()
        host.wait()


def test_the_worker_is_stopped_when_amelia_exits(tmp_path):
    script = (
        "from amelia.providers import local\n"
        "w = local.worker(local.default_model_path())\n"
        "print(w.pid, flush=True)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True)
    assert gone(int(out.stdout), within=3.0)


def test_native_output_on_stdout_cannot_break_the_protocol(fresh):
    """The worker moves fd 1 to stderr: what llama.cpp prints there is no JSON line."""
    p = make(max_tokens=5)
    p.warm()
    w = local.worker(local.default_model_path())
    w.send({"op": "nope"})  # answered on the protocol channel, as an error line
    assert w.next(time.monotonic() + 10, 10, None) == {"error": "unknown op 'nope'",
                                                        "kind": "protocol"}
    assert p.complete(Request(system="", prompt="Hi")).text


def test_calls_from_threads_that_end_keep_the_worker(fresh):
    """Steps run on threads that come and go; the worker outlives them (no PDEATHSIG)."""
    box = {}

    def call():
        box["c"] = make(max_tokens=5).complete(Request(system="", prompt="Hi"))

    t = threading.Thread(target=call)
    t.start()
    t.join(60)
    w = local.worker(local.default_model_path())
    time.sleep(3 * local_worker.WATCH_EVERY)
    assert w.alive() and box["c"].text
