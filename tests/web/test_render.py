"""amelia.web: the view of a run (read from real runs and a real store), the DAG layout and
its SVG, and the HTML (escaping, markdown, structure)."""

from __future__ import annotations

import dataclasses
import json
import re
import time

import pytest
from fakes import FakeOpenAI
from web.story import ANSWER, EVIL, EVIL_ID, make_story, synthetic

from amelia.web import dag, html, view
from amelia.web.markdown import render as markdown


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    with FakeOpenAI(ANSWER) as srv:
        yield make_story(tmp_path_factory.mktemp("story"), srv)


@pytest.fixture
def store(story):
    s = story.store()
    yield s
    s.close()


def steps_of(v: dict) -> dict:
    return {s["id"]: s for s in v["steps"]}


# -- view --------------------------------------------------------------------------------

def test_states_reasons_and_totals_of_a_run(story, store):
    v = view.run_view(store, story.pipeline(), story.runs[2])
    s = steps_of(v)
    assert [x["id"] for x in v["steps"]] == ["static", "gen", "writer", "bad"]  # the file's order
    assert {k: x["state"] for k, x in s.items()} == {
        "static": "cached", "gen": "ran", "writer": "ran", "bad": "failed"}
    assert s["gen"]["reason"] == "definition changed (run)" and s["gen"]["duration"] > 0
    assert s["static"]["reason"] == "inputs unchanged" and s["static"]["duration"] is None
    assert s["writer"]["needs"] == ["gen"] and s["bad"]["needs"] == ["gen"]
    assert s["gen"]["description"] == "Notes and data for the writer"
    assert v["status"] == "failed" and v["counts"] == {"cached": 1, "ran": 2, "failed": 1}
    assert v["duration"] > 0 and v["argv"] == ["run"]
    json.dumps(v)  # JSON-ready


def test_an_agent_steps_tokens_model_and_cost(story, store):
    v = view.run_view(store, story.pipeline(), story.runs[2])
    w = steps_of(v)["writer"]
    assert w["kind"] == "agent" and w["model"] == "openai/fake-model" and w["calls"] == 1
    assert w["tokens"]["input"] > 0 and w["tokens"]["output"] > 0
    assert w["cost"] is None  # no price known for fake-model
    assert v["totals"] == {"input_tokens": w["tokens"]["input"], "output_tokens": w["tokens"]["output"],
                           "cost": None, "calls": 1}
    answer = w["outputs"][0]
    assert answer["path"] == "build/answer.md" and answer["kind"] == "markdown"
    assert "## The answer" in answer["text"]


def test_a_cached_agent_step_has_its_model_and_no_tokens(story, store):
    w = steps_of(view.run_view(store, story.pipeline(), story.runs[1]))["writer"]
    assert w["state"] == "cached" and w["calls"] == 0 and w["tokens"] == {"input": 0, "output": 0}
    assert w["model"] == "openai/fake-model"  # from the pipeline: it made no call this run
    assert "## The answer" in w["outputs"][0]["text"]


def test_an_old_runs_output_is_read_from_the_store_not_the_disk(story, store):
    assert "Notes v2" in (story.root / "build/notes.md").read_text()
    gen = steps_of(view.run_view(store, story.pipeline(), story.runs[0]))["gen"]
    out = {o["path"]: o for o in gen["outputs"]}
    assert out["build/notes.md"]["text"].startswith("# Notes v1")
    data = out["build/data.json"]
    assert data["kind"] == "json" and data["text"] == json.dumps({"version": "v1", "n": [1, 2]}, indent=2)
    new = steps_of(view.run_view(store, story.pipeline(), story.runs[2]))["gen"]
    assert new["outputs"][1]["text"].startswith("# Notes v2")


def test_a_failed_steps_error_and_log_tail(story, store):
    bad = steps_of(view.run_view(store, story.pipeline(), story.runs[2]))["bad"]
    assert bad["error"] == "command exited with code 3" and bad["exit_code"] == 3
    assert bad["log_tail"].splitlines() == ["first line of the log", "sk-live-not-a-secret <b>bold</b>", "oops"]
    assert bad["outputs"] == []


