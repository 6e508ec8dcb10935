"""RAG end to end, as a user runs it: `amelia index`, `query`, `run` with sources, context
and retrieve steps (real fastembed, real embedded Qdrant; agent steps against the fake
OpenAI server on 127.0.0.1)."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import textwrap
import threading

import pytest
from fakes import FakeOpenAI

DOCS = {
    "docs/auth.md": "# Accounts\n\nA password reset link is sent by email and stays valid for 30 minutes.\n",
    "docs/billing.md": "# Billing\n\nInvoices are issued on the first day of each month in euros.\n",
    "docs/shipping.md": "# Shipping\n\nParcels leave the warehouse in Lyon within two working days.\n",
    "docs/drafts/secret.md": "# Draft\n\nThe unreleased pricing for the volcano edition.\n",
}


def pipeline(base_url: str = "http://127.0.0.1:9/v1", extra: str = "") -> str:
    return textwrap.dedent(f"""\
        amelia: 1
        models:
          default: {{provider: openai, base_url: "{base_url}", model: fake-model, retries: 0}}
        sources:
          specs:
            paths: ["docs/**/*.md"]
            exclude: ["docs/drafts/**"]
            chunk: {{size: 200, overlap: 40}}
        steps:
          ask:
            agent: {{system: You answer from the passages.}}
            context:
              - {{source: specs, query: "how long is a password reset link valid", top_k: 1}}
            prompt: |
              Passages:
              ${{{{ context }}}}
              Answer: how long is the reset link valid?
            output: build/answer.md
          hits:
            retrieve: {{source: specs, query: "invoices each month", top_k: 2}}
            output: build/hits.json
        """) + extra


def write_docs(project, docs=DOCS):
    for rel, text in docs.items():
        project.write(rel, text)


@pytest.fixture
def oai():
    with FakeOpenAI("thirty minutes") as srv:
        yield srv


def test_index_is_incremental_and_says_what_changed(project):
    write_docs(project)
    project.pipeline(pipeline())
    r = project.run("index", check=0)
    assert "indexed source:specs  3 added; 3 chunks embedded" in r.stdout
    assert "source  specs  3 documents indexed" in r.stdout
    r = project.run("index", check=0)  # nothing changed: the step is cached, nothing is loaded
    assert "0 ran, 1 cached" in r.stdout and "indexed" not in r.stdout.split("source  specs")[0]
    project.write("docs/billing.md", "# Billing\n\nInvoices are issued quarterly now.\n")
    (project.root / "docs/shipping.md").unlink()
    project.write("docs/drafts/other.md", "# Another draft\n")  # excluded: no change
    r = project.run("index", "--json", check=0)
    events = [json.loads(line) for line in r.stdout.splitlines()]
    done = [e for e in events if e.get("type") == "source_indexed"]
    assert len(done) == 1
    e = done[0]
    assert (e["added"], e["changed"], e["removed"], e["unchanged"]) == (0, 1, 1, 1)
    assert e["chunks_embedded"] == 1 and e["chunks_total"] == 2
    assert events[-1] == {"type": "sources", "sources": [
        {"source": "specs", "documents": 2, "skipped": 0, "indexed": True, "collection": e_collection(project)}]}


def e_collection(project) -> str:
    digest = json.loads(project.read(".amelia/qdrant/amelia/digests/specs.json"))
    return digest["collection"]


def test_query_finds_the_right_document(project):
    write_docs(project)
    project.pipeline(pipeline())
    r = project.run("query", "specs", "reset link", check=4)  # not indexed yet
    assert "source 'specs' is not indexed yet" in r.stderr and "amelia index --source specs" in r.stderr
    project.run("index", check=0)
    r = project.run("query", "specs", "when do parcels leave the warehouse", "-k", "1", check=0)
    assert r.stdout.startswith("1. docs/shipping.md › Shipping")
    hits = json.loads(project.run("query", "specs", "monthly invoices in euros", "--json", check=0).stdout)
    assert hits[0]["name"] == "docs/billing.md" and len(hits) == 3
    assert all("volcano" not in h["text"] for h in hits)  # the excluded draft is not indexed
    r = project.run("query", "spec", "x", check=2)
    assert "unknown source 'spec'" in r.stderr and "did you mean 'specs'?" in r.stderr


def test_a_step_reruns_only_when_what_it_retrieved_changed(project, oai):
    write_docs(project)
    project.pipeline(pipeline(oai.base_url))
    r = project.run("run", check=0)
    assert len(oai.requests) == 1
    prompt = oai.requests[0].body["messages"][-1]["content"]
    assert "[1] docs/auth.md › Accounts\n# Accounts\n\nA password reset link" in prompt
    assert "Billing" not in prompt  # top_k 1
    assert json.loads(project.read("build/hits.json"))["hits"][0]["name"] == "docs/billing.md"
    # An unrelated document changes: the source is indexed again, the retrieval runs again,
    # and finds the same passage: the agent stays cached.
    project.write("docs/shipping.md", "# Shipping\n\nParcels leave from Marseille now.\n")
    r = project.run("run", check=0)
    assert "ok      source:specs" in r.stdout and "ok      context:ask" in r.stdout
    assert "run     ask" not in r.stdout
    assert len(oai.requests) == 1
    # The passage it reads changes: it runs again, with the new text.
    project.write("docs/auth.md", "# Accounts\n\nA password reset link stays valid for 10 minutes.\n")
    project.run("run", check=0)
    assert len(oai.requests) == 2
    assert "10 minutes" in oai.requests[1].body["messages"][-1]["content"]
    r = project.run("run", check=0)
    assert "0 ran" in r.stdout


def test_a_noop_run_imports_neither_qdrant_nor_fastembed(project, oai):
    write_docs(project)
    project.pipeline(pipeline(oai.base_url))
    project.run("run", check=0)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "amelia", "run"], cwd=project.root,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "0 ran" in proc.stdout, proc.stdout + proc.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & {"qdrant_client", "fastembed", "onnxruntime", "docling", "langgraph"}


def test_deleting_the_store_indexes_again_instead_of_restoring(project):
    write_docs(project)
    project.pipeline(pipeline())
    project.run("index", check=0)
    shutil.rmtree(project.root / ".amelia/qdrant")
    plan = project.run("plan", check=0).stdout
    assert "run     source:specs" in plan and "output .amelia/qdrant/amelia/digests/specs.json is missing" in plan
    r = project.run("index", check=0)
    assert "3 added; 3 chunks embedded" in r.stdout
    assert project.run("query", "specs", "parcels", "-k", "1", check=0).stdout.startswith("1. docs/shipping.md")


def test_bad_files_are_skipped_with_a_warning_and_the_rest_indexed(project):
    write_docs(project)
    (project.root / "docs/binary.md").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    (project.root / "docs/broken.md").write_bytes(b"%PDF-1.4\n%garbage, no objects\n")
    project.pipeline(pipeline())
    r = project.run("index", check=0)
    assert "warning source:specs  skipped docs/binary.md:" in r.stdout
    assert "warning source:specs  skipped docs/broken.md:" in r.stdout
    assert "3 added, 2 skipped" in r.stdout
    assert "source  specs  3 documents indexed, 2 skipped" in r.stdout


def test_a_pdf_says_it_was_read_without_layout_models(project):
    from rag import corpus

    write_docs(project)
    corpus.write_pdf(project.root / "docs", "manual.pdf", "The volcano gauge reads pressure in bar.")
    project.pipeline(pipeline().replace('"docs/**/*.md"', '"docs/**/*.md", "docs/*.pdf"'))
    r = project.run("index", check=0)
    assert "warning source:specs  docs/manual.pdf: PDF text without layout analysis" in r.stdout
    assert project.run("query", "specs", "volcano gauge pressure", "-k", "1", check=0).stdout.startswith(
        "1. docs/manual.pdf")


class _Pages(http.server.BaseHTTPRequestHandler):
    pages: dict = {}
    hits: list = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        body = self.pages.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_url_sources_are_fetched_once_and_again_with_refresh(project):
    _Pages.pages = {"/guide": b"<html><body><h1>Guide</h1><p>The kettle boils water in ninety seconds.</p></body></html>"}
    _Pages.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        project.pipeline(textwrap.dedent(f"""\
            amelia: 1
            sources:
              web:
                urls: ["{base}/guide", "{base}/missing"]
            steps:
              kettle:
                retrieve: {{source: web, query: kettle}}
                output: kettle.json
            """))
        r = project.run("index", check=0)
        assert f"warning source:web  {base}/missing: HTTP 404" in r.stdout
        assert sorted(_Pages.hits) == ["/guide", "/missing"]
        assert project.run("query", "web", "kettle", "-k", "1", check=0).stdout.startswith(f"1. {base}/guide")
        project.run("index", check=0)
        assert len(_Pages.hits) == 2  # not fetched again
        _Pages.pages["/guide"] = b"<html><body><h1>Guide</h1><p>The kettle now takes two minutes.</p></body></html>"
        r = project.run("index", "--refresh", check=0)
        assert "1 changed" in r.stdout
        assert "two minutes" in project.run("query", "web", "kettle", "-k", "1", check=0).stdout
    finally:
        server.shutdown()


def test_a_fastembed_model_that_is_not_on_this_machine_stops_the_run_before_any_step(project, tmp_path):
    write_docs(project)
    project.pipeline(pipeline().replace("chunk: {size: 200, overlap: 40}",
                                        "chunk: {size: 200, overlap: 40}\n    model: BAAI/bge-small-en-v1.5"))
    r = project.run("index", env={"FASTEMBED_CACHE_PATH": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "1"},
                    check=4)
    assert "embedding model 'BAAI/bge-small-en-v1.5' is not in fastembed's local cache" in r.stderr
    assert "(needed by source:specs)" in r.stderr and "Amelia never downloads models" in r.stderr
    assert "run     source:specs" not in r.stdout  # said before any step started


def test_a_source_path_may_use_a_param(project):
    project.write("docs/en/a.md", "# Kettles\n\nThe kettle boils water.\n")
    project.write("docs/fr/a.md", "# Bouilloires\n\nLa bouilloire chauffe l'eau.\n")
    project.pipeline(textwrap.dedent("""\
        amelia: 1
        params:
          lang: {type: string, default: en}
        sources:
          docs: {paths: ["docs/${{ params.lang }}/*.md"]}
        """))
    r = project.run("index", check=0)
    assert "1 added" in r.stdout and "source  docs  1 document indexed" in r.stdout
    assert project.run("query", "docs", "kettle", "-k", "1", check=0).stdout.startswith("1. docs/en/a.md")
