"""The chat page of `amelia ui` in a real browser (headless Chromium via Playwright) and over
plain HTTP, with the fake OpenAI server as the model.

Each test serves a temporary project in this process (test_ui.serving: a free port, and at
the end no server, run or chat thread left and the port closed).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import sys
import textwrap

import pytest
from fakes import FakeOpenAI, Reply

from web.browser import browser, browser_page, open_url  # noqa: F401
from web.test_ui import post, request, serving, wait_for

ANSWER = "Paris is the capital of France."
EVIL = "<img src=x onerror=alert(1)>"


def pipeline(base_url: str, extra: str = "", key: str = "") -> str:
    key_env = f", api_key_env: {key}" if key else ""
    return textwrap.dedent(f"""\
        amelia: 1
        models:
          default: {{provider: openai, base_url: "{base_url}", model: fake-model, retries: 0{key_env}}}
          mini: {{provider: openai, base_url: "{base_url}", model: gpt-4o-mini, retries: 0}}
        """) + extra + textwrap.dedent("""\
        steps:
          a:
            run: echo a > a.txt
            output: a.txt
        """)


@pytest.fixture
def oai():
    with FakeOpenAI(ANSWER) as srv:
        yield srv


def sessions(server) -> list:
    return server.ui.project.store.state.chats.sessions()


def chat_cli(project, *args, input: str = ""):
    """`amelia chat ARGS` in a terminal's place (a plain stdin)."""
    proc = subprocess.run([sys.executable, "-m", "amelia", "chat", *args], cwd=project.root, input=input,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def ask(page, text: str) -> None:
    page.fill("#chat-message", text)
    page.press("#chat-message", "Enter")


def answered(page, n: int) -> None:
    """Until the n-th turn has its usage line (the answer is complete)."""
    page.wait_for_selector(f"#chat-log > li:nth-child({n}) .usage", timeout=10_000)


# -- in the browser -------------------------------------------------------------------------

def test_a_question_is_answered_as_it_streams_and_kept_as_the_terminal_keeps_it(project, oai,
                                                                                 browser_page):  # noqa: F811
    oai.enqueue(Reply(ANSWER, chunk_delay=0.12, usage={"input_tokens": 21, "output_tokens": 7}))
    with serving(project, pipeline(oai.base_url)) as server:
        visit = open_url(browser_page, server.url + "chat")
        page = browser_page
        assert page.locator("label[for=chat-message]").inner_text() == "Message"
        assert page.locator("#chat-model option:checked").inner_text().startswith("default (openai fake-model)")
        # every text the answer shows, as it changes: it grows chunk by chunk
        page.evaluate("""() => { window.__seen = []; new MutationObserver(() => {
            const t = document.querySelector('#chat-log .assistant .text');
            if (t) window.__seen.push(t.textContent); }).observe(document.getElementById('chat-log'),
            {childList: true, subtree: true, characterData: true}); }""")
        ask(page, "What is the capital of France?")
        answered(page, 1)
        answer = page.locator("#chat-log .assistant .text").first
        assert answer.inner_text() == ANSWER
        assert answer.get_attribute("aria-live") == "polite" and answer.get_attribute("aria-busy") == "false"
        seen = [s for s in page.evaluate("window.__seen") if s]
        partial = {s for s in seen if s != ANSWER}
        assert len(partial) >= 2 and all(ANSWER.startswith(s) for s in partial), seen
        assert page.locator("#chat-log .usage").inner_text() == "21 in / 7 out tokens · cost unknown"
        assert "21 in / 7 out tokens" in page.locator("#chat-status").inner_text()
        assert page.locator("#chat-message").input_value() == ""
        # kept in state.db as `amelia chat` keeps it, and listed by it
        [s] = sessions(server)
        assert s["turns"] == 1 and s["title"] == "What is the capital of France?" and s["model"] == "default"
        assert (s["input_tokens"], s["output_tokens"]) == (21, 7)
        listed = project.run("chat", "--list", check=0).stdout
        assert s["id"] in listed and "What is the capital of France?" in listed
        # the page is now the session's: listed beside, its address resumes it
        page.wait_for_selector(f'#chat-sessions a[href="/chat?session={s["id"]}"][aria-current=page]')
        assert page.url.endswith(f"/chat?session={s['id']}")
        # a second turn carries the first as history
        oai.reply = "Berlin."
        ask(page, "And Germany?")
        answered(page, 2)
        messages = oai.calls()[-1].body["messages"]
        assert [m["content"] for m in messages[1:]] == ["What is the capital of France?", ANSWER, "And Germany?"]
        # resumed: the earlier turns are on the page
        page.goto(server.url + f"chat?session={s['id']}")
        turns = page.locator("#chat-log > li")
        assert turns.count() == 2
        assert "What is the capital of France?" in turns.nth(0).inner_text()
        assert ANSWER in turns.nth(0).inner_text() and "21 in / 7 out tokens" in turns.nth(0).inner_text()
        assert "resumed: 2 earlier turns" in page.locator("#chat-where").inner_text()
        assert not visit.errors and not visit.blocked and not visit.dialogs


def test_a_session_goes_on_between_the_terminal_and_the_browser(project, oai, browser_page):  # noqa: F811
    with serving(project, pipeline(oai.base_url)) as server:
        chat_cli(project, "--model", "mini", input="First question?\n")
        [s] = sessions(server)
        open_url(browser_page, server.url + f"chat?session={s['id']}")
        page = browser_page
        assert "First question?" in page.locator("#chat-log").inner_text()
        assert page.locator("#chat-model").input_value() == "mini"  # the session's model
        oai.reply = "From the browser."
        ask(page, "Second question?")
        answered(page, 2)
        body = oai.calls()[-1].body
        assert body["model"] == "gpt-4o-mini"
        assert [m["content"] for m in body["messages"][1:]] == ["First question?", ANSWER, "Second question?"]
        # and back in the terminal: the browser's turn is part of the session
        oai.reply = "From the terminal."
        out = chat_cli(project, "--session", s["id"], input="Third question?\n").stdout
        assert "From the terminal." in out
        contents = [m["content"] for m in oai.calls()[-1].body["messages"][1:]]
        assert contents[2:4] == ["Second question?", "From the browser."]
        [again] = sessions(server)
        assert again["id"] == s["id"] and again["turns"] == 3


def test_model_text_is_shown_as_text_never_as_markup(project, oai, browser_page):  # noqa: F811
    oai.reply = f"Look: {EVIL} and <script>alert(2)</script> <b>bold</b>"
    with serving(project, pipeline(oai.base_url)) as server:
        visit = open_url(browser_page, server.url + "chat")
        page = browser_page
        ask(page, f"Say {EVIL}")
        answered(page, 1)
        assert EVIL in page.locator("#chat-log .assistant .text").inner_text()
        assert page.locator("#chat-log img, #chat-log script, #chat-log b").count() == 0
        # and from the store, rendered by the server
        page.goto(page.url)
        assert EVIL in page.locator("#chat-log .assistant .text").inner_text()
        assert f"Say {EVIL}" in page.locator("#chat-sessions").inner_text()
        assert page.locator("#chat-log img, #chat-sessions img, #chat-log b").count() == 0
        assert not visit.dialogs and not visit.errors


def test_stop_ends_the_answer_and_keeps_no_half_turn_and_one_answer_at_a_time(project, oai,
                                                                              browser_page):  # noqa: F811
    oai.enqueue(Reply("one two three four five six seven eight nine ten", chunk_delay=0.4))
    with serving(project, pipeline(oai.base_url)) as server:
        open_url(browser_page, server.url + "chat")
        page = browser_page
        ask(page, "Count slowly.")
        page.wait_for_selector("#chat-log .assistant .text:has-text('one')")
        assert page.locator("#chat-send").is_disabled() and page.locator("#chat-stop").is_enabled()
        [sid] = list(server.ui.chats.active)
        status, text = post(server, "/api/chat", {"session": sid, "message": "Again?"})
        assert status == 404  # not saved until its first answer is complete: no such session yet
        page.click("#chat-stop")
        page.wait_for_selector("#chat-log .assistant.stopped")
        assert "not kept" in page.locator("#chat-status").inner_text()
        assert page.locator("#chat-send").is_enabled()
        wait_for(lambda: not [t for t in server.ui.chats.threads if t.is_alive()], what="the call's end")
        assert sessions(server) == []  # no half turn
        # asked again, it is answered and kept
        oai.reply = "Ten."
        ask(page, "Count fast.")
        answered(page, 2)
        [s] = sessions(server)
        assert s["turns"] == 1 and s["title"] == "Count fast."


def test_a_second_question_in_a_session_while_one_is_answered_is_409(project, oai):
    with serving(project, pipeline(oai.base_url)) as server:
        assert post(server, "/api/chat", {"message": "First?"})[0] == 200
        [s] = sessions(server)
        oai.enqueue(Reply("slow answer coming", chunk_delay=0.3))
        got = {}
        t = threading.Thread(target=lambda: got.update(r=post(server, "/api/chat",
                                                                {"session": s["id"], "message": "Slow?"})))
        t.start()
        wait_for(lambda: server.ui.chats.busy(s["id"]), what="the answer to start")
        status, text = post(server, "/api/chat", {"session": s["id"], "message": "Meanwhile?"})
        assert status == 409 and "being written" in json.loads(text)["error"]
        t.join(15)
        lines = [json.loads(x) for x in got["r"][1].splitlines() if x.strip()]
        assert lines[0] == {"type": "session", "id": s["id"], "model": "default", "source": ""}
        assert lines[-1]["type"] == "done" and lines[-1]["answer"] == "slow answer coming"
        assert [x["type"] for x in lines[1:-1]] == ["text"] * 3
        assert sessions(server)[0]["turns"] == 2
        assert post(server, "/api/chat/stop", {"session": s["id"]})[0] == 409  # nothing going


# -- over HTTP ------------------------------------------------------------------------------

def test_a_post_without_the_token_is_refused_and_stores_nothing(project, oai):
    with serving(project, pipeline(oai.base_url)) as server:
        body = {"message": "Hi"}
        refused = [
            request(server, "POST", "/api/chat", body),
            request(server, "POST", "/api/chat", body, {"X-Amelia-Token": "guess"}),
            post(server, "/api/chat", body, Origin="http://evil.example"),
            post(server, "/api/chat", body, **{"Sec-Fetch-Site": "cross-site"}),
            request(server, "POST", "/api/chat/stop", {"session": "abcdef"}),
        ]
        assert [s for s, _ in refused] == [403] * 5, refused
        assert "token" in json.loads(refused[0][1])["error"]
        assert oai.calls() == [] and sessions(server) == []
        assert request(server, "GET", "/api/chat")[0] == 405  # a GET changes nothing
        # ids are looked up, never paths
        for sid in ("../../etc/passwd", "..%2Fstate.db", "ABC", "x" * 40):
            assert request(server, "GET", f"/chat?session={sid}")[0] == 404, sid
            assert post(server, "/api/chat", {"session": sid, "message": "Hi"})[0] == 404, sid
        assert post(server, "/api/chat", {"pipeline": "/etc/passwd", "message": "Hi"})[0] == 404
        assert post(server, "/api/chat", {"message": ""})[0] == 400
        assert post(server, "/api/chat", {"message": "Hi", "model": "nope"})[0] == 400
        assert oai.calls() == [] and sessions(server) == []


def test_a_missing_key_is_said_in_the_page_not_a_500(project, oai, monkeypatch):
    monkeypatch.delenv("CHAT_UI_TEST_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-chat-value")
    with serving(project, pipeline(oai.base_url, key="CHAT_UI_TEST_KEY")) as server:
        status, page = request(server, "GET", "/chat")
        assert status == 200
        said = "CHAT_UI_TEST_KEY is not set: model &#x27;default&#x27; (openai) needs it"
        assert re.search(r'<p id="chat-problem" role="alert">' + re.escape(said), page), page
        assert "put it in .env at the project root" in page
        status, text = post(server, "/api/chat", {"message": "Hi"})
        assert status == 422
        assert json.loads(text)["error"] == "CHAT_UI_TEST_KEY is not set: model 'default' (openai) needs it"
        assert post(server, "/api/chat", {"message": "Hi", "model": "mini"})[0] == 200  # another model answers
        assert len(oai.calls()) == 1
        for path in ("/chat", f"/chat?session={sessions(server)[0]['id']}", "/api/chat/sessions",
                     "/parts/chat/sessions"):
            assert "sk-test-secret-chat-value" not in request(server, "GET", path)[1]


def test_the_dashboard_links_the_chat_and_the_page_lists_sources_with_their_index(project, oai):
    extra = 'sources:\n  docs: {paths: ["docs/*.md"]}\n'
    project.write("docs/a.md", "# A\n\nText.\n")
    with serving(project, pipeline(oai.base_url, extra)) as server:
        assert 'href="/chat"' in request(server, "GET", "/")[1]
        status, page = request(server, "GET", "/chat")
        assert status == 200
        assert '<option value="docs">docs — not indexed · docs/*.md</option>' in page
        status, text = post(server, "/api/chat", {"message": "Hi", "source": "docs"})
        assert status == 422 and "not indexed yet" in json.loads(text)["error"]
        assert "amelia index --source docs" in json.loads(text)["hint"]
        assert post(server, "/api/chat", {"message": "Hi", "source": "nope"})[0] == 400
        assert oai.calls() == []



# -- grounded in a source -------------------------------------------------------------------

DOCS = {
    "docs/install.md": "# Install\n\n## Linux\n\nInstall the zebra package with apt; it holds the "
                       "binaries and the manual pages.\n",
    "docs/cooking.md": "# Cooking\n\nBoil the pasta for nine minutes in salted water, then drain it.\n",
}


def cite_install(body) -> str:
    """The fake model's answer: cite whichever excerpt is the install page."""
    for line in body["messages"][-1]["content"].splitlines():
        if line.startswith("[") and "docs/install.md" in line:
            return f"Use apt to install zebra {line.split()[0]}."
    return "I do not know."


def test_a_grounded_answer_lists_its_citations(project, oai, browser_page, monkeypatch):  # noqa: F811
    pytest.importorskip("amelia.rag.convert")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for rel, text in DOCS.items():
        project.write(rel, text)
    project.pipeline(pipeline(oai.base_url, 'sources:\n  docs: {paths: ["docs/*.md"]}\n'))
    project.run("index", "--source", "docs", check=0)
    oai.reply = cite_install
    with serving(project, pipeline(oai.base_url, 'sources:\n  docs: {paths: ["docs/*.md"]}\n')) as server:
        visit = open_url(browser_page, server.url + "chat")
        page = browser_page
        assert page.locator("#chat-source option[value=docs]").inner_text().startswith("docs — indexed")
        page.select_option("#chat-source", "docs")
        ask(page, "How do I install zebra on Linux?")
        answered(page, 1)
        prompt = oai.calls()[-1].body["messages"][-1]["content"]
        n = cite_install(oai.calls()[-1].body).split("[")[1].split("]")[0]
        assert "Install the zebra package" in prompt
        assert page.locator("#chat-log .assistant .text").inner_text() == f"Use apt to install zebra [{n}]."
        cites = page.locator("#chat-log ul.citations[aria-label=Citations] li").all_inner_texts()
        assert cites == [f"[{n}] docs/install.md › Install › Linux"]
        [s] = sessions(server)
        assert s["source"] == "docs"
        assert not visit.errors
    # the vector store was let go after the turn: another process may index now
    project.run("index", "--source", "docs", check=0)
