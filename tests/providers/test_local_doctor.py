"""`amelia doctor` generates a few tokens with the local model (in its worker), so a
llama.cpp build that loads the file and then crashes in decode fails the check."""

from __future__ import annotations

import pytest

pytest.importorskip("xllamacpp")

from amelia import doctor  # noqa: E402
from amelia.providers import ModelConfig, ProviderError  # noqa: E402
from amelia.providers import local, local_worker  # noqa: E402

try:
    local.default_model_path()
except ProviderError:  # pragma: no cover - the [local] extra is not installed
    pytest.skip("the bundled local model is not installed", allow_module_level=True)

PIPELINE = """\
    amelia: 1
    models:
      default: {provider: local}
    steps:
      a:
        agent: {system: x}
        prompt: Hi.
        output: a.md
    """


@pytest.fixture
def fresh():
    local.close_all()
    yield
    local.close_all()


def test_the_check_generates(fresh, tmp_path):
    check = doctor.local_model(ModelConfig(name="default", provider="local"), str(tmp_path))
    assert check.status == doctor.OK, check.detail
    assert check.detail.startswith("local: SmolLM2-135M-Instruct.Q4_1 generates (")
    n = int(check.detail.split("(")[1].split()[0])
    assert 0 < n <= doctor.LOCAL_TOKENS


def test_a_model_that_crashes_in_decode_fails_the_check(fresh, monkeypatch, tmp_path):
    monkeypatch.setenv(local_worker.CRASH_ENV, "chat")  # loads fine, dies generating
    check = doctor.local_model(ModelConfig(name="default", provider="local"), str(tmp_path))
    assert check.status == doctor.FAIL
    assert check.detail.startswith("the local model crashed: signal 11 (SIGSEGV)")


def test_doctor_command_fails_on_a_crashing_local_model(project):
    project.pipeline(PIPELINE)
    r = project.run("doctor", env={local_worker.CRASH_ENV: "chat"})
    assert r.returncode == 4, r.stdout + r.stderr
    assert "FAIL  model default" in r.stdout and "crashed: signal 11 (SIGSEGV)" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr
    r = project.run("doctor")
    line = next(x for x in r.stdout.splitlines() if "model default" in x)
    assert line.startswith("ok") and "generates (" in line
    assert any(x.startswith("ok") and "xllamacpp" in x for x in r.stdout.splitlines())