def test_a_secret_in_a_log_is_redacted(story, store):
    from amelia.safetext import add_secret

    add_secret("sk-live-not-a-secret")
    bad = steps_of(view.run_view(store, story.pipeline(), story.runs[2]))["bad"]
    assert "sk-live" not in bad["log_tail"] and "[redacted] <b>bold</b>" in bad["log_tail"]


def test_the_log_tail_is_the_last_lines(tmp_path):
    from amelia.store import Store

    store = Store(str(tmp_path))
    logs = tmp_path / ".amelia/logs/r1"
    logs.mkdir(parents=True)
    (logs / "a%2Fb.log").write_text("".join(f"line {i}\n" for i in range(10000)))
    tail = view.log_tail(store, "r1", "a/b").splitlines()
    assert len(tail) == view.TAIL_LINES and tail[-1] == "line 9999" and tail[0] == "line 9940"
    assert view.log_tail(store, "r1", "nothing") == ""
    store.close()


def test_steps_the_run_did_not_touch_are_pending(story, store):
    p = story.pipeline()
    later = dataclasses.replace(p.step("gen"), id="later", needs=("bad",))
    p2 = dataclasses.replace(p, steps=p.steps + (later,))
    s = steps_of(view.run_view(store, p2, story.runs[2]))
    assert s["later"]["state"] == "pending" and s["later"]["outputs"] == [] and s["later"]["needs"] == ["bad"]


def test_without_the_pipeline_the_history_alone_is_shown(story, store):
    p = dataclasses.replace(story.pipeline(), name="another")  # another file's pipeline: not used
    for pipeline in (None, p):
        s = steps_of(view.run_view(store, pipeline, story.runs[2]))
        assert {k: x["state"] for k, x in s.items()} == {
            "static": "cached", "gen": "ran", "writer": "ran", "bad": "failed"}
        assert s["writer"]["kind"] == "agent" and s["writer"]["needs"] == ["gen"]  # from its record
        assert s["bad"]["kind"] == "" and s["writer"]["model"] == "openai/fake-model"


def test_an_unknown_run_is_a_key_error(store):
    with pytest.raises(KeyError):
        view.run_view(store, None, "nope")


def test_outputs_of_every_kind_and_prices(tmp_path):
    store = synthetic(tmp_path)
    v = view.run_view(store, None, "20260101-000000-beef")
    s = steps_of(v)
    evil = s[EVIL_ID]
    assert evil["cost"] == pytest.approx(0.02) and evil["model"] == "anthropic/claude-x"
    assert v["totals"] == {"input_tokens": 1500, "output_tokens": 300, "cost": pytest.approx(0.02), "calls": 2}
    outs = {o["path"]: o for o in evil["outputs"] + s["pics"]["outputs"] + s["gone"]["outputs"]}
    assert outs["out/evil.json"]["kind"] == "json" and '\n  "b": [\n' in outs["out/evil.json"]["text"]
    assert "\\x1b]0;title\\x07" in outs["out/evil.md"]["text"]  # a control sequence shown, not kept
    assert outs["out/pic.png"] == {"path": "out/pic.png", "kind": "binary", "text": "binary, 17 bytes",
                                   "truncated": False}
    assert outs["out/dir/"]["kind"] == "directory" and outs["out/dir/"]["text"] == "1 file\nx.txt"
    assert outs["out/gone.txt"].get("missing") and "no longer in the store" in outs["out/gone.txt"]["text"]
    assert s["pics"]["needs"] == [EVIL_ID] and s["boom"]["error"].startswith("command failed: <script>")
    store.close()


def test_a_long_output_is_cut(tmp_path):
    from amelia.store import Store

    store = Store(str(tmp_path))
    digest = store.objects.put_bytes(("é" * 1000).encode())  # 2 bytes each: a cut inside one
    out = view.output_view(store, "big.txt", digest, cap=1001)
    assert out["kind"] == "text" and out["truncated"] and out["text"].startswith("é" * 500)
    store.close()


