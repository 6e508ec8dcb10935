"""amelia.paths: glob semantics, overlap (dependency inference), expansion, confinement."""

from __future__ import annotations

import os
import subprocess

import pytest

from amelia import paths
from amelia.paths import confinement_problem, expand, find_root, glob_regex, matches, normalize, overlaps


def rx(pattern: str, path: str) -> bool:
    return glob_regex(pattern).match(path) is not None


def touch(root, rel: str, text: str = "x") -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def names(result) -> list:
    return [rel for rel, _st in result]


# -- glob_regex -----------------------------------------------------------------------

@pytest.mark.parametrize("pattern,path,expected", [
    # * stays within one segment
    ("*.txt", "a.txt", True),
    ("*.txt", "d/a.txt", False),
    ("src/*.py", "src/m.py", True),
    ("src/*.py", "src/pkg/m.py", False),
    ("*", "", True),
    ("a*b", "ab", True),
    ("a*b", "a/b", False),
    # ** spans segments, including none
    ("**/*.txt", "a.txt", True),
    ("**/*.txt", "d/a.txt", True),
    ("**/*.txt", "d/e/f/a.txt", True),
    ("**/*.txt", "a.md", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/xb", False),
    ("a/**", "a/x", True),
    ("a/**", "a/x/y", True),
    ("a/**", "b/x", False),
    ("**", "anything/at/all", True),
    # ? is one character, never a separator
    ("?.txt", "a.txt", True),
    ("?.txt", "ab.txt", False),
    ("a?b", "a/b", False),
    # classes
    ("[ab].txt", "a.txt", True),
    ("[ab].txt", "c.txt", False),
    ("f[0-9].txt", "f7.txt", True),
    ("f[0-9].txt", "fx.txt", False),
    ("[!x].txt", "y.txt", True),
    ("[!x].txt", "x.txt", False),
    ("a[!x]b", "a/b", False),  # a negated class does not match the separator
    ("[]x].txt", "].txt", True),  # a leading ] is a member, as in fnmatch
    ("[]x].txt", "x.txt", True),
    ("[^x].txt", "y.txt", True),  # ^ negates too, as in bash and git
    ("[^x].txt", "x.txt", False),
    ("[!]].txt", "].txt", False),
    ("[!]].txt", "a.txt", True),
    ("[a^].txt", "^.txt", True),  # not first: a member
    ("a[.txt", "a[.txt", True),  # an unclosed [ is literal
    # regex metacharacters are literal
    ("a+b.(c)", "a+b.(c)", True),
    ("a.b", "axb", False),
    ("dir\\[x].txt", "dir\\x.txt", True),
])
def test_glob_regex(pattern, path, expected):
    assert rx(pattern, path) is expected


def test_glob_regex_is_anchored_at_both_ends():
    assert not rx("a.txt", "a.txt.bak")
    assert not rx("a.txt", "xa.txt")


def test_is_glob_and_literal_prefix():
    assert paths.is_glob("a/*.txt") and paths.is_glob("a?") and paths.is_glob("[ab]")
    assert not paths.is_glob("a/b.txt")
    assert paths.literal_prefix("src/a/*.py") == "src/a"
    assert paths.literal_prefix("src/**/x/*.py") == "src"
    assert paths.literal_prefix("*.py") == ""
    assert paths.literal_prefix("src/") == "src"
    assert paths.literal_prefix("src/a.txt") == "src/a.txt"


# -- matches --------------------------------------------------------------------------

def test_matches_literal_names_file_or_everything_below_a_directory():
    assert matches("src", "src")
    assert matches("src", "src/a.py")
    assert matches("src/", "src/a/b.py")
    assert not matches("src", "srcx/a.py")
    assert not matches("src", "sr")
    assert not matches("src/a.py", "src")


def test_matches_glob():
    assert matches("src/*.py", "src/a.py")
    assert not matches("src/*.py", "src/a/b.py")
    assert matches("src/**/*.py", "src/a/b.py")


# -- overlaps -------------------------------------------------------------------------

@pytest.mark.parametrize("inp,out,expected", [
    # file outputs: can the input read this file?
    ("a.txt", "a.txt", True),
    ("b.txt", "a.txt", False),
    ("build", "build/a.txt", True),  # a literal directory input holds the file
    ("build/*.txt", "build/a.txt", True),
    ("build/*.txt", "build/sub/a.txt", False),
    ("**/*.txt", "build/sub/a.txt", True),
    ("**/*.md", "build/sub/a.txt", False),
    # directory outputs
    ("out", "out/", True),  # the directory itself
    ("out/", "out/", True),
    ("out/a.txt", "out/", True),  # a file inside it
    ("out/sub/a.txt", "out/", True),
    ("outside.txt", "out/", False),
    ("outx/a.txt", "out/", False),
    ("src", "src/gen/", True),  # a directory input holding the output directory
    ("out/*.txt", "out/", True),  # globs reaching into it
    ("out/**", "out/", True),
    ("o*/*.txt", "out/", True),
    ("*/*.txt", "out/", True),
    ("**/*.txt", "out/", True),
    ("**", "out/", True),
    ("src/**/*.md", "src/gen/", True),
    ("docs/*/index.md", "docs/api/", True),
    ("docs/*/index.md", "docs/api/v1/", False),  # index.md would be two levels below
    ("docs/*/*/index.md", "docs/api/v1/", True),
    ("x*/*.txt", "out/", False),
    ("*.txt", "out/", False),  # a one-segment glob reads top-level files only
    ("*", "out/", False),
    ("src/*.py", "out/", False),
    ("a/b/**/c.txt", "a/", True),  # the glob starts below the directory
    ("a/b/*.txt", "a/c/", False),
    ("[ab]/x.txt", "a/", True),
    ("[!a]/x.txt", "a/", False),
    ("src/**.md", "src/gen/", True),  # '**' inside a segment spans segments too
    ("a**", "b/", False),
    ("a**", "ab/", True),
])
def test_overlaps(inp, out, expected):
    assert overlaps(inp, out) is expected


# -- expand ---------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    for rel in ("a.txt", "b.md", "src/m.py", "src/n.py", "src/pkg/deep.py", "src/pkg/more/x.py",
                "docs/readme.txt", ".amelia/objects/ab/cd", ".git/HEAD", "src/.git/config",
                "src/.amelia/junk.py"):
        touch(root, rel)
    return root


