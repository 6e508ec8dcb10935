"""`foreach:` end to end: one step per item (NAME[KEY]), each cached on its own; a new
file adds an instance, a deleted one drops it, and nothing else re-runs."""

from __future__ import annotations

import time

import pytest

GLOB = """\
amelia: 1
steps:
  compile:
    foreach: {glob: "src/*.c"}
    run: mkdir -p build && tr a-z A-Z < "${{ item.path }}" > "build/${{ item.stem }}.o" && echo "$AMELIA_ITEM_NAME" >> ran.log
    inputs: ["${{ item.path }}"]
    output: "build/${{ item.stem }}.o"
  link:
    needs: [compile]
    run: cat build/*.o > app && echo link >> ran.log
    inputs: ["build/*.o"]
    output: app
  other:
    run: echo other > other.txt && echo other >> ran.log
    output: other.txt
"""


def ran(project) -> list:
    """What ran since the last call, in no set order (the log is emptied)."""
    p = project.root / "ran.log"
    if not p.exists():
        return []
    lines = p.read_text().splitlines()
    p.write_text("")
    return sorted(lines)


def settle():
    time.sleep(0.15)  # mtimes age past the racy window


@pytest.fixture
def c_project(project):
    project.pipeline(GLOB)
    project.write("src/main.c", "int main;\n")
    project.write("src/util.c", "int util;\n")
    r = project.run("run", check=0)
    assert "run     compile[main]" in r.stdout and "run     compile[util]" in r.stdout
    assert ran(project) == ["link", "main.c", "other", "util.c"]
    settle()
    return project


def test_each_item_is_a_step_and_link_waits_for_all(c_project):
    assert c_project.read("app") == "INT MAIN;\nINT UTIL;\n"
    r = c_project.run("run", check=0)
    assert "0 ran, 4 cached" in r.stdout
    graph = c_project.run("graph", check=0).stdout
    assert "link           run    needs: compile[main], compile[util]" in graph


def test_a_new_file_adds_an_instance_and_a_deleted_one_drops_it(c_project):
    c_project.write("src/zeta.c", "int zeta;\n")
    r = c_project.run("run", check=0)
    assert "2 ran, 3 cached" in r.stdout
    assert ran(c_project) == ["link", "zeta.c"]
    assert c_project.read("app") == "INT MAIN;\nINT UTIL;\nINT ZETA;\n"
    settle()
    r = c_project.run("run", check=0)
    assert "0 ran, 5 cached" in r.stdout
    (c_project.root / "src/zeta.c").unlink()
    r = c_project.run("run", check=0)
    assert "remove  build/zeta.o  no step writes it now" in r.stdout  # else build/*.o reads it
    assert not c_project.exists("build/zeta.o")
    assert "compile[zeta]" not in r.stdout
    assert ran(c_project) == []  # link's inputs are the two files it read before: restored from the cache
    assert "0 ran, 4 cached" in r.stdout
    assert c_project.read("app") == "INT MAIN;\nINT UTIL;\n"


def test_editing_one_file_runs_its_instance_only(c_project):
    c_project.write("src/util.c", "int util2;\n")
    r = c_project.run("run", check=0)
    assert "run     compile[util]  input src/util.c changed" in r.stdout
    assert ran(c_project) == ["link", "util.c"]


def test_force_one_instance(c_project):
    r = c_project.run("run", "--force", "compile[main]", check=0)
    assert "1 ran, 3 cached" in r.stdout  # link: the instance's output came out the same
    assert ran(c_project) == ["main.c"]
    r = c_project.run("run", "--force", "compile[nope]")
    assert r.returncode == 2 and "unknown step 'compile[nope]'" in r.stderr


def test_force_a_foreach_step_by_name_forces_every_instance(c_project):
    r = c_project.run("run", "--force", "compile", check=0)
    assert "2 ran, 2 cached" in r.stdout
    assert ran(c_project) == ["main.c", "util.c"]
    r = c_project.run("plan", "--only", "compile", check=0)
    assert "compile[main]" in r.stdout and "link" not in r.stdout


def test_two_sources_with_one_stem_get_path_ids_and_logs_of_their_own(project):
    project.pipeline(GLOB.replace('"src/*.c"', '"src/**/*.c"').replace(
        "build/${{ item.stem }}.o", "build/${{ item.dir }}/${{ item.stem }}.o").replace(
        "mkdir -p build", 'mkdir -p "build/${{ item.dir }}"').replace("build/*.o", "build/src/*/*.o"))
    project.write("src/a/x.c", "int a;\n")
    project.write("src/b/x.c", "int b;\n")
    r = project.run("run", check=0)
    assert "Traceback" not in r.stdout + r.stderr
    assert "compile[src/a/x.c]" in r.stdout and "compile[src/b/x.c]" in r.stdout
    logs = sorted(p.name for p in (project.root / ".amelia" / "logs").glob("*/*.log"))
    assert "compile[src%2Fa%2Fx.c].log" in logs


def test_a_file_name_is_never_shell_text(project):
    project.pipeline(GLOB)
    project.write("src/a;touch pwned;.c", "int a;\n")
    project.write("src/$(touch pwned2).c", "int b;\n")
    project.run("run", check=0)
    assert not project.exists("pwned") and not project.exists("pwned2")
    assert project.read("build/a;touch pwned;.o") == "INT A;\n"
    assert project.read("build/$(touch pwned2).o") == "INT B;\n"


def test_an_empty_glob_has_no_instances(project):
    project.pipeline(GLOB.replace("cat build/*.o > app", "(cat build/*.o || true) > app"))
    (project.root / "src").mkdir()
    r = project.run("run", check=0)
    assert "2 ran, 0 cached" in r.stdout and "compile" not in r.stdout
    assert ran(project) == ["link", "other"]
    r = project.run("run", "--force", "compile", check=0)  # a foreach step, none of it now
    assert "0 ran, 2 cached" in r.stdout
    r = project.run("plan", "--only", "compile", check=0)
    assert r.stdout == "nothing selected\n"


LIST = """\
amelia: 1
params_files: [params.yaml]
steps:
  greet:
    foreach: "${{ params.people }}"
    run: echo "hello $AMELIA_ITEM" > "out/${{ item }}.txt" && echo "${{ item }}" >> ran.log
    output: "out/${{ item }}.txt"
  wave:
    foreach: [1, two]
    run: echo "wave ${{ item }}" > "out/wave-${{ item }}.txt" && echo "wave ${{ item }}" >> ran.log
    output: "out/wave-${{ item }}.txt"
"""


def test_foreach_over_a_list_and_a_list_param(project):
    project.pipeline(LIST)
    project.write("params.yaml", "people: [ada, grace]\n")
    (project.root / "out").mkdir()
    project.run("run", check=0)
    assert ran(project) == ["ada", "grace", "wave 1", "wave two"]
    assert project.read("out/ada.txt") == "hello ada\n"
    settle()
    project.write("params.yaml", "people: [ada, grace, linus]\n")
    r = project.run("run", check=0)
    assert "run     greet[linus]" in r.stdout and "1 ran, 4 cached" in r.stdout
    assert ran(project) == ["linus"]
    settle()
    project.write("params.yaml", "people: [grace, linus]  # ada left\n")
    r = project.run("run", check=0)
    assert "0 ran, 4 cached" in r.stdout
    assert "greet[ada]" not in project.run("plan", check=0).stdout