def test_pipeline_view(story):
    pv = view.pipeline_view(story.pipeline())
    assert pv["name"] == "amelia" and [s["id"] for s in pv["steps"]] == ["static", "gen", "writer", "bad"]
    assert pv["steps"][2] == {"id": "writer", "kind": "agent", "needs": ["gen"], "description": "",
                              "target": ""}


# -- dag -------------------------------------------------------------------------------------

def nodes(*ids, state="ran"):
    return [{"id": i, "kind": "run", "state": state, "label": i} for i in ids]


def test_layers_are_longest_paths():
    edges = [("a", "b"), ("b", "c"), ("a", "c"), ("c", "d"), ("x", "d")]
    assert dag.layers(["a", "b", "c", "d", "x"], edges) == {"a": 0, "b": 1, "c": 2, "d": 3, "x": 0}


def test_a_cycle_does_not_loop_forever():
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
    col = dag.layers(["a", "b", "c", "d"], edges)
    assert col == {"a": 0, "b": 1, "c": 2, "d": 3}
    svg = dag.dag_svg(nodes("a", "b", "c", "d"), edges)
    assert svg.count('class="edge"') == 4 and svg.count('class="node') == 4


def test_each_node_is_focusable_labelled_and_says_its_state_in_words():
    svg = dag.dag_svg([{"id": "build", "kind": "run", "state": "failed", "label": "build"}], [])
    assert '<g class="node state-failed" id="node-build" data-step="build" tabindex="0" role="img" ' \
           'aria-label="build: failed">' in svg
    assert "<title>build (run): failed</title>" in svg and ">✗ failed · run</text>" in svg


def test_a_long_id_is_cut_in_its_label_and_whole_in_its_title():
    long_id = "a-very-long-step-identifier-that-goes-on-and-on"
    svg = dag.dag_svg(nodes(long_id), [])
    assert f"<title>{long_id} (run): ran</title>" in svg
    assert f'>{long_id[:dag.MAX_LABEL - 1]}…</text>' in svg


def test_markup_in_ids_is_escaped_and_css_ids_are_distinct():
    svg = dag.dag_svg(nodes(EVIL_ID, "a_b", "a/b"), [(EVIL_ID, "a_b")])
    assert "<script>" not in svg and "<img" not in svg and "&lt;script&gt;" in svg
    ids = re.findall(r' id="(node-[^"]*)"', svg)
    assert len(ids) == 3 and len(set(ids)) == 3 and all(re.fullmatch(r"node-[A-Za-z0-9_-]+", i) for i in ids)
    assert dag.css_id("a_b") != dag.css_id("a/b")


def test_the_layout_is_deterministic_and_ignores_unknown_edges():
    ns = nodes("a", "b", "c")
    one = dag.dag_svg(ns, [("a", "b"), ("a", "zz"), ("b", "b"), ("a", "b")])
    assert one == dag.dag_svg(ns, [("a", "b"), ("a", "zz"), ("b", "b"), ("a", "b")])
    assert one.count('class="edge"') == 1


def test_barycentre_ordering_uncrosses_edges():
    # b2 feeds c1, b1 feeds c2: in file order the edges cross; sorted, they do not
    xy, *_ = dag.layout(nodes("a", "b1", "b2", "c2", "c1"),
                        [("a", "b1"), ("a", "b2"), ("b1", "c1"), ("b2", "c2")])
    assert (xy["b1"][1] < xy["b2"][1]) == (xy["c1"][1] < xy["c2"][1])


@pytest.mark.parametrize("shape", ["chain", "wide", "random"])
def test_three_hundred_steps_lay_out_fast(shape):
    import random

    ids = [f"s{i}" for i in range(300)]
    if shape == "chain":
        edges = list(zip(ids, ids[1:]))
    elif shape == "wide":
        edges = [("s0", i) for i in ids[1:]]
    else:
        rnd = random.Random(7)
        edges = [(ids[rnd.randrange(i)], ids[i]) for i in range(1, 300) for _ in range(2)]
    start = time.monotonic()
    svg = dag.dag_svg(nodes(*ids), edges)
    assert time.monotonic() - start < 2.0
    assert svg.count('class="node') == 300
    xy, w, h, _ = dag.layout(nodes(*ids), edges)
    assert len({(round(x), round(y)) for x, y in xy.values()}) == 300  # no two nodes on one spot