def test_expand_literal_file(tree):
    out = expand(str(tree), "a.txt")
    assert names(out) == ["a.txt"]
    assert out[0][1].st_size == 1


def test_expand_literal_missing_is_empty(tree):
    assert expand(str(tree), "nope.txt") == []
    assert expand(str(tree), "a.txt/below") == []


def test_expand_literal_directory_is_every_file_below(tree):
    expected = ["src/m.py", "src/n.py", "src/pkg/deep.py", "src/pkg/more/x.py"]
    assert names(expand(str(tree), "src")) == expected
    assert names(expand(str(tree), "src/")) == expected


def test_expand_glob_is_not_recursive_without_double_star(tree):
    assert names(expand(str(tree), "src/*.py")) == ["src/m.py", "src/n.py"]
    assert names(expand(str(tree), "*")) == ["a.txt", "b.md"]  # directories are not files
    assert names(expand(str(tree), "*.txt")) == ["a.txt"]
    assert names(expand(str(tree), "src/?.py")) == ["src/m.py", "src/n.py"]
    assert names(expand(str(tree), "src/[m].py")) == ["src/m.py"]


def test_expand_recursive_glob(tree):
    assert names(expand(str(tree), "**/*.py")) == [
        "src/m.py", "src/n.py", "src/pkg/deep.py", "src/pkg/more/x.py"]
    assert names(expand(str(tree), "src/**/*.py")) == [
        "src/m.py", "src/n.py", "src/pkg/deep.py", "src/pkg/more/x.py"]
    assert names(expand(str(tree), "src/*/*.py")) == ["src/pkg/deep.py"]
    assert names(expand(str(tree), "**/*.txt")) == ["a.txt", "docs/readme.txt"]


def test_expand_skips_store_and_git_everywhere(tree):
    everything = names(expand(str(tree), "**"))
    assert everything == ["a.txt", "b.md", "docs/readme.txt", "src/m.py", "src/n.py",
                          "src/pkg/deep.py", "src/pkg/more/x.py"]
    assert names(expand(str(tree), ".*")) == []  # not even by a pattern that names them


def test_expand_glob_under_missing_directory(tree):
    assert expand(str(tree), "nope/*.txt") == []
    assert expand(str(tree), "nope/**/*.txt") == []
    assert expand(str(tree), "a.txt/*.x") == []


