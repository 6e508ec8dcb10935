"""resolve: params, templates, paths and dependencies → a concrete Pipeline."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from amelia import resolve, schema
from amelia.errors import ErrorGroup, PipelineError, UsageError
from amelia.loader import load_bytes
from amelia.resolve import coerce_param
from amelia.spec import Pipeline


def resolve_text(root, text, overrides=None, check_schema=True, root_arg=True):
    path = os.path.join(str(root), "amelia.yaml")
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    with open(path, "rb") as f:
        loaded = load_bytes(f.read(), "amelia.yaml")
    if check_schema:
        assert [e.render() for e in schema.validate(loaded)] == []
    return resolve.resolve(loaded, path, overrides or {}, "digest", (),
                           root=str(root) if root_arg else None)


def errors_of(root, text, overrides=None):
    with pytest.raises((PipelineError, ErrorGroup)) as info:
        resolve_text(root, text, overrides)
    e = info.value
    return e.errors if isinstance(e, ErrorGroup) else [e]


def brief(errors):
    return [(e.location.line, e.location.col, e.message) for e in errors]


# -- params -------------------------------------------------------------------------

PARAMS = """\
amelia: 1
params:
  goal: {type: string, default: Add password reset}
  n: {type: integer, default: 3}
  ratio: {type: number, default: 0.5}
  dry: {type: boolean, default: false}
  tags: {type: array, default: [a]}
  opts: {type: object, default: {k: 1}}
  free: {default: anything}
  mode: {type: string, enum: [fast, slow], default: fast}
steps:
  a: {run: echo}