# -- html ------------------------------------------------------------------------------------

def test_esc():
    assert html.esc('<a href="x">&\'') == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
    assert html.esc(None) == ""


def test_page_is_self_contained_with_a_strict_policy():
    doc = html.page("t <x>", "<p>hi</p>", script="var a=1;", meta={"amelia-token": 'tok"en'})
    assert doc.startswith("<!DOCTYPE html>") and "<title>t &lt;x&gt;</title>" in doc
    assert '<meta name="amelia-token" content="tok&quot;en">' in doc
    assert '<main id="main">' in doc and 'href="#main"' in doc
    assert "prefers-color-scheme:dark" in doc and ":focus-visible" in doc
    nonce = re.search(r"script-src 'nonce-([^']+)'", doc).group(1)
    assert f'<script nonce="{nonce}">var a=1;</script>' in doc
    assert "default-src 'none'" in doc
    assert not re.search(r"<link|\ssrc=|@import|url\(", doc)  # nothing to load


def test_markdown_is_rendered_without_html_images_or_unsafe_links():
    out = markdown("# T\n\n" + EVIL + "\n\n![i](http://evil.example/i.png) [j](javascript:alert(1)) "
                   "[d](data:text/html,x) [ok](https://example.org) [m](mailto:a@b.c)")
    assert "<h5 class=\"md-h1\">T</h5>" in out and "<script>" not in out and "<img" not in out
    assert "&lt;script&gt;" in out and "[j](javascript:alert(1))" in out  # left as text
    assert 'href="javascript' not in out and 'href="data' not in out
    assert '<a href="https://example.org" rel="noopener noreferrer nofollow">ok</a>' in out
    assert 'href="mailto:a@b.c"' in out


def test_run_body_structure(story, store):
    v = view.run_view(store, story.pipeline(), story.runs[2])
    body = html.run_body(v)
    assert "<table>" in body and body.count('<th scope="col"') == 8 and body.count('<th scope="row">') == 4
    for sid in ("static", "gen", "writer", "bad"):
        assert f'id="step-{sid}"' in body and f'id="node-{sid}"' in body and f'href="#step-{sid}"' in body
    assert 'class="step state-failed" id="step-bad" data-step="bad" open>' in body  # a failure is open
    assert "<h6 class=\"md-h2\">The answer</h6>" in body  # the agent's markdown rendered
    assert "openai/fake-model" in body and re.search(r"[1-9][\d,]* / [1-9]", body)  # its tokens
    assert "&lt;b&gt;bold&lt;/b&gt;" in body  # the log escaped
    assert '"version": "v2"' in body.replace("&quot;", '"')  # JSON pretty-printed
    assert "<script>" not in body and "<img" not in body


def test_run_page_escapes_everything_from_outside(tmp_path):
    store = synthetic(tmp_path)
    doc = html.run_page(view.run_view(store, None, "20260101-000000-beef"))
    assert doc.count("<script") == 1  # the page's own
    assert "<img" not in doc and not re.search(r"onerror=alert\(\d\)>", doc)
    assert "&lt;img src=x onerror=alert(3)&gt;" in doc  # the step id, shown
    assert "evil &lt;pipeline&gt;" in doc and "$0.0200" in doc and "1,500 / 300" in doc
    assert 'href="javascript' not in doc and "binary, 17 bytes" in doc
    store.close()


def test_long_text_is_folded():
    long = "\n".join(f"line {i}" for i in range(200))
    folded = html.output_html({"path": "a.txt", "kind": "text", "text": long, "truncated": True})
    assert '<details class="fold"><summary>output: 200 lines' in folded and "(cut:" in folded
    short = html.output_html({"path": "a.txt", "kind": "text", "text": "one", "truncated": False})
    assert "<details" not in short and "<pre><code" in short


def test_state_classes_cover_every_state():
    assert set(html.STATE_CLASSES) == set(view.STATES) == set(dag.STATE_MARK)
    assert all(f".state-{s}{{" in html.CSS for s in view.STATES)
