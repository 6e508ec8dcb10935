"""RAG in the step graph at resolve time (resolve/sources.py): index steps made from
`sources:`, the retrieve steps made for agent steps with context, their edges, files,
keys, and the resolved pipeline's round trip through the resolve cache.

Nothing here indexes or retrieves: resolving imports neither qdrant_client nor fastembed.
"""

from __future__ import annotations

import json
import os
import re
import textwrap


from amelia.fingerprint import FileStates, fingerprint
from amelia.keys import cache_key, key_material
from amelia.rag.sources import DEFAULT_MODEL, Location, SourceConfig
from amelia.resolve.sources import context_path
from amelia.spec import Pipeline
from amelia.steps.retrieve import RetrieveConfig, RetrieveItem
from resolving import resolved
from resolving import touch as _touch






def keys_of(p: Pipeline) -> dict:
    """Each step's cache key as the planner computes it, with every upstream output
    unchanged (so a difference comes from the step's own definition or files)."""
    out = {}
    states = FileStates(p.root, {})
    for s in p.steps:
        fp = fingerprint(s, states, p)
        out[s.id] = cache_key(key_material(p, s, fp, {d: {} for d in s.data_needs}))
    return out


def touch(root, *rels):
    _touch(root, *rels, text="# {rel}\n")


PIPELINE = """\
amelia: 1
params:
  topic: {default: passwords}
sources:
  specs:
    paths: ["docs/*.md", "build/gen/*.md"]
    exclude: [docs/draft.md]
    chunk: {size: 400, overlap: 50}
  notes:
    paths: ["notes/*.txt"]
agents:
  analyst: {system: You analyse., sources: [specs, notes]}
steps:
  gen:
    run: mkdir -p build/gen && echo hi > build/gen/x.md
    output: build/gen/x.md
  ask:
    description: asks
    agent: analyst
    prompt: "Find the ${{ context }} requirements."
    output: build/ask.md
  design:
    agent: {system: You design.}
    prompt: "Design it from ${{ context }}"
    context:
      - {source: specs, query: "reset ${{ params.topic }} in ${{ steps.gen.output }}", top_k: 3,
         filter: {dir: docs}}
    output: build/design.md
  lookup:
    retrieve: {source: notes, query: what is left}
    output: build/hits.json
"""


def test_the_graph_of_a_pipeline_with_sources(tmp_path):
    touch(tmp_path, "docs/a.md", "docs/draft.md", "notes/n.txt")
    p = resolved(tmp_path, PIPELINE)
    kinds = {s.id: s.kind for s in p.steps}
    assert kinds == {"gen": "run", "source:specs": "index", "source:notes": "index",
                     "context:ask": "retrieve", "ask": "agent", "context:design": "retrieve",
                     "design": "agent", "lookup": "retrieve"}
    s = p.by_id()
    # a source whose paths match a step's output is indexed after that step, and reads it
    assert s["source:specs"].needs == ("gen",) and s["source:specs"].data_needs == ("gen",)
    assert s["source:notes"].needs == () and s["source:notes"].data_needs == ()
    # a context step reads the digests of its sources; a persona's step reads all of them
    assert s["context:ask"].data_needs == ("source:notes", "source:specs")
    assert s["context:design"].data_needs == ("gen", "source:specs")  # its query names gen's output
    # the agent step reads what its retrieval found, and nothing of the sources directly
    assert s["ask"].needs == ("context:ask",) and s["ask"].data_needs == ("context:ask",)
    assert s["design"].needs == ("context:design",) and s["design"].data_needs == ("context:design",)
    assert s["ask"].inputs == (context_path("ask"),) == (".amelia/context/ask.json",)
    assert s["context:ask"].outputs == (".amelia/context/ask.json",)
    # a retrieve step written under steps: reads its source's digest
    assert s["lookup"].needs == ("source:notes",) and s["lookup"].data_needs == ("source:notes",)
    assert s["lookup"].inputs == s["source:notes"].outputs
    order = [x.id for x in p.steps]
    for sid in order:
        assert all(order.index(n) < order.index(sid) for n in s[sid].needs), sid