"""


def test_param_defaults(tmp_path):
    p = resolve_text(tmp_path, PARAMS)
    assert p.params == {"goal": "Add password reset", "n": 3, "ratio": 0.5, "dry": False,
                        "tags": ["a"], "opts": {"k": 1}, "free": "anything", "mode": "fast"}


def test_param_overrides_are_typed(tmp_path):
    p = resolve_text(tmp_path, PARAMS, {
        "goal": "Ship it", "n": "7", "ratio": "2", "dry": "yes", "tags": '["x", "y"]',
        "opts": '{"a": [1]}', "free": "42", "mode": "slow"})
    assert p.params == {"goal": "Ship it", "n": 7, "ratio": 2.0, "dry": True, "tags": ["x", "y"],
                        "opts": {"a": [1]}, "free": "42", "mode": "slow"}
    assert type(p.params["ratio"]) is float


@pytest.mark.parametrize("ptype, raw, value", [
    ("string", "3", "3"),
    (None, "x=y", "x=y"),
    ("integer", "-12", -12),
    ("number", "1e3", 1000.0),
    ("number", "3", 3.0),
    ("boolean", "true", True), ("boolean", "On", True), ("boolean", "1", True),
    ("boolean", "false", False), ("boolean", "NO", False), ("boolean", "0", False),
    ("array", "[]", []),
    ("object", '{"a": null}', {"a": None}),
])
def test_coerce_param(ptype, raw, value):
    assert coerce_param("p", ptype, raw) == value


@pytest.mark.parametrize("ptype, raw, message", [
    ("integer", "3.5", "param 'p' must be an integer, got '3.5'"),
    ("integer", "", "param 'p' must be an integer, got ''"),
    ("number", "abc", "param 'p' must be a number, got 'abc'"),
    ("boolean", "maybe", "param 'p' must be a boolean, got 'maybe'"),
    ("array", '{"a": 1}', "param 'p' must be an array, got '{\"a\": 1}'"),
    ("array", "a,b", "param 'p' must be an array, got 'a,b'"),
    ("object", "[1]", "param 'p' must be an object, got '[1]'"),
])
def test_coerce_param_errors(ptype, raw, message):
    with pytest.raises(UsageError) as info:
        coerce_param("p", ptype, raw)
    assert info.value.message == message
    assert info.value.exit_code == 2
    if ptype in ("array", "object"):
        assert "JSON" in info.value.hint


def test_unknown_override_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as info:
        resolve_text(tmp_path, PARAMS, {"gaol": "x"})
    assert info.value.message == "unknown param 'gaol' given with -p"
    assert info.value.hint == "did you mean 'goal'?"


def test_override_without_declared_params(tmp_path):
    with pytest.raises(UsageError) as info:
        resolve_text(tmp_path, "amelia: 1\nsteps:\n  a: {run: x}\n", {"x": "1"})
    assert info.value.hint == "this pipeline declares no params"


def test_override_outside_the_enum(tmp_path):
    with pytest.raises(UsageError) as info:
        resolve_text(tmp_path, PARAMS, {"mode": "slwo"})
    assert info.value.message == "param 'mode' must be one of fast, slow, got 'slwo'"
    assert info.value.hint == "did you mean 'slow'?"


def test_required_param(tmp_path):
    text = "amelia: 1\nparams:\n  goal: {type: string}\nsteps:\n  a: {run: echo}\n"
    with pytest.raises(UsageError) as info:
        resolve_text(tmp_path, text)
    assert info.value.message == "param 'goal' has no default and no value"
    assert resolve_text(tmp_path, text, {"goal": "g"}).params == {"goal": "g"}


def test_default_of_the_wrong_type(tmp_path):
    errs = errors_of(tmp_path, """\
        amelia: 1
        params:
          n: {type: integer, default: "3"}
          flag: {type: boolean, default: 1}
          size: {type: number, default: true}
          mode: {type: string, enum: [fast, slow], default: medium}
        steps:
          a: {run: echo}
        """)
    assert brief(errs) == [
        (3, 22, "default of param 'n' is not an integer"),
        (4, 25, "default of param 'flag' is not a boolean"),
        (5, 24, "default of param 'size' is not a number"),
        (6, 44, "default of param 'mode' is not one of its enum values"),
    ]
    assert errs[0].hint == "remove the quotes: a quoted value is a string"
    assert errs[0].location.path == "params.n.default"


# -- steps, templates ----------------------------------------------------------------

def test_run_command_reads_templates_from_the_environment(tmp_path):
    p = resolve_text(tmp_path, """\
        amelia: 1
        name: demo
        env: [API_URL]
        params:
          goal: {type: string, default: "x; rm -rf /"}
        steps:
          a:
            run: ./go "${{ params.goal }}" ${{ env.API_URL }} ${{ name }} ${{ params.goal }}
            output: out/a.txt
          b:
            run: cat ${{ steps.a.output }}
        """)
    a, b = p.steps
    assert a.config.command == './go "${AMELIA_PARAM_GOAL}" ${API_URL} ${AMELIA_PIPELINE_NAME} ${AMELIA_PARAM_GOAL}'
    assert [(v.ref, v.env) for v in a.vars] == [
        ("params.goal", "AMELIA_PARAM_GOAL"), ("env.API_URL", "API_URL"), ("name", "AMELIA_PIPELINE_NAME")]
    assert a.static_vars == {"AMELIA_PARAM_GOAL": "x; rm -rf /", "AMELIA_PIPELINE_NAME": "demo"}
    assert "rm -rf" not in a.config.command
    assert b.config.command == "cat ${AMELIA_STEP_A_OUTPUT}"
    assert [(v.ref, v.env) for v in b.vars] == [("steps.a.output", "AMELIA_STEP_A_OUTPUT")]
    assert p.env_names == ("API_URL",)
    assert p.name == "demo"


def test_pipeline_name_defaults_to_the_file_name(tmp_path):
    assert resolve_text(tmp_path, "amelia: 1\nsteps:\n  a: {run: x}\n").name == "amelia"


def test_template_errors_are_all_reported_at_the_reference(tmp_path):
    errs = errors_of(tmp_path, """\
        amelia: 1
        env: [TOKEN]
        params:
          goal: {default: x}
        steps:
          a:
            run: echo ${{ parms.goal }} ${{ params.gaol }} ${{ env.HOME }} ${{ context }}
            output: a.txt
          b:
            run: |
              echo ${{ steps.c.output }}
              echo ${{ steps.a.outptu }} ${{ 1 + 1 }} ${{ steps.a.output }}
        """)
    assert brief(errs) == [
        (7, 15, "unknown reference 'parms.goal'"),
        (7, 33, "undefined param 'gaol' in 'params.gaol'"),
        (7, 52, "env var 'HOME' is not declared"),
        (7, 68, "'${{ context }}' may only be used in the prompt of an agent step that retrieves"),
        (11, 12, "unknown step 'c' in 'steps.c.output'"),
        (12, 12, "'steps.a.outptu' is not a step field"),
        (12, 34, "'1 + 1' is not a reference"),
    ]
    assert [e.hint for e in errs[:2]] == ["did you mean 'params'?", "did you mean 'goal'?"]
    assert errs[5].hint == "did you mean 'output'?"
    assert all(e.location.path in ("steps.a.run", "steps.b.run") for e in errs)


def test_reference_to_a_step_without_a_single_output(tmp_path):
    errs = errors_of(tmp_path, """\
        amelia: 1
        steps:
          none: {run: x}
          many: {run: x, outputs: [a, b]}
          dir: {run: x, outputs: [d/]}
          use: {run: "${{ steps.none.output }} ${{ steps.many.output }} ${{ steps.dir.json.x }}"}
        """)
    assert [(e.message, e.hint) for e in errs] == [
        ("step 'none' has no single output file for 'steps.none.output'",
         "give step 'none' an `output:` file"),
        ("step 'many' has no single output file for 'steps.many.output'",
         "step 'many' writes 2 outputs; a reference needs one `output:` file"),
        ("step 'dir' has no single output file for 'steps.dir.json.x'",
         "step 'dir' writes a directory; a reference needs one `output:` file"),
    ]


def test_step_kind_problems(tmp_path):
    errs = errors_of(tmp_path, """\
        amelia: 1
        steps:
          nothing: {description: x}
          two: {run: x, retrieve: {source: s, query: q}}
          llm: {agent: analyst, prompt: hi}
          ok: {run: x, output: a, outputs: [b]}
        """)
    assert [(e.location.path, e.message) for e in errs] == [
        ("steps.nothing", "step 'nothing' does nothing"),
        ("steps.two.retrieve", "step 'two' does more than one thing: run and retrieve"),
        ("steps.llm.agent", "unknown agent 'analyst'"),
        ("steps.ok.outputs", "step 'ok' has both `output` and `outputs`"),
    ]


# -- paths -----------------------------------------------------------------------

def test_paths_are_normalized(tmp_path):
    p = resolve_text(tmp_path, """\
        amelia: 1
        steps:
          a:
            run: x
            inputs: ["./src//a.c", "src/../lib/b.c", "docs/"]
            outputs: ["./out//dir/", "out/./file.txt"]
          b: {run: x, inputs: ./one.txt}
        """)
    a, b = p.steps
    assert a.inputs == ("src/a.c", "lib/b.c", "docs/")
    assert a.outputs == ("out/dir/", "out/file.txt")
    assert b.inputs == ("one.txt",)


def test_params_are_rendered_into_paths(tmp_path):
    text = """\
        amelia: 1
        name: demo
        params:
          dataset: {default: small}
          n: {type: integer, default: 2}
        steps:
          a:
            run: x
            inputs: ["data/${{ params.dataset }}.csv"]
            output: "out/${{ name }}-${{ params.n }}.txt"
        """
    (a,) = resolve_text(tmp_path, text).steps
    assert a.inputs == ("data/small.csv",)
    assert a.outputs == ("out/demo-2.txt",)
    (a,) = resolve_text(tmp_path, text, {"dataset": "big", "n": "5"}).steps
    assert a.inputs == ("data/big.csv",)
    assert a.outputs == ("out/demo-5.txt",)


def test_a_param_cannot_lead_a_path_out(tmp_path):
    text = """\
        amelia: 1
        params:
          dir: {default: data}
        steps:
          a: {run: x, inputs: ["${{ params.dir }}/x.csv"]}
        """
    errs = errors_of(tmp_path, text, {"dir": "../.."})
    assert [e.message for e in errs] == ["path '../../x.csv' leaves the project root ('..')"]


def test_paths_may_only_use_params_and_name(tmp_path):
    errs = errors_of(tmp_path, """\
        amelia: 1
        env: [HOME]
        steps:
          a: {run: x, output: a.txt}
          b: {run: x, inputs: ["${{ steps.a.output }}", "${{ env.HOME }}/x"]}
        """)
    assert [(e.location.col, e.message, e.hint) for e in errs] == [
        (25, "'steps.a.output' cannot be used here", "here you may use: params., name"),
        (50, "'env.HOME' cannot be used here", "here you may use: params., name"),
    ]


@pytest.mark.parametrize("path, message", [
    ("../x", "path '../x' leaves the project root ('..')"),
    ("a/../../x", "path 'a/../../x' leaves the project root ('..')"),
    ("..", "path '..' leaves the project root ('..')"),
    ("/etc/passwd", "path '/etc/passwd' is an absolute path"),
    ("~/x", "path '~/x' is an absolute path"),
    (".", "path names the project root itself"),
    ("a/..", "path names the project root itself"),
])
def test_paths_outside_the_root(tmp_path, path, message):
    errs = errors_of(tmp_path, f"amelia: 1\nsteps:\n  a: {{run: x, inputs: ['{path}']}}\n")
    assert [e.message for e in errs] == [message]
    assert errs[0].location.path == "steps.a.inputs[0]"


def test_symlink_escape(tmp_path):
    root = tmp_path / "proj"
    outside = tmp_path / "outside"
    (root / "inside").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "link")
    os.symlink(root / "inside", root / "ok")
    errs = errors_of(root, """\
        amelia: 1
        steps:
          a: {run: x, inputs: ["link/*.txt", "ok/*.txt", link], output: link/out.txt}
        """)
    assert [e.message for e in errs] == [
        "path 'link/*.txt' leads outside the project root through a symlink",
        "path 'link' leads outside the project root through a symlink",
        "path 'link/out.txt' leads outside the project root through a symlink",
    ]


def test_output_rules(tmp_path):
    errs = errors_of(tmp_path, """\
        amelia: 1
        steps:
          a: {run: x, outputs: ["build/*.o", .amelia/x, .git/config]}
        """)
    assert [e.message for e in errs] == [
        "output 'build/*.o' is a glob",
        "output '.amelia/x' is inside .amelia/",
        "output '.git/config' is inside .git/",
    ]


def test_output_clashes(tmp_path):
    errs = errors_of(tmp_path, """\
        amelia: 1
        steps:
          a: {run: x, outputs: [out/a.txt, site/]}
          b: {run: x, output: out/a.txt}
          c: {run: x, output: site/index.html}
          d: {run: x, outputs: [out/]}
          e: {run: x, outputs: [site]}
        """)
    assert [(e.location.path, e.message) for e in errs] == [
        ("steps.b.output", "output 'out/a.txt' is also written by step 'a'"),
        ("steps.c.output", "output 'site/index.html' is inside 'site/', an output directory of step 'a'"),
        ("steps.d.outputs[0]", "output directory 'out/' contains 'out/a.txt', an output of step 'a'"),
        ("steps.e.outputs[0]", "output 'site' is also written by step 'a'"),
    ]
    assert errs[0].hint == "each file is written by one step only (see line 3)"


@pytest.mark.parametrize("inputs, outputs, message", [
    (["src/*.c"], ["src/"], "output directory 'src/' holds input 'src/*.c' of step 'a'"),
    (["src/main.c"], ["src/"], "output directory 'src/' holds input 'src/main.c' of step 'a'"),
    (["notes.md"], ["notes.md"], "output 'notes.md' is also an input of step 'a'"),
    (["docs/"], ["docs/index.html"], "output 'docs/index.html' is read by input 'docs/' of the same step"),
    (["**/*.md"], ["build/x.md"], "output 'build/x.md' is read by input '**/*.md' of the same step"),
    (["src/*.c"], ["src/gen/"], None),  # a glob of one level does not reach below src/gen/
    (["src/*.c"], ["src/main.h"], None),
    (["build/a"], ["build/ab"], None),
])
def test_an_output_cannot_hold_the_steps_own_input(tmp_path, inputs, outputs, message):
    text = f"""\
        amelia: 1
        steps:
          a: {{run: x, inputs: {json.dumps(inputs)}, outputs: {json.dumps(outputs)}}}
        """
    if message is None:
        resolve_text(tmp_path, text)
        return
    errs = errors_of(tmp_path, text)
    assert [(e.location.path, e.message) for e in errs] == [("steps.a.outputs[0]", message)]
    assert "both an input and an output" in errs[0].hint


def test_an_input_of_another_step_is_a_dependency_not_an_overlap(tmp_path):
    p = resolve_text(tmp_path, """\
        amelia: 1
        steps:
          make: {run: x, outputs: [src/]}
          use: {run: x, inputs: ["src/*.c"], output: out.txt}
        """)
    assert deps(p)["use"] == (("make",), ("make",))


def test_outputs_clash_and_feed_through_symlinks_inside_the_project(tmp_path):
    (tmp_path / "a").mkdir()
    os.symlink("a", tmp_path / "b")
    os.symlink("a", tmp_path / "c")
    (tmp_path / "e").mkdir()
    os.symlink("e", tmp_path / "f")
    errs = errors_of(tmp_path, """\
        amelia: 1
        steps:
          one: {run: x, output: a/x}
          two: {run: x, output: b/x}
          three: {run: x, outputs: [c/]}
          own: {run: x, inputs: [e/y], outputs: [f/y]}
        """)
    assert [(e.location.path, e.message) for e in errs] == [
        ("steps.two.output", "output 'b/x' is also written by step 'one' (through a symlink: 'b/x' is 'a/x')"),
        ("steps.three.outputs[0]",
         "output directory 'c/' contains 'a/x', an output of step 'one' (through a symlink: 'c/' is 'a/')"),
        ("steps.own.outputs[0]", "output 'f/y' is also an input of step 'own' (through a symlink: 'f/y' is 'e/y')"),
    ]
    p = resolve_text(tmp_path, """\
        amelia: 1
        steps:
          make: {run: x, output: a/x}
          use: {run: x, inputs: [b/x], output: out.txt}
          glob: {run: x, inputs: ["b/*"], output: out2.txt}
        """)
    assert deps(p)["use"] == (("make",), ("make",))  # b/x is the file make writes
    assert deps(p)["glob"] == (("make",), ("make",))


def test_an_input_glob_must_compile(tmp_path):
    errs = errors_of(tmp_path, """\
        amelia: 1
        steps:
          a: {run: x, inputs: ["src/[z-a].c", "ok/*.c"]}
        """)
    assert [(e.location.path, e.message) for e in errs] == [
        ("steps.a.inputs[0]", "input 'src/[z-a].c' is not a valid glob: the range 'z-a' in '[z-a]' runs backwards")]


def test_a_run_command_longer_than_one_argument_may_be(tmp_path):
    from amelia.resolve.shape import MAX_ARG_BYTES

    ok = "x" * MAX_ARG_BYTES
    resolve_text(tmp_path, f"amelia: 1\nsteps:\n  a: {{run: {ok}}}\n")
    errs = errors_of(tmp_path, f"amelia: 1\nsteps:\n  a: {{run: {ok}x}}\n")
    assert [(e.location.path, e.message) for e in errs] == [
        ("steps.a.run", "the command of step 'a' is 128 KiB; the system runs commands of at most 128 KiB")]
    assert "script file" in errs[0].hint
    wide = "\u00e9" * (MAX_ARG_BYTES // 2 + 1)  # counted in bytes: 2 each in UTF-8
    assert len(errors_of(tmp_path, f"amelia: 1\nsteps:\n  a: {{run: {wide}}}\n")) == 1


# -- dependencies ----------------------------------------------------------------

def deps(pipeline):
    return {s.id: (s.needs, s.data_needs) for s in pipeline.steps}


def test_needs_adds_order_without_data(tmp_path):
    p = resolve_text(tmp_path, """\
        amelia: 1
        steps:
          a: {run: x}
          b: {run: x, needs: a}
          c: {run: x, needs: [b, a]}
        """)
    assert deps(p) == {"a": ((), ()), "b": (("a",), ()), "c": (("a", "b"), ())}


def test_a_reference_adds_a_data_dependency(tmp_path):
    p = resolve_text(tmp_path, """\
        amelia: 1
        steps:
          use: {run: "cat ${{ steps.make.output }}"}
          make: {run: x, output: m.txt}
        """)
    assert deps(p) == {"make": ((), ()), "use": (("make",), ("make",))}
    assert [s.id for s in p.steps] == ["make", "use"]


def test_a_step_cannot_read_its_own_output(tmp_path):
    errs = errors_of(tmp_path, """\
        amelia: 1
        steps:
          self: {run: "x > ${{ steps.self.output }}", output: s.txt}
          js: {run: "echo ${{ steps.js.json.a }}", output: s.json}
        """)
    assert [(e.location.path, e.location.col, e.message) for e in errs] == [
        ("steps.self.run", 20, "step 'self' reads its own output through 'steps.self.output'"),
        ("steps.js.run", 19, "step 'js' reads its own output through 'steps.js.json.a'"),
    ]


@pytest.mark.parametrize("inputs, outputs, linked", [
    (["build/app"], ["build/app"], True),
    (["build/app"], ["build/app2"], False),
    (["build/*.o"], ["build/a.o"], True),
    (["build/*.o"], ["build/sub/a.o"], False),
    (["src/**/*.py"], ["src/gen/deep/x.py"], True),
    (["src/**/*.py"], ["src/x.py"], True),
    (["src/**/*.py"], ["src/x.pyc"], False),
    (["**"], ["anything/at/all"], True),
    (["build"], ["build/a.o"], True),  # a literal directory input reads what is in it
    (["build/"], ["build/a.o"], True),
    (["build/a.o"], ["build/"], True),  # a directory output holds the file read
    (["build/sub/**/*.txt"], ["build/"], True),
    (["build/*.txt"], ["build/"], True),
    (["**/*.md"], ["site/"], True),
    (["docs/**"], ["build/"], False),
    (["build2/x"], ["build/"], False),
    (["build"], ["build/"], True),
])
def test_output_input_overlap(tmp_path, inputs, outputs, linked):
    p = resolve_text(tmp_path, f"""\
        amelia: 1
        steps:
          reader: {{run: x, inputs: {json.dumps(inputs)}}}
          writer: {{run: x, outputs: {json.dumps(outputs)}}}
        """)
    expected = (("writer",), ("writer",)) if linked else ((), ())
    assert deps(p)["reader"] == expected
    if linked:
        assert [s.id for s in p.steps] == ["writer", "reader"]


def test_unknown_needs(tmp_path):
    errs = errors_of(tmp_path, """\
        amelia: 1
        steps:
          build: {run: x}
          test: {run: x, needs: [biuld, test, zzz]}
          lint: {run: x, needs: qqq}
        """)
    assert [(e.location.path, e.message, e.hint) for e in errs] == [
        ("steps.test.needs[0]", "step 'test' needs unknown step 'biuld'", "did you mean 'build'?"),
        ("steps.test.needs[1]", "step 'test' needs itself", "remove it from `needs`"),
        ("steps.test.needs[2]", "step 'test' needs unknown step 'zzz'", "steps are: build, test, lint"),
        ("steps.lint.needs", "step 'lint' needs unknown step 'qqq'", "steps are: build, test, lint"),
    ]


def test_cycle_is_printed_and_located(tmp_path):
    (e,) = errors_of(tmp_path, """\
        amelia: 1
        steps:
          x: {run: x}
          c: {run: x, needs: [a]}
          b: {run: x, needs: [c]}
          a: {run: x, needs: [b]}
        """)
    # starts at the step that comes first in the file; each arrow reads "needs"
    assert e.message == "dependency cycle: c -> a -> b -> c"
    assert e.location.path == "steps.c.needs[0]"
    assert e.hint.startswith("c needs a; a needs b; b needs c.")


def test_cycle_through_a_reference_and_a_file(tmp_path):
    (e,) = errors_of(tmp_path, """\
        amelia: 1
        steps:
          a: {run: "cat ${{ steps.b.output }}", output: a.txt}
          b: {run: x, inputs: [a.txt], output: b.txt}
        """)
    assert e.message == "dependency cycle: a -> b -> a"
    assert (e.location.line, e.location.col) == (3, 17)
    assert e.hint.startswith("a uses ${{ steps.b.output }}; b reads a.txt, written by a.")


def test_every_separate_cycle_is_reported(tmp_path):
    errs = errors_of(tmp_path, """\
        amelia: 1
        steps:
          a: {run: x, needs: b}
          b: {run: x, needs: a}
          c: {run: x, needs: d}
          d: {run: x, needs: c}
          e: {run: x, needs: [a, c]}
        """)
    assert [e.message for e in errs] == ["dependency cycle: a -> b -> a", "dependency cycle: c -> d -> c"]


def test_errors_are_reported_together_in_file_order(tmp_path):
    errs = errors_of(tmp_path, """\
        amelia: 1
        steps:
          a: {run: "${{ params.x }}", needs: [zz]}
          b: {run: x, output: a.txt}
          c: {run: x, output: a.txt, inputs: [../x]}
        """)
    assert [(e.location.line, e.location.col) for e in errs] == [(3, 13), (3, 39), (5, 15), (5, 39)]


# -- order and the definition ------------------------------------------------------

def test_topological_order_keeps_file_order_where_free(tmp_path):
    p = resolve_text(tmp_path, """\
        amelia: 1
        steps:
          report: {run: x, needs: [test, lint]}
          lint: {run: x}
          test: {run: x, needs: build}
          build: {run: x}
          docs: {run: x}
        """)
    assert [s.id for s in p.steps] == ["lint", "build", "test", "report", "docs"]


DEF = """\
amelia: 1
steps:
  a: {run: x, output: a.txt}
  b:
    run: make
    description: %s
    needs: [a]
    timeout: %s
    inputs: [src/]