def test_expand_results_are_sorted(tmp_path):
    for n in ("c", "a", "b"):
        touch(tmp_path, f"d/{n}.txt")
    assert names(expand(str(tmp_path), "d/*.txt")) == ["d/a.txt", "d/b.txt", "d/c.txt"]
    assert names(expand(str(tmp_path), "d")) == ["d/a.txt", "d/b.txt", "d/c.txt"]


def test_expand_symlink_to_file_inside_is_followed(tmp_path):
    touch(tmp_path, "real.txt", "hello")
    os.symlink("real.txt", tmp_path / "link.txt")
    out = dict(expand(str(tmp_path), "*.txt"))
    assert set(out) == {"link.txt", "real.txt"}
    assert out["link.txt"].st_size == 5  # stat of the target


@pytest.mark.parametrize("pattern", ["*.txt", "**/*.txt", "escape.txt", "sub", "sub/*.txt", "**"])
def test_expand_symlink_leaving_root_raises(tmp_path, pattern):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    touch(outside, "secret.txt")
    touch(root, "sub/ok.txt")
    os.symlink(outside / "secret.txt", root / ("escape.txt" if "sub" not in pattern else "sub/escape.txt"))
    with pytest.raises(ValueError, match="outside the project root"):
        expand(str(root), pattern)


@pytest.mark.parametrize("pattern", ["linked", "linked/", "linked/*.txt", "linked/**/*.txt", "linked/x.txt"])
def test_expand_through_a_symlinked_directory_leaving_root_raises(tmp_path, pattern):
    root = tmp_path / "root"
    root.mkdir()
    touch(tmp_path, "outside/x.txt")
    os.symlink(tmp_path / "outside", root / "linked")
    with pytest.raises(ValueError, match="linked"):
        expand(str(root), pattern)


def test_expand_escape_check_off(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    touch(tmp_path, "outside/x.txt")
    os.symlink(tmp_path / "outside" / "x.txt", root / "x.txt")
    assert names(expand(str(root), "*.txt", escape_check=False)) == ["x.txt"]


def test_expand_does_not_follow_symlinked_directories_in_a_walk(tmp_path):
    touch(tmp_path, "d/a.txt")
    os.symlink("d", tmp_path / "alias")  # inside the root: allowed, but not walked twice
    os.symlink(".", tmp_path / "d" / "loop")  # a loop must not hang the walk
    assert names(expand(str(tmp_path), "**/*.txt")) == ["d/a.txt"]
    assert names(expand(str(tmp_path), "d")) == ["d/a.txt"]
    # named literally, a directory link inside the root is read
    assert names(expand(str(tmp_path), "alias")) == ["alias/a.txt"]


def test_expand_skips_dangling_symlinks(tmp_path):
    touch(tmp_path, "d/a.txt")
    os.symlink("gone.txt", tmp_path / "d" / "dangling.txt")
    assert names(expand(str(tmp_path), "d/*.txt")) == ["d/a.txt"]
    assert names(expand(str(tmp_path), "**/*.txt")) == ["d/a.txt"]
    assert names(expand(str(tmp_path), "d")) == ["d/a.txt"]
    assert expand(str(tmp_path), "d/dangling.txt") == []


# -- confinement, normalize, find_root ---------------------------------------------------

@pytest.mark.parametrize("path,problem", [
    ("/etc/passwd", "absolute"),
    ("~/x", "absolute"),
    ("..", "'..'"),
    ("../x", "'..'"),
    ("a/../../x", "'..'"),
    ("a/../b", None),
    ("a/b.txt", None),
    ("src/**/*.py", None),
    ("..foo/x", None),
    ("new/dir/that/does/not/exist.txt", None),
])
def test_confinement_problem(tmp_path, path, problem):
    got = confinement_problem(path, str(tmp_path))
    if problem is None:
        assert got is None
    else:
        assert got is not None and problem in got


def test_confinement_problem_through_symlink(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "out")
    os.symlink(root / "inner", root / "alias")
    (root / "inner").mkdir()
    assert "symlink" in confinement_problem("out/x.txt", str(root))
    assert "symlink" in confinement_problem("out/*.txt", str(root))
    assert "symlink" in confinement_problem("out", str(root))
    assert confinement_problem("alias/x.txt", str(root)) is None
    assert confinement_problem("*/x.txt", str(root)) is None


def test_confinement_problem_root_itself_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "root")
    assert confinement_problem("a/b.txt", str(tmp_path / "root")) is None