def test_the_index_step_inputs_exclude_outputs_and_config(tmp_path):
    p = resolved(tmp_path, PIPELINE)
    specs, notes = p.step("source:specs"), p.step("source:notes")
    assert specs.inputs == ("docs/*.md", "build/gen/*.md")
    assert specs.exclude == ("docs/draft.md",) and notes.exclude == ()
    assert specs.outputs == (".amelia/qdrant/amelia/digests/specs.json",)
    assert notes.outputs == (".amelia/qdrant/amelia/digests/notes.json",)
    assert specs.config == SourceConfig(
        name="specs", paths=("docs/*.md", "build/gen/*.md"), exclude=("docs/draft.md",),
        chunk_size=400, overlap=50, model=DEFAULT_MODEL,
        location=Location(path=os.path.join(str(tmp_path), ".amelia/qdrant")))
    assert (notes.config.chunk_size, notes.config.overlap) == (800, 200)  # the defaults
    # the excluded file is no input of the index step (so editing it changes no key)
    touch(tmp_path, "docs/a.md", "docs/draft.md")
    fp = fingerprint(specs, FileStates(str(tmp_path), {}), p)
    assert set(fp.inputs) == {"docs/a.md", "build/gen/x.md"} and fp.produced_by == {"build/gen/x.md": "gen"}
    # the digest is the one output; the store's absolute path is in no definition
    assert str(tmp_path) not in specs.definition


def test_a_qdrant_server_moves_the_digests_and_names_the_key_variable(tmp_path):
    text = PIPELINE.replace("sources:\n", 'qdrant: {url: "http://127.0.0.1:6333"}\nsources:\n', 1)
    p = resolved(tmp_path, text)
    specs = p.step("source:specs")
    assert specs.outputs == (".amelia/index/specs.json",)
    assert specs.config.location == Location(url="http://127.0.0.1:6333", api_key_env="QDRANT_API_KEY")
    assert p.step("context:ask").inputs == (".amelia/index/specs.json", ".amelia/index/notes.json")
    embedded = resolved(tmp_path, PIPELINE).step("source:specs")
    assert specs.definition != embedded.definition  # another store: indexed again
    text = text.replace('url: "http://127.0.0.1:6333"}', 'url: "http://127.0.0.1:6333", api_key_env: QD_KEY}')
    assert resolved(tmp_path, text).step("source:specs").config.location.api_key_env == "QD_KEY"


def test_persona_sources_make_a_context_step_whose_query_is_the_prompt(tmp_path):
    p = resolved(tmp_path, PIPELINE)
    cfg = p.step("context:ask").config
    prompt = "Find the ${{ context }} requirements."
    blanked = "Find the " + " " * len("${{ context }}") + " requirements."
    assert isinstance(cfg, RetrieveConfig) and cfg.context is True
    assert cfg.items == (RetrieveItem("specs", blanked), RetrieveItem("notes", blanked))
    assert [c.name for c in cfg.sources] == ["specs", "notes"]
    assert p.step("ask").config.prompt == prompt  # the agent still renders it
    assert [v.ref for v in p.step("ask").vars] == ["context"]
    assert p.step("context:ask").vars == ()  # the blanked reference is not one of the query's


def test_an_inline_persona_and_a_prompt_file_make_a_context_step_too(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "review.md").write_text("Review for ${{ params.topic }}.\n\n${{ context }}\n")
    p = resolved(tmp_path, """\
        amelia: 1
        params: {topic: {default: safety}}
        sources: {specs: {paths: ["docs/*.md"]}}
        steps:
          review:
            agent: {system: You review., sources: [specs]}
            prompt: prompts/review.md
            output: build/review.md
        """)
    ctx = p.step("context:review")
    assert ctx.config.items == (RetrieveItem("specs", "Review for ${{ params.topic }}.\n\n"
                                             + " " * len("${{ context }}") + "\n"),)
    assert ctx.static_vars == {"AMELIA_PARAM_TOPIC": "safety"}  # the query reads the param
    assert ctx.data_needs == ("source:specs",) and p.step("review").data_needs == ("context:review",)
    assert "prompts/review.md" in dict(p.sources)  # an edited prompt file resolves again


