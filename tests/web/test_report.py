"""`amelia report`: the command, and its page in a real browser (headless Chromium).

The page is opened from disk with every request but file:// refused and counted: a
report makes none. AMELIA_SCREENSHOTS=1 also writes docs/report.png (1280x800).
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest
from fakes import FakeOpenAI
from web.browser import browser, browser_page, open_file  # noqa: F401  (fixtures)
from web.story import ANSWER, EVIL, EVIL_ID, make_story, synthetic

from amelia import report

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    with FakeOpenAI(ANSWER) as srv:
        yield make_story(tmp_path_factory.mktemp("story"), srv)


# -- the command -------------------------------------------------------------------------

def test_report_of_the_last_run_goes_to_the_store_and_prints_its_path(story):
    r = story.amelia("report", check=0)
    assert r.stdout == f".amelia/reports/{story.runs[2]}.html\n" and r.stderr == ""
    doc = (story.root / r.stdout.strip()).read_text()
    assert doc.startswith("<!DOCTYPE html>") and f"Run <code>{story.runs[2]}</code>" in doc


def test_report_of_a_run_by_prefix_to_a_file(story):
    r = story.amelia("report", story.runs[0][:-2], "-o", "out/first.html", check=0)
    assert r.stdout == "out/first.html\n"
    doc = (story.root / "out/first.html").read_text()
    assert story.runs[0] in doc and "Notes v1" in doc and "Notes v2" not in doc


def test_report_with_the_pipeline_file_named(story, tmp_path):
    out = tmp_path / "r.html"
    r = story.amelia("report", "last", "-f", "amelia.yaml", "--output", str(out), check=0)
    assert r.stdout == f"{out}\n" and out.read_text().count('class="node ') == 4


def test_an_unknown_run_is_a_usage_error(story):
    r = story.amelia("report", "nope")
    assert r.returncode == 2 and "error: no run 'nope'" in r.stderr and "`amelia runs` lists them" in r.stderr
    near = story.runs[0][:-1] + ("0" if story.runs[0][-1] != "0" else "1")  # one character off
    r = story.amelia("report", near)
    assert r.returncode == 2 and f"did you mean '{story.runs[0]}'?" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_unwritable_output_is_an_environment_error(story):
    r = story.amelia("report", "-o", "build/static.txt/r.html")
    assert r.returncode == 4 and "cannot write build/static.txt/r.html" in r.stderr
    assert "Traceback" not in r.stderr


def test_no_runs_yet(project):
    project.pipeline("amelia: 1\nsteps:\n  a: {run: 'true'}\n")
    r = project.run("report")
    assert r.returncode == 2 and "error: no runs yet in this project" in r.stderr
    assert "run `amelia run` first" in r.stderr
    os.remove(project.root / "amelia.yaml")
    r = project.run("report")  # no pipeline file either: the project around here has no store
    assert r.returncode == 2 and "no runs yet" in r.stderr


def test_report_help(project):
    r = project.run("report", "--help", check=0)
    assert "-o, --output FILE" in r.stdout and "RUN is an id, a unique prefix, or `last`" in r.stdout


# -- in the browser --------------------------------------------------------------------------

def text_of(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def test_the_report_shows_each_step_with_its_state_and_output(story, browser_page):
    path = story.root / story.amelia("report", check=0).stdout.strip()
    visit = open_file(browser_page, path)
    page = browser_page
    assert visit.blocked == [] and visit.dialogs == [] and visit.errors == []
    assert all(u.startswith("file://") for u in visit.requests), visit.requests
    assert page.title() == f"amelia run {story.runs[2]} · amelia"
    # the graph: every node says its state in words, as a label for screen readers too
    for sid, state, mark in (("static", "cached", "↺"), ("gen", "ran", "✓"), ("writer", "ran", "✓"),
                             ("bad", "failed", "✗")):
        node = page.locator(f"#node-{sid}")
        assert node.get_attribute("aria-label") == f"{sid}: {state}"
        assert node.get_attribute("tabindex") == "0"
        assert f"{mark} {state}" in node.text_content()
        row = page.locator(f'tr[data-step="{sid}"]')
        assert row.locator("td").nth(0).inner_text().strip() == f"{mark} {state}"
    assert "unknown" in page.locator('tr[data-step="writer"]').inner_text()  # cost: no price known
    assert "openai/fake-model" in page.locator('tr[data-step="writer"]').inner_text()
    # a failed step is open, with its error and log tail
    bad = page.locator("#step-bad")
    assert bad.get_attribute("open") is not None
    assert "command exited with code 3" in bad.inner_text() and "oops" in bad.inner_text()
    assert "<b>bold</b>" in bad.locator("pre.log").inner_text()  # markup shown as text
    # the agent's output, opened from its node in the graph: markdown rendered
    writer = page.locator("#step-writer")
    assert not writer.locator(".md-h2").is_visible()
    page.locator("#node-writer").click()
    assert writer.get_attribute("open") is not None
    assert writer.locator(".md .md-h2").inner_text() == "The answer"
    assert writer.locator(".md em").first.inner_text() == "summary"
    assert EVIL in writer.locator(".md").inner_text() and visit.dialogs == []
    # the cached step's output, by keyboard from its node
    page.locator("#node-static").focus()
    page.keyboard.press("Enter")
    assert page.locator("#step-static").get_attribute("open") is not None
    assert page.locator("#step-static pre").first.inner_text().strip() == "static"
    # and by the table's link to it
    page.locator('tr[data-step="gen"] a').click()
    assert '"version": "v2"' in page.locator("#step-gen").inner_text()
    assert visit.blocked == [] and visit.errors == []


def test_nothing_from_outside_runs(tmp_path, browser_page):
    store = synthetic(tmp_path)
    out = tmp_path / "evil.html"
    out.write_text(report.render(store, None, "20260101-000000-beef"))
    store.close()
    visit = open_file(browser_page, out)
    page = browser_page
    page.locator("details.step").evaluate_all("ds => ds.forEach(d => d.open = true)")
    page.wait_for_timeout(200)
    assert visit.dialogs == [] and visit.errors == [] and visit.blocked == []
    body = page.locator("main").inner_text()
    assert EVIL in body and EVIL_ID in body and "evil <pipeline>" in body
    assert page.locator("main img, main script, main iframe").count() == 0
    assert page.locator('a[href^="javascript"]').count() == 0
    assert page.locator('a[href="https://example.org"]').count() == 1
    node = page.locator("svg.dag .node").first
    assert node.get_attribute("aria-label") == f"{EVIL_ID}: ran"
    node.click()  # its section opens although its id is full of markup
    assert page.locator("details.step").first.get_attribute("open") is not None


@pytest.mark.parametrize("width", [1280, 400])
def test_readable_at_full_and_narrow_width_in_light_and_dark(story, browser_page, width):
    path = story.root / story.amelia("report", check=0).stdout.strip()
    page = browser_page
    for scheme, background in (("light", "rgb(255, 255, 255)"), ("dark", "rgb(13, 17, 23)")):
        page.set_viewport_size({"width": width, "height": 800})
        page.emulate_media(color_scheme=scheme)
        open_file(page, path)
        page.locator("details.step").evaluate_all("ds => ds.forEach(d => d.open = true)")
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scroll
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == background
        assert page.locator("main h1").is_visible() and page.locator("svg.dag").is_visible()
        assert page.locator('th[scope="col"]', has_text="Reason").is_visible()


def _screenshot_story(base: Path, server) -> Path:
    """A pipeline such as a team would run, three times, for docs/report.png."""
    import subprocess
    import sys

    root = base / "site"
    root.mkdir()
    env = {**os.environ, "HOME": str(base), "NO_COLOR": "1", "OPENAI_API_KEY": "sk-test-0000"}

    def amelia(*args):
        return subprocess.run([sys.executable, "-m", "amelia", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=120)

    def write(version):
        (root / "amelia.yaml").write_text(textwrap.dedent(f"""\
            amelia: 1
            models:
              default: {{provider: openai, base_url: "{server.base_url}", model: gpt-4.1-mini, retries: 0}}
            agents:
              analyst: {{system: You are a careful analyst.}}
              architect: {{system: You design small systems.}}
            steps:
              collect-notes:
                run: "mkdir -p build && printf '# Notes\\n\\n- users want exports ({version})\\n' > build/notes.md"
                outputs: [build/notes.md]
              lint-docs:
                run: "mkdir -p build && echo 'docs: 0 problems' > build/lint.txt"
                outputs: [build/lint.txt]
              requirements:
                agent: analyst
                inputs: [build/notes.md]
                prompt: Write the requirements.
                output: build/requirements.md
              design:
                agent: architect
                inputs: [build/requirements.md]
                prompt: Propose a design.
                output: build/design.md
              test-suite:
                run: "echo 'collected 42 items'; echo 'FAILED tests/test_export.py::test_csv - AssertionError'; exit 1"
                needs: [design]
            """))

    write("v1")
    amelia("run")
    write("v2")
    amelia("run")
    return root / amelia("report").stdout.strip()


@pytest.mark.skipif(os.environ.get("AMELIA_SCREENSHOTS") != "1", reason="AMELIA_SCREENSHOTS=1 writes docs/report.png")
def test_screenshot_for_the_docs(tmp_path, browser_page):
    answer = ("## Requirements\n\n1. **Export** a report as CSV and JSON.\n2. Keep exports under 5 s "
              "for 10,000 rows.\n\n| Priority | Item |\n|---|---|\n| must | CSV export |\n")
    with FakeOpenAI(answer) as srv:
        path = _screenshot_story(tmp_path, srv)
    page = browser_page
    page.emulate_media(color_scheme="light")
    visit = open_file(page, path)
    assert visit.blocked == []
    page.screenshot(path=str(REPO / "docs" / "report.png"))
    assert re.match(rb"\x89PNG", (REPO / "docs" / "report.png").read_bytes()[:4])