"""


def test_definition_leaves_out_cosmetic_fields(tmp_path):
    b1 = resolve_text(tmp_path, DEF % ("first", 10)).step("b")
    b2 = resolve_text(tmp_path, DEF % ("second", 99)).step("b")
    assert b1.definition == b2.definition
    d = json.loads(b1.definition)
    assert d == {"run": "make", "inputs": ["src/"], "outputs": [], "static_vars": {}}
    assert b1.description == "first" and b1.timeout == 10
    assert b2.description == "second" and b2.timeout == 99


def test_definition_changes_with_what_the_step_does(tmp_path):
    base = resolve_text(tmp_path, DEF % ("d", 1)).step("b").definition
    other = resolve_text(tmp_path, (DEF % ("d", 1)).replace("run: make", "run: make all")).step("b")
    assert other.definition != base


def test_definition_holds_the_param_values_the_step_reads(tmp_path):
    text = """\
        amelia: 1
        params:
          goal: {default: a}
          other: {default: z}
        steps:
          s: {run: "echo ${{ params.goal }}"}
        """
    d1 = resolve_text(tmp_path, text).step("s").definition
    d2 = resolve_text(tmp_path, text, {"goal": "b"}).step("s").definition
    d3 = resolve_text(tmp_path, text, {"other": "y"}).step("s").definition
    assert d1 != d2
    assert d1 == d3  # a param the step does not read changes nothing
    assert json.loads(d2)["static_vars"] == {"AMELIA_PARAM_GOAL": "b"}


def test_definition_is_canonical_json(tmp_path):
    (s,) = resolve_text(tmp_path, "amelia: 1\nsteps:\n  s: {run: x, inputs: [b, a]}\n").steps
    assert s.definition == json.dumps(json.loads(s.definition), sort_keys=True, separators=(",", ":"))
    assert json.loads(s.definition)["inputs"] == ["b", "a"]  # order of the file is kept


def test_pipeline_round_trips_through_json(tmp_path):
    p = resolve_text(tmp_path, """\
        amelia: 1
        params:
          goal: {default: g}
        steps:
          a: {run: "echo ${{ params.goal }}", output: a.txt, timeout: 5}
          b: {run: "cat ${{ steps.a.output }}", inputs: [a.txt]}
        """)
    assert Pipeline.from_json(p.to_json()) == p


# -- root ----------------------------------------------------------------------

def test_root_key_is_relative_to_the_file(tmp_path):
    (tmp_path / "pipelines").mkdir()
    p = resolve_text(tmp_path / "pipelines", "amelia: 1\nroot: ..\nsteps:\n  a: {run: x}\n", root_arg=False)
    assert p.root == str(tmp_path)


def test_root_defaults_to_the_git_work_tree(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "sub").mkdir()
    p = resolve_text(tmp_path / "sub", "amelia: 1\nsteps:\n  a: {run: x}\n", root_arg=False)
    assert p.root == str(tmp_path)


def test_root_defaults_to_the_files_directory(tmp_path):
    p = resolve_text(tmp_path, "amelia: 1\nsteps:\n  a: {run: x}\n", root_arg=False)
    assert p.root == str(tmp_path)


def test_checking_a_file_needs_no_param_values(tmp_path):
    """validate/graph: params without a value get a stand-in of their type; run still needs one."""
    from amelia import api

    (tmp_path / "amelia.yaml").write_text(
        "amelia: 1\nparams:\n  goal: {type: string}\n  n: {type: integer}\n"
        "steps:\n  a: {run: echo, output: 'out/${{ params.goal }}.txt'}\n")
    pipeline = api.validate(str(tmp_path / "amelia.yaml"))
    assert pipeline.params == {"goal": "<goal>", "n": 0}
    assert pipeline.steps[0].outputs == ("out/<goal>.txt",)
    assert api.validate(str(tmp_path / "amelia.yaml"), (("goal", "x"),)).params["goal"] == "x"


# -- documents -----------------------------------------------------------------------

def test_a_pipeline_resolves_from_a_graph_of_documents(tmp_path):
    """Today the graph holds only the root document; each document has its own scope."""
    import dataclasses

    from amelia.resolve import DocumentGraph, open_document
    from amelia.resolve.document import Problems

    text = "amelia: 1\nparams:\n  goal: {default: x}\nenv: [TOKEN]\nsteps:\n  a: {run: echo}\n"
    loaded = load_bytes(text.encode(), "amelia.yaml")
    problems = Problems()
    doc = open_document(loaded, "amelia.yaml", "", {"goal": "y"}, {}, False, problems)
    assert len(problems) == 0
    assert doc.params == {"goal": "y"} and doc.env_names == ("TOKEN",)
    assert set(doc.models) == {"default"}
    assert doc.step_id("a") == "a"
    graph = DocumentGraph((doc,))
    assert graph.root is doc
    included = dataclasses.replace(doc, namespace="review")
    assert included.step_id("a") == "review.a"  # how an included recipe's steps are named
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.namespace = "x"


def test_the_pipeline_model_imports_no_provider_engine_or_store():
    import subprocess
    import sys

    code = ("import sys\nfrom amelia import resolve, spec, keys, schema, loader, features, model_config\n"
            "print([m for m in sys.modules if m.startswith(('amelia.providers', 'amelia.planner', "
            "'amelia.runner', 'amelia.api', 'amelia.store', 'amelia.scheduler'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