@pytest.mark.parametrize("raw,norm", [
    ("./a//b/", "a/b/"),
    ("a/b", "a/b"),
    ("a/./b/../c", "a/c"),
    ("./", ""),
    (".", ""),
    ("a/", "a/"),
    ("src/**/*.py", "src/**/*.py"),
])
def test_normalize(raw, norm):
    assert normalize(raw) == norm


def test_find_root_without_git_is_the_file_directory(tmp_path):
    touch(tmp_path, "proj/sub/amelia.yaml")
    assert find_root(str(tmp_path / "proj/sub/amelia.yaml")) == str(tmp_path / "proj/sub")


def test_find_root_is_the_git_work_tree(tmp_path):
    touch(tmp_path, "repo/pipelines/deep/p.yaml")
    (tmp_path / "repo/.git").mkdir()
    assert find_root(str(tmp_path / "repo/pipelines/deep/p.yaml")) == str(tmp_path / "repo")
    assert find_root(str(tmp_path / "repo/pipelines/deep/missing.yaml")) == str(tmp_path / "repo")


def test_find_root_git_file_of_a_worktree(tmp_path):
    touch(tmp_path, "wt/amelia.yaml")
    (tmp_path / "wt/.git").write_text("gitdir: /somewhere/else\n")
    assert find_root(str(tmp_path / "wt/amelia.yaml")) == str(tmp_path / "wt")


def test_find_root_relative_path(tmp_path, monkeypatch):
    touch(tmp_path, "r/amelia.yaml")
    subprocess.run(["git", "init", "-q", str(tmp_path / "r")], check=True)
    monkeypatch.chdir(tmp_path / "r")
    assert find_root("amelia.yaml") == str(tmp_path / "r")


# -- checks validate makes (issue 10) -------------------------------------------------

@pytest.mark.parametrize("pattern, problem", [
    ("src/[z-a].c", "is not a valid glob: the range 'z-a' in '[z-a]' runs backwards"),
    ("src/[!9-0]*", "is not a valid glob: the range '9-0' in '[!9-0]' runs backwards"),
    ("src/[a-z].c", None),
    ("src/[].c", None),  # an unclosed class is a literal '['
    ("plain/file.c", None),
])
def test_glob_problem(pattern, problem):
    assert paths.glob_problem(pattern) == problem
    if problem is None and paths.is_glob(pattern):
        glob_regex(pattern)  # what validate accepts compiles


def test_a_nul_byte_is_a_confinement_problem_not_a_crash(tmp_path):
    assert confinement_problem("a\0b", str(tmp_path)) == "contains a NUL byte"
    assert paths.lexical_problem("a\0b") == "contains a NUL byte"


def test_literal_text_is_what_every_match_starts_with():
    assert paths.literal_text("build/a*.o") == "build/a"
    assert paths.literal_text("build/[ab]/x?") == "build/"
    assert paths.literal_text("**/x") == ""
    assert paths.literal_text("plain/x") == "plain/x"


def test_is_glob():
    assert [paths.is_glob(p) for p in ("a*", "a?", "a[b]", "a/b", "")] == [True, True, True, False, False]


def test_real_pattern_sees_one_file_under_two_names(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "a" / "f.txt").write_text("x")
    os.symlink("a", tmp_path / "b")
    os.symlink("a/f.txt", tmp_path / "link.txt")
    root, memo = str(tmp_path), {}
    assert paths.real_pattern("b/x", root, memo) == "a/x"
    assert paths.real_pattern("b/", root, memo) == "a/"
    assert paths.real_pattern("b/deep/new/file", root, memo) == "a/deep/new/file"
    assert paths.real_pattern("b/*.txt", root, memo) == "a/*.txt"
    assert paths.real_pattern("link.txt", root, memo) == "a/f.txt"
    assert paths.real_pattern("a/x", root, memo) == "a/x"
    assert paths.real_pattern("*.txt", root, memo) == "*.txt"
    assert paths.real_pattern("missing/x", root, memo) == "missing/x"


def test_real_pattern_outside_the_root_is_none(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "proj").mkdir()
    os.symlink(outside, tmp_path / "proj" / "out")
    assert paths.real_pattern("out/x", str(tmp_path / "proj")) is None
    assert confinement_problem("out/*.c", str(tmp_path / "proj")) == paths.SYMLINK_ESCAPE