def test_a_step_with_its_own_context_reads_only_that(tmp_path):
    p = resolved(tmp_path, """\
        amelia: 1
        sources:
          specs: {paths: ["docs/*.md"]}
          notes: {paths: ["notes/*.md"]}
        agents:
          analyst: {system: hi, sources: [specs, notes]}
        steps:
          a:
            agent: analyst
            prompt: go
            context: [{source: specs, query: the API}]
            output: a.md
          plain: {agent: {system: hi}, prompt: go, output: b.md}
        """)
    assert p.step("context:a").config.items == (RetrieveItem("specs", "the API"),)
    assert p.step("context:a").data_needs == ("source:specs",)
    assert "context:plain" not in p.by_id() and p.step("plain").inputs == ()


def test_foreach_instances_each_get_their_own_context_step(tmp_path):
    touch(tmp_path, "src/a/x.c", "src/b/x.c", "src/y.c")
    p = resolved(tmp_path, """\
        amelia: 1
        sources: {specs: {paths: ["docs/*.md"]}}
        steps:
          compile:
            foreach: {glob: "src/**/*.c"}
            agent: {system: hi}
            prompt: "Write about ${{ item.path }}: ${{ context }}"
            context: [{source: specs, query: "${{ item.stem }}"}]
            output: "build/${{ item.path }}.md"
          words:
            foreach: [a, "b c"]
            agent: {system: hi}
            prompt: "Define ${{ item }}."
            context: [{source: specs, query: "${{ item }}"}]
            output: "build/words/${{ item }}.md"
        """)
    instances = {"compile[src/a/x.c]": {"AMELIA_ITEM_STEM": "x"}, "compile[src/b/x.c]": {"AMELIA_ITEM_STEM": "x"},
                 "compile[y]": {"AMELIA_ITEM_STEM": "y"},
                 "words[a]": {"AMELIA_ITEM": "a"}, "words[b c]": {"AMELIA_ITEM": "b c"}}
    files = set()
    for sid, static in instances.items():
        ctx, agent = p.step("context:" + sid), p.step(sid)
        assert ctx.kind == "retrieve" and static.items() <= ctx.static_vars.items(), sid
        assert ctx.data_needs == ("source:specs",) and agent.data_needs == ("context:" + sid,)
        (out,) = ctx.outputs
        assert agent.inputs == (out,) and out.startswith(".amelia/context/") and out.endswith(".json")
        assert not re.search(r"[][*?{}/ ]", out[len(".amelia/context/"):]), out  # an input is a pattern
        files.add(out)
    assert len(files) == len(instances)  # the same stem in two dirs: still two files
    assert p.step("context:words[a]").outputs == (".amelia/context/" + _name("words[a]") + ".json",)
    assert {s.id for s in p.steps} == {"source:specs", *instances, *("context:" + x for x in instances)}


def _name(step_id: str) -> str:
    return context_path(step_id)[len(".amelia/context/"):-len(".json")]


