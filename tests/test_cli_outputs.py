"""Outputs are trustworthy: never stale, never corrupt, never written outside the project.

End to end through the CLI, each case as the hardening issue found it on main.
"""

from __future__ import annotations

import glob
import json
import os

CONDITIONAL = """\
amelia: 1
steps:
  copy:
    run: if [ "$(cat in.txt)" = 1 ]; then cp in.txt out.txt; fi
    inputs: [in.txt]
    output: out.txt
"""

DIRECTORY = """\
amelia: 1
steps:
  mirror:
    run: mkdir -p out && for f in src/*.txt; do cp "$f" out/; done
    inputs: ["src/*.txt"]
    outputs: [out/]
"""

CHAIN = """\
amelia: 1
steps:
  make:
    run: mkdir -p build && cat in.txt > build/out.txt
    inputs: [in.txt]
    output: build/out.txt
  use:
    run: wc -c < build/out.txt > count.txt
    inputs: [build/out.txt]
    output: count.txt
"""


def _object_of(project, text: bytes) -> str:
    import hashlib

    digest = hashlib.sha256(text).hexdigest()
    return str(project.root / ".amelia" / "objects" / digest[:2] / digest[2:])


def test_a_step_that_stops_writing_its_output_fails_and_leaves_no_stale_file(project):
    project.pipeline(CONDITIONAL)
    project.write("in.txt", "1")
    project.run("run", check=0)
    assert project.read("out.txt") == "1"
    project.write("in.txt", "2")
    r = project.run("run", check=1)
    assert "did not write out.txt" in r.stdout
    assert not project.exists("out.txt")  # removed before the step ran
    project.write("in.txt", "1")
    r = project.run("run", check=0)  # the good result for in.txt = 1 comes back
    assert project.read("out.txt") == "1"


def test_a_directory_output_loses_files_the_step_no_longer_writes(project):
    project.pipeline(DIRECTORY)
    project.write("src/a.txt", "a")
    project.write("src/b.txt", "b")
    project.run("run", check=0)
    assert sorted(os.listdir(project.root / "out")) == ["a.txt", "b.txt"]
    os.unlink(project.root / "src" / "b.txt")
    project.run("run", check=0)
    assert sorted(os.listdir(project.root / "out")) == ["a.txt"]
    r = project.run("run", check=0)
    assert "0 ran, 1 cached" in r.stdout
    # The record holds only what that run wrote: a restore brings back a alone.
    import shutil

    shutil.rmtree(project.root / "out")
    project.run("run", check=0)
    assert sorted(os.listdir(project.root / "out")) == ["a.txt"]


def test_restore_never_writes_through_a_link_out_of_the_project(project, tmp_path):
    project.pipeline(CHAIN)
    project.write("in.txt", "data")
    project.run("run", check=0)
    outside = project.link_outside("build", tmp_path / "outside")
    r = project.run("run", check=1)
    assert "Traceback" not in r.stderr + r.stdout
    assert f"build is a symlink to {outside}, outside the project" in r.stdout
    assert os.listdir(outside) == []


def test_restore_of_a_directory_never_deletes_through_a_link(project, tmp_path):
    project.pipeline(DIRECTORY)
    project.write("src/a.txt", "a")
    project.run("run", check=0)
    outside = project.link_outside("out", tmp_path / "outside", {"keep.txt": "a user's file"})
    r = project.run("run", check=1)
    assert "out is a symlink to" in r.stdout
    assert os.listdir(outside) == ["keep.txt"]
    project.write("src/b.txt", "b")  # a run (not a restore) must not empty it either
    r = project.run("run", check=1)
    assert "out is a symlink to" in r.stdout
    assert os.listdir(outside) == ["keep.txt"]


def test_a_corrupt_object_is_moved_aside_and_the_step_runs_again(project):
    project.pipeline(CHAIN)
    project.write("in.txt", "GOOD DATA")
    project.run("run", check=0)
    obj = _object_of(project, b"GOOD DATA")
    os.chmod(obj, 0o644)
    with open(obj, "r+b") as f:
        f.write(b"g")  # one flipped byte
    os.unlink(project.root / "build" / "out.txt")
    r = project.run("run", check=0)
    assert "the stored copy of build/out.txt was corrupt" in r.stdout
    assert project.read("build/out.txt") == "GOOD DATA"
    assert "1 ran, 1 cached" in r.stdout  # its dependent stays cached: same bytes again
    assert glob.glob(str(project.root / ".amelia" / "objects" / "corrupt" / "*"))
    os.unlink(project.root / "build" / "out.txt")
    r = project.run("run", check=0)  # the good copy is stored now: a plain restore
    assert "corrupt" not in r.stdout
    assert project.read("build/out.txt") == "GOOD DATA"


