"""Names that reach git: Amelia's checks agree with git's own and refuse hostile names."""

from __future__ import annotations

import subprocess

import pytest

from amelia.git.refs import base_problem, path_problem, ref_problem, remote_problem, target_name_problem

HOSTILE = ["--upload-pack=touch x", "-b", "a..b", "../../.git/hooks/x", "feature\nx", "x\n"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_everywhere(name):
    assert ref_problem(name)
    assert base_problem(name)
    assert remote_problem(name)
    assert target_name_problem(name)


def test_messages_are_short_and_say_why():
    assert ref_problem("-b") == "starts with '-', which git would read as an option"
    assert ref_problem("a..b") == "contains '..'"
    assert ref_problem("a\nb") == "contains a control character (U+000A)"
    assert ref_problem("") == "is empty"
    assert "absolute" in ref_problem("/etc/passwd")
    assert ref_problem("x" * 201) == "is longer than 200 bytes"
    assert ref_problem(None) == "is not a string"


# git's own examples and rules (git-check-ref-format(1)), as branch names
VALID = ["main", "feature/x", "v1.2", "a-b_c", "release/2024.01", "x@y", "ü", "a.b/c.d",
         "amelia/docs", "@a", "a@", "a{b}", "a}", "#1", "a'b", "a\"b", "a!b", "a=b", "a+b"]
INVALID = [".hidden", "a/.b", "a.lock", "a/b.lock", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*",
           "a[b", "a\\b", "/a", "a/", "a//b", "a.", "a@{1}", "@", "HEAD", "-x", "a\x7fb",
           "a\tb", "", "refs/heads/.x"]


@pytest.mark.parametrize("name", VALID)
def test_valid(name):
    assert ref_problem(name) is None


@pytest.mark.parametrize("name", INVALID)
def test_invalid(name):
    assert ref_problem(name)


def test_agrees_with_git_check_ref_format(tmp_path):
    """Whatever Amelia accepts, git accepts; whatever git refuses, Amelia refuses."""
    disagree = []
    for name in VALID + INVALID + HOSTILE[:4] + ["a/b/c", "a.lock/b", "x.", "a/./b", "ok.lock.x"]:
        if "\n" in name or "\x00" in name:
            continue
        git_ok = subprocess.run(["git", "check-ref-format", "--branch", name], cwd=tmp_path,
                                capture_output=True).returncode == 0
        ours = ref_problem(name) is None
        if ours and not git_ok:
            disagree.append(name)
        if git_ok and not ours and name != "@":  # `--branch @` is git's shorthand for HEAD's branch
            disagree.append(name)
    assert disagree == []


def test_bases_take_revisions_not_ranges():
    for ok in ("main", "origin/main", "v1.0", "HEAD", "HEAD~1", "main^", "main~2^2", "a860cdb4",
               "a860cdb4f7735efc32b4d4a681ce67d319f902c9"):
        assert base_problem(ok) is None, ok
    for bad in ("main..dev", "main@{yesterday}", "HEAD:README.md", "~1", "-x", "main dev", ":/fix"):
        assert base_problem(bad), bad


def test_remotes_are_names_not_urls():
    for ok in ("origin", "upstream", "my-fork", "team/fork", "a.b"):
        assert remote_problem(ok) is None, ok
    for bad in ("https://evil/x.git", "file:///tmp/x", "git@host:x", "a b", ".x", "a..b", "x" * 101):
        assert remote_problem(bad), bad


def test_target_names_are_folder_names():
    assert target_name_problem("docs") is None
    assert target_name_problem("my_target-2") is None
    for bad in (".scratch", "a/b", "..", "a.b", "1x", "x" * 65):
        assert target_name_problem(bad), bad


def test_paths_stay_inside():
    for ok in ("a.txt", "docs/", "docs/a.md", "./a", "a/.gitignore"):
        assert path_problem(ok) is None, ok
    for bad in ("/etc/passwd", "../x", "a/../../x", ".git/config", "a/.GIT/x", ".", "", "a\nb", "-rf"):
        assert path_problem(bad), bad
