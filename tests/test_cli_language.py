"""always, shell, depfile, clean and --adopt, end to end: which steps ran after each edit."""

from __future__ import annotations

import os
import shutil

import pytest

PHONY = """\
amelia: 1
steps:
  tests:
    always: true
    run: echo passed > test.log
    output: test.log
  report:
    run: cat test.log > report.txt
    inputs: [test.log]
    output: report.txt
"""


def _ran(stdout: str) -> list:
    return sorted(line.split()[1] for line in stdout.splitlines() if line.startswith("ok "))


def test_an_always_step_runs_every_time_and_its_dependents_stay_cached(project):
    project.pipeline(PHONY)
    assert _ran(project.run("run", check=0).stdout) == ["report", "tests"]
    r = project.run("run", check=0)
    assert _ran(r.stdout) == ["tests"]
    assert "run     tests   always runs" in r.stdout
    assert "cached  report  upstream re-ran; its outputs are unchanged" in r.stdout
    # As `make -q` with a phony target and `dvc status` with always_changed: never up to date.
    r = project.run("run", "--check", check=3)
    assert "tests" in r.stderr


def test_always_does_not_change_the_key(project):
    project.pipeline(PHONY.replace("    always: true\n", ""))
    project.run("run", check=0)
    project.pipeline(PHONY)
    r = project.run("run", check=0)
    assert "always runs" in r.stdout
    assert "cached  report" in r.stdout


PIPE = """\
amelia: 1
{top}steps:
  head:
{shell}    run: yes | head -n 2 > head.txt
    output: head.txt
"""


def test_the_default_shell_fails_a_broken_pipe_and_sh_does_not(project):
    project.pipeline(PIPE.format(top="", shell=""))
    r = project.run("run", check=1)
    assert "exited with code 141" in r.stdout
    project.pipeline(PIPE.format(top="", shell="    shell: sh\n"))
    project.run("run", check=0)
    assert project.read("head.txt") == "y\ny\n"


def test_a_pipeline_shell_applies_to_every_run_step_and_a_step_may_override_it(project):
    project.pipeline(PIPE.format(top="shell: sh\n", shell=""))
    project.run("run", check=0)
    project.pipeline(PIPE.format(top="shell: sh\n", shell="    shell: bash -eo pipefail\n"))
    r = project.run("run", check=1)
    assert "exited with code 141" in r.stdout


def test_naming_the_default_shell_keeps_the_key(project):
    project.pipeline(PIPE.format(top="", shell="").replace("yes | head -n 2", "echo y"))
    project.run("run", check=0)
    project.pipeline(PIPE.format(top="shell: bash\n", shell="").replace("yes | head -n 2", "echo y"))
    assert "0 ran, 1 cached" in project.run("run", check=0).stdout


CC = """\
amelia: 1
steps:
  cc_main:
    depfile: build/main.d
    run: |
      mkdir -p build && {cc} && cp src/main.c build/main.o
    inputs: [src/main.c]
    output: build/main.o
"""
# What `cc -MMD -MF build/main.d` writes, without needing a compiler here.
DEPS = "printf 'build/main.o: src/main.c include/a.h \\\\\\n include/b.h\\n' > build/main.d"


def _c_project(project, cc=DEPS):
    project.pipeline(CC.format(cc=cc))
    project.write("src/main.c", "int main;\n")
    for h in ("a", "b", "c"):
        project.write(f"include/{h}.h", f"#define {h.upper()} 1\n")


def test_a_depfile_adds_the_headers_it_lists_from_the_next_run_on(project):
    _c_project(project)
    project.run("run", check=0)
    assert "0 ran, 1 cached" in project.run("run", check=0).stdout
    project.write("include/b.h", "#define B 2\n")  # listed: runs again
    r = project.run("run", check=0)
    assert "run     cc_main  input include/b.h changed" in r.stdout
    project.write("include/c.h", "#define C 2\n")  # not listed: nothing runs
    assert "0 ran, 1 cached" in project.run("run", check=0).stdout
    os.unlink(project.root / "include" / "a.h")  # a listed header deleted: runs again
    assert "1 ran" in project.run("run", check=0).stdout