def test_resolving_sources_imports_no_vector_store_or_model(tmp_path):
    """Resolve (and so a no-op run) never loads Qdrant, fastembed or onnxruntime."""
    import subprocess
    import sys

    (tmp_path / "amelia.yaml").write_text(PIPELINE)
    code = textwrap.dedent("""\
        import sys
        from amelia import resolve
        from amelia.loader import load_bytes
        loaded = load_bytes(open("amelia.yaml", "rb").read(), "amelia.yaml")
        p = resolve.resolve(loaded, "amelia.yaml", {}, "d", (), root=".")
        assert p.step("context:design").config.items[0].filter == {"dir": "docs"}
        print(sorted(m for m in ("qdrant_client", "fastembed", "onnxruntime", "docling")
                     if m in sys.modules))
        """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# -- keys ----------------------------------------------------------------------------------

def test_changing_the_chunking_changes_the_index_key_only(tmp_path):
    touch(tmp_path, "docs/a.md", "notes/n.txt")
    before = keys_of(resolved(tmp_path, PIPELINE))
    after = keys_of(resolved(tmp_path, PIPELINE.replace("size: 400", "size: 500")))
    changed = {sid for sid in before if before[sid] != after[sid]}
    # the steps reading the source see it through its digest: they run again only if
    # indexing changes what the digest says (the engine's early cut-off)
    assert changed == {"source:specs"}


def test_changing_the_model_or_exclude_changes_the_index_key(tmp_path):
    touch(tmp_path, "docs/a.md")
    base = keys_of(resolved(tmp_path, PIPELINE))["source:specs"]
    for old, new in (("exclude: [docs/draft.md]", "exclude: [docs/other.md]"),
                     ("exclude: [docs/draft.md]", "exclude: [docs/draft.md]\n    model: BAAI/bge-small-en-v1.5")):
        assert keys_of(resolved(tmp_path, PIPELINE.replace(old, new)))["source:specs"] != base, new



def test_changing_a_context_query_changes_only_the_context_step(tmp_path):
    touch(tmp_path, "docs/a.md")
    one = resolved(tmp_path, PIPELINE)
    two = resolved(tmp_path, PIPELINE.replace("top_k: 3", "top_k: 4").replace("reset ", "resetting "))
    changed = {s.id for s in one.steps if s.definition != two.step(s.id).definition}
    assert changed == {"context:design"}
    k1, k2 = keys_of(one), keys_of(two)
    assert {sid for sid in k1 if k1[sid] != k2[sid]} == {"context:design"}


def test_a_param_in_a_query_is_in_the_context_steps_key(tmp_path):
    one = keys_of(resolved(tmp_path, PIPELINE))
    two = keys_of(resolved(tmp_path, PIPELINE, overrides={"topic": "tokens"}))
    assert {sid for sid in one if one[sid] != two[sid]} == {"context:design"}


def test_a_description_changes_no_key(tmp_path):
    touch(tmp_path, "docs/a.md")
    one = resolved(tmp_path, PIPELINE)
    text = PIPELINE.replace("description: asks", "description: asks for the requirements")
    text = text.replace("  notes:\n    paths:", "  notes:\n    exclude: []\n    paths:")  # same meaning
    two = resolved(tmp_path, text)
    assert two.step("ask").description == "asks for the requirements"
    assert [s.definition for s in one.steps] == [s.definition for s in two.steps]
    assert keys_of(one) == keys_of(two)


# -- the resolve cache ---------------------------------------------------------------------

def test_a_resolved_pipeline_with_sources_round_trips_through_json(tmp_path):
    touch(tmp_path, "docs/a.md")
    p = resolved(tmp_path, PIPELINE)
    text = p.to_json()
    json.loads(text)  # plain JSON
    back = Pipeline.from_json(text)
    assert back == p
    assert back.step("source:specs").exclude == ("docs/draft.md",)
    specs = back.step("source:specs").config
    assert isinstance(specs, SourceConfig) and isinstance(specs.location, Location)
    assert specs == p.step("source:specs").config and specs.paths == ("docs/*.md", "build/gen/*.md")
    for sid in ("context:ask", "context:design", "lookup"):
        cfg = back.step(sid).config
        assert isinstance(cfg, RetrieveConfig) and cfg == p.step(sid).config, sid
        assert all(isinstance(i, RetrieveItem) for i in cfg.items)
        assert all(isinstance(c, SourceConfig) for c in cfg.sources)
    assert back.step("context:design").config.items[0].filter == {"dir": "docs"}
    assert back.step("lookup").config.context is False
    assert keys_of(back) == keys_of(p)


def test_a_source_of_every_json_file_does_not_read_amelias_own_files(tmp_path):
    touch(tmp_path, "docs/a.md", "data/b.json")
    p = resolved(tmp_path, """\
        amelia: 1
        sources: {everything: {paths: ["**/*.json"]}}
        steps:
          ask:
            agent: {system: hi}
            prompt: go
            context: [{source: everything, query: q}]
            output: build/ask.md
        """)
    assert p.step("source:everything").needs == ()  # not its own digest, nor the context file
    fp = fingerprint(p.step("source:everything"), FileStates(str(tmp_path), {}), p)
    assert set(fp.inputs) == {"data/b.json"}