def test_a_corrupt_tree_manifest_is_not_served(project):
    project.pipeline(DIRECTORY)
    project.write("src/a.txt", "a")
    project.run("run", check=0)
    manifests = [p for p in glob.glob(str(project.root / ".amelia" / "objects" / "??" / "*"))
                 if open(p, "rb").read().startswith(b'{"a.txt"')]
    assert len(manifests) == 1
    path = manifests[0]
    os.chmod(path, 0o644)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data.replace(b"a.txt", b"z.txt"))
    import shutil

    shutil.rmtree(project.root / "out")
    r = project.run("run", check=0)
    assert "was corrupt" in r.stdout
    assert os.listdir(project.root / "out") == ["a.txt"]


def test_check_exits_3_when_an_output_is_missing_or_edited(project):
    project.pipeline(CHAIN)
    project.write("in.txt", "data")
    project.run("run", check=0)
    project.run("run", "--check", check=0)
    os.unlink(project.root / "count.txt")
    r = project.run("run", "--check", check=3)
    assert "restore use   restore count.txt" in r.stdout
    assert "1 step is not up to date: use" in r.stderr
    project.run("run", check=0)
    project.write("build/out.txt", "edited by hand")
    r = project.run("run", "--check", check=3)
    assert "restore build/out.txt (edited)" in r.stdout
    r = project.run("run", check=0)
    assert "restore build/out.txt (edited)" in r.stdout
    assert project.read("build/out.txt") == "data"
    project.run("run", "--check", check=0)


def test_a_directory_where_a_file_output_belongs_fails_that_step_only(project):
    project.pipeline(CHAIN + """\
  other:
    run: echo fine > other.txt
    output: other.txt
""")
    project.write("in.txt", "data")
    os.makedirs(project.root / "build" / "out.txt")
    r = project.run("run", check=1)
    assert "Traceback" not in r.stdout + r.stderr
    assert "output build/out.txt is a directory on disk, but is declared as a file" in r.stdout
    assert project.read("other.txt") == "fine\n"


EXECUTABLE = """\
amelia: 1
steps:
  build:
    run: |
      printf '#!/bin/sh\\necho hi\\n' > hello && chmod +x hello
      mkdir -p bin && cp hello bin/tool && echo data > bin/readme.txt
    outputs: [hello, bin/]
  use:
    run: ./hello > used.txt && bin/tool >> used.txt
    inputs: [hello, bin/]
    output: used.txt
"""


def test_an_executable_output_comes_back_executable(project):
    project.pipeline(EXECUTABLE)
    project.run("run", check=0)
    r = project.run("clean", check=0)
    assert "removed hello" in r.stdout
    r = project.run("run", check=0)
    assert "0 ran, 2 cached" in r.stdout
    assert os.access(project.root / "hello", os.X_OK)
    assert os.access(project.root / "bin" / "tool", os.X_OK)
    assert not os.access(project.root / "bin" / "readme.txt", os.X_OK)
    os.chmod(project.root / "hello", 0o644)  # the mode is part of the output: put back
    r = project.run("run", check=0)
    assert "restore hello (edited)" in r.stdout
    assert os.access(project.root / "hello", os.X_OK)
    os.chmod(project.root / "bin" / "tool", 0o644)
    r = project.run("run", "--check", check=3)
    assert "restore bin/ (edited)" in r.stdout


PER_LANG = """\
amelia: 1
params:
  lang: {default: en}
steps:
  doc:
    run: echo ${{ params.lang }} > out-${{ params.lang }}.txt
    output: out-${{ params.lang }}.txt
"""


def test_an_output_no_step_writes_any_more_is_removed_unless_someone_edited_it(project):
    project.pipeline(PER_LANG)
    project.run("run", check=0)
    r = project.run("run", "-p", "lang=fr", check=0)
    assert "remove  out-en.txt  no step writes it now" in r.stdout
    assert not project.exists("out-en.txt") and project.read("out-fr.txt") == "fr\n"
    project.write("out-fr.txt", "kept: a person wrote this")
    r = project.run("run", check=0)
    assert "remove" not in r.stdout.replace("restore", "")
    assert project.read("out-fr.txt") == "kept: a person wrote this"
    assert project.read("out-en.txt") == "en\n"


def test_check_and_plan_say_an_output_no_step_writes_would_be_removed(project):
    project.pipeline(PER_LANG)
    project.run("run", check=0)
    project.run("run", "--check", check=0)
    r = project.run("run", "--check", "-p", "lang=fr", check=3)
    assert "remove  out-en.txt  no step writes it now" in r.stdout
    assert "1 to run, 1 to remove" in r.stdout
    assert project.exists("out-en.txt")  # a check touches nothing
    plan = json.loads(project.run("plan", "--json", "-p", "lang=fr", check=0).stdout)
    assert plan["remove"] == ["out-en.txt"]


def test_a_failed_step_leaves_none_of_its_outputs(project):
    project.pipeline("""\
amelia: 1
steps:
  half:
    run: echo partial > out.txt && mkdir -p d && echo x > d/x && exit 3
    outputs: [out.txt, d/]
""")
    r = project.run("run", check=1)
    assert "exited with code 3" in r.stdout
    assert not project.exists("out.txt") and not project.exists("d")