def test_a_depfile_step_with_a_real_compiler(project):
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    project.pipeline("""\
amelia: 1
steps:
  cc_main:
    depfile: build/main.d
    run: mkdir -p build && cc -Iinclude -MMD -MF build/main.d -c -o build/main.o src/main.c
    inputs: [src/main.c]
    output: build/main.o
""")
    project.write("src/main.c", '#include "a.h"\nint main(void) { return A; }\n')
    project.write("include/a.h", "#define A 0\n")
    project.write("include/b.h", "#define B 0\n")
    project.run("run", check=0)
    project.write("include/b.h", "#define B 1\n")
    assert "0 ran, 1 cached" in project.run("run", check=0).stdout
    project.write("include/a.h", "#define A 1\n")
    assert "input include/a.h changed" in project.run("run", check=0).stdout


def test_a_foreach_step_names_each_instances_depfile_by_its_item(project):
    project.pipeline("""\
amelia: 1
steps:
  compile:
    foreach: {glob: "src/*.c"}
    depfile: build/${{ item.stem }}.d
    run: |
      mkdir -p build && printf '%s: %s include/%s.h\\n' "build/$AMELIA_ITEM_STEM.o" "$AMELIA_ITEM_PATH" "$AMELIA_ITEM_STEM" > "build/$AMELIA_ITEM_STEM.d" && cp "$AMELIA_ITEM_PATH" "build/$AMELIA_ITEM_STEM.o"
    inputs: ["${{ item.path }}"]
    output: build/${{ item.stem }}.o
""")
    for name in ("main", "util"):
        project.write(f"src/{name}.c", f"int {name};\n")
        project.write(f"include/{name}.h", f"#define {name.upper()} 1\n")
    project.run("run", check=0)
    project.write("include/util.h", "#define UTIL 2\n")
    r = project.run("run", check=0)
    assert "run     compile[util]  input include/util.h changed" in r.stdout
    assert "1 ran, 1 cached" in r.stdout


@pytest.mark.parametrize("cc, message", [
    ("true", "the command did not write its depfile build/main.d"),
    ("echo 'no colon here' > build/main.d", "depfile build/main.d is malformed: line 1: no ':' after the target"),
    ("echo 'build/main.o: /etc/hostname' > build/main.d",
     "depfile build/main.d lists /etc/hostname, which is outside the project"),
    ("echo 'build/main.o: ../x.h' > build/main.d", "depfile build/main.d lists ../x.h, which is outside the project"),
])
def test_a_bad_depfile_fails_the_step_clearly(project, cc, message):
    _c_project(project, cc)
    r = project.run("run", check=1)
    assert message in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_an_old_depfile_never_passes_for_this_runs(project):
    _c_project(project)
    project.run("run", check=0)
    project.pipeline(CC.format(cc="true"))  # stops writing it
    r = project.run("run", check=1)
    assert "did not write its depfile" in r.stdout


CHAIN = """\
amelia: 1
steps:
  a:
    run: mkdir -p out && cp in.txt out/a.txt
    inputs: [in.txt]
    outputs: [out/]
  b:
    run: cat out/a.txt > b.txt
    inputs: ["out/*.txt"]
    output: b.txt
"""


def test_clean_removes_declared_outputs_only_and_a_run_restores_them(project):
    project.pipeline(CHAIN)
    project.write("in.txt", "x")
    project.run("run", check=0)
    project.write("notes.txt", "mine")
    r = project.run("clean", "b", check=0)
    assert r.stdout == "removed b.txt\namelia: removed 1 output\n"
    assert not project.exists("b.txt") and project.exists("out/a.txt")
    r = project.run("clean", "-n", check=0)
    assert "would remove out/" in r.stdout and project.exists("out/a.txt")
    project.run("clean", check=0)
    assert sorted(os.listdir(project.root)) == [".amelia", "amelia.yaml", "in.txt", "notes.txt"]
    r = project.run("run", check=0)
    assert "0 ran, 2 cached" in r.stdout and project.read("b.txt") == "x"


