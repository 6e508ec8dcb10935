"""foreach at resolve time: instances, their ids, static vars, keys and sources."""

from __future__ import annotations


from amelia import listing
from amelia.api import _sources_unchanged
from amelia.resolve.foreach import group_of
from resolving import resolved, touch






GLOB = """\
amelia: 1
steps:
  compile:
    foreach: {glob: "src/**/*.c"}
    run: cc -c -o "build/${{ item.stem }}.o" "${{ item.path }}"
    inputs: ["${{ item.path }}"]
    output: "build/${{ item.dir }}/${{ item.stem }}.o"
  link:
    needs: [compile]
    run: cc -o app build/*.o
    inputs: ["build/**/*.o"]
    output: app
"""


def test_glob_instances_ids_fields_and_needs(tmp_path):
    touch(tmp_path, "src/main.c", "src/lib/util.c", "src/notes.txt", ".git/x.c")
    p = resolved(tmp_path, GLOB)
    assert [s.id for s in p.steps] == ["compile[util]", "compile[main]", "link"]  # sorted by path
    util = p.step("compile[util]")
    assert util.static_vars == {"AMELIA_ITEM_PATH": "src/lib/util.c", "AMELIA_ITEM_NAME": "util.c",
                                "AMELIA_ITEM_STEM": "util", "AMELIA_ITEM_DIR": "src/lib"}
    assert util.inputs == ("src/lib/util.c",) and util.outputs == ("build/src/lib/util.o",)
    assert util.config.command == 'cc -c -o "build/${AMELIA_ITEM_STEM}.o" "${AMELIA_ITEM_PATH}"'
    assert p.step("link").needs == ("compile[main]", "compile[util]")
    assert p.step("link").data_needs == ("compile[main]", "compile[util]")
    assert group_of("compile[util]") == "compile"


def test_an_item_changes_only_its_own_instance(tmp_path):
    touch(tmp_path, "src/a.c", "src/b.c")
    before = {s.id: s.definition for s in resolved(tmp_path, GLOB).steps}
    touch(tmp_path, "src/c.c")
    after = {s.id: s.definition for s in resolved(tmp_path, GLOB).steps}
    assert set(after) == set(before) | {"compile[c]"}
    assert all(after[sid] == before[sid] for sid in before)
    text = "amelia: 1\nsteps:\n  g:\n    foreach: [x, y]\n    run: echo ${{ item }} > o-${{ item }}\n" \
           "    output: o-${{ item }}\n"
    one = {s.id: s.definition for s in resolved(tmp_path, text).steps}
    two = {s.id: s.definition for s in resolved(tmp_path, text.replace("[x, y]", "[w, y, x]")).steps}
    assert two["g[x]"] == one["g[x]"] and two["g[y]"] == one["g[y]"] and one["g[x]"] != one["g[y]"]


def test_files_sharing_a_stem_are_named_by_their_path(tmp_path):
    touch(tmp_path, "src/a/x.c", "src/b/x.c", "src/y.c")
    p = resolved(tmp_path, GLOB)
    assert {s.id for s in p.steps} == {"compile[src/a/x.c]", "compile[src/b/x.c]", "compile[y]", "link"}


def test_the_listing_is_a_source_that_changes_with_the_files(tmp_path):
    touch(tmp_path, "src/a.c")
    p = resolved(tmp_path, GLOB)
    entry = [s for s in p.sources if s[0].startswith(listing.PREFIX)]
    assert entry == [("glob:src/**/*.c", listing.listing_digest(["src/a.c"]))]
    assert _sources_unchanged(p)
    (tmp_path / "src/a.c").write_text("edited")  # an edit is an input change, not a new listing
    assert _sources_unchanged(p)
    touch(tmp_path, "src/b.c")
    assert not _sources_unchanged(p)
    (tmp_path / "src/b.c").unlink()
    assert _sources_unchanged(p)
    (tmp_path / "src/a.c").unlink()
    assert not _sources_unchanged(p)


def test_an_agent_step_gets_one_call_per_document(tmp_path):
    touch(tmp_path, "docs/a.md", "docs/b.md")
    p = resolved(tmp_path, """\
    amelia: 1
    steps:
      summarize:
        foreach: {glob: "docs/*.md"}
        agent: {model: default, system: "You summarize ${{ item.name }}."}
        prompt: "Summarize ${{ item.path }}."
        inputs: ["${{ item.path }}"]
        output: "summaries/${{ item.stem }}.md"
    """)
    a = p.step("summarize[a]")
    assert a.kind == "agent" and a.outputs == ("summaries/a.md",)
    assert {v.ref for v in a.vars} >= {"item.path"}
    assert a.static_vars["AMELIA_ITEM_PATH"] == "docs/a.md"
    assert a.definition != p.step("summarize[b]").definition


def test_zero_instances_need_nothing(tmp_path):
    (tmp_path / "src").mkdir()
    p = resolved(tmp_path, GLOB)
    assert [s.id for s in p.steps] == ["link"] and p.step("link").needs == ()


def test_a_list_param_with_an_override(tmp_path):
    text = """\
    amelia: 1
    params:
      who: {type: array, default: [ada]}
    steps:
      g:
        foreach: "${{ params.who }}"
        run: echo "${{ item }}" > "o-${{ item }}"
        output: "o-${{ item }}"
    """
    p = resolved(tmp_path, text, overrides={"who": '["ada", "grace"]'})
    assert [s.id for s in p.steps] == ["g[ada]", "g[grace]"]
    assert p.step("g[grace]").static_vars == {"AMELIA_ITEM": "grace"}