def test_clean_names_an_unknown_step(project):
    project.pipeline(CHAIN)
    r = project.run("clean", "nope", check=2)
    assert "unknown step 'nope'" in r.stderr


def test_clean_never_follows_a_link_out_of_the_project(project, tmp_path):
    project.pipeline(CHAIN)
    project.write("in.txt", "x")
    project.run("run", check=0)  # the resolution is cached now: not checked again
    outside = project.link_outside("out", tmp_path / "outside", {"keep.txt": "keep"})
    r = project.run("clean", check=4)
    assert "out is a symlink to" in r.stderr
    assert os.listdir(outside) == ["keep.txt"]


def test_adopt_takes_outputs_built_elsewhere_and_runs_nothing(project):
    project.pipeline(CHAIN)
    project.write("in.txt", "x")
    project.write("out/a.txt", "x")  # as Make or DVC left them
    project.write("b.txt", "x")
    r = project.run("run", "--adopt", check=0)
    assert "adopt   a  out/" in r.stdout and "adopt   b  b.txt" in r.stdout
    assert "2 adopted" in r.stdout
    assert "0 ran, 2 cached" in project.run("run", check=0).stdout
    project.write("in.txt", "y")
    r = project.run("run", check=0)
    assert _ran(r.stdout) == ["a", "b"]


def test_adopt_fails_a_step_whose_output_is_missing(project):
    project.pipeline(CHAIN)
    project.write("in.txt", "x")
    r = project.run("run", "--adopt", check=1)
    assert "failed  a  cannot adopt: output out/ not on disk" in r.stdout
    assert "skip    b  an upstream step could not be adopted" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_adopt_leaves_always_steps_and_steps_without_their_depfile_to_run(project):
    _c_project(project)
    project.pipeline(CC.format(cc=DEPS) + """\
  tests:
    always: true
    run: cat build/main.o > test.log
    inputs: [build/main.o]
    output: test.log
""")
    project.write("build/main.o", "int main;\n")  # built by make, without -MMD
    r = project.run("run", "--adopt", check=0)
    assert "skip    cc_main  its depfile build/main.d is not on disk: it runs next time" in r.stdout
    assert "skip    tests    always runs; not adopted" in r.stdout
    r = project.run("run", check=0)
    assert _ran(r.stdout) == ["cc_main", "tests"]  # learns its headers
    project.write("include/b.h", "#define B 3\n")
    assert "input include/b.h changed" in project.run("run", check=0).stdout


def test_a_shell_that_is_not_installed_is_said_once_before_anything_runs(project):
    project.pipeline("""\
amelia: 1
shell: no-such-shell-here -e
steps:
  a: {run: echo a > a.txt, output: a.txt}
  b: {run: echo b > b.txt, output: b.txt}
""")
    r = project.run("run", check=4)
    assert r.stderr == ("error: shell 'no-such-shell-here' is not installed: steps a, b use it\n"
                        "  hint: install no-such-shell-here, or name another with `shell:` "
                        "(sh, bash, or a command line)\n")
    assert r.stdout == ""


@pytest.mark.parametrize("flag", ["--check", "--dry-run", "--force-all"])
def test_adopt_goes_alone(project, flag):
    project.pipeline(CHAIN)
    r = project.run("run", "--adopt", flag, check=2)
    assert "--adopt and" in r.stderr and "cannot be used together" in r.stderr


def test_a_depfile_that_is_also_an_output_is_refused(project):
    project.pipeline(CC.format(cc=DEPS).replace("output: build/main.o", "outputs: [build/main.o, build/main.d]"))
    r = project.run("validate", check=2)
    assert "depfile 'build/main.d' is also an output of step 'cc_main'" in r.stderr
