"""Fetching git recipes from a real bare repository made here, served as git+file://: pins by
tag and by commit, the lock, offline reuse, --frozen, --update, and what is refused."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from amelia.include import FetchedRecipe, Lock, LockEntry, RecipeError, RecipeRef, fetch, parse

USER = ["-c", "user.name=User", "-c", "user.email=user@example.com"]


def sh(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()


class Source:
    """A work repository and its bare copy (what the recipe URL names)."""

    def __init__(self, root: Path):
        self.work = root / "work"
        self.bare = root / "recipes.git"
        self.url = self.bare.as_uri()  # file:///...

    def commit(self, files: dict, message: str) -> str:
        for rel, text in files.items():
            p = self.work / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(text, tuple):  # ("link", target)
                if p.is_symlink() or p.exists():
                    p.unlink()
                os.symlink(text[1], p)
            else:
                p.write_text(text)
        sh(self.work, "add", "-A")
        sh(self.work, *USER, "commit", "-q", "-m", message)
        return sh(self.work, "rev-parse", "HEAD")

    def tag(self, name: str, annotated: bool = False, force: bool = False) -> None:
        args = ["tag"] + (["-f"] if force else []) + (["-a", "-m", name] if annotated else [])
        sh(self.work, *USER, *args, name)
        sh(self.work, "push", "-q", "--force", str(self.bare), f"refs/tags/{name}",
           "refs/heads/main")

    def ref(self, ref: str, path: str = "review.yaml") -> RecipeRef:
        return parse(f"git+{self.url}//{path}@{ref}")


@pytest.fixture
def source(tmp_path, monkeypatch) -> Source:
    """review.yaml and its prompt at v1 (a plain tag) and v2 (an annotated one), on main."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    src = Source(tmp_path)
    src.work.mkdir()
    sh(src.work, "init", "-q", "-b", "main")
    src.v1 = src.commit({
        "review.yaml": "version: 1\n",
        "prompts/critique.md": "critique v1\n",
        "sdlc/full.yaml": "full: 1\n",
        # git archive would leave prompts/ out: the tree is the commit's, not an export
        ".gitattributes": "prompts export-ignore\n",
    }, "v1")
    sh(tmp_path, "init", "-q", "--bare", "-b", "main", str(src.bare))
    src.tag("v1")
    src.v2 = src.commit({"review.yaml": "version: 2\n", "prompts/critique.md": "critique v2\n"},
                        "v2")
    src.tag("v2", annotated=True)
    return src


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "project" / ".amelia"


@pytest.fixture
def lock(tmp_path) -> Lock:
    (tmp_path / "project").mkdir(exist_ok=True)
    return Lock.load(str(tmp_path / "project" / "amelia.lock"))


def test_fetch_by_tag_materializes_and_locks(source, store, lock):
    ref = source.ref("v1")
    got = fetch(ref, str(store), lock)
    h = hashlib.sha256(source.url.encode()).hexdigest()[:16]
    directory = os.path.join(os.path.realpath(store), "recipes", h, source.v1)
    assert got == FetchedRecipe(os.path.join(directory, "review.yaml"), directory, source.v1)
    assert os.path.isabs(got.file)
    assert Path(got.file).read_text() == "version: 1\n"
    assert (Path(got.directory) / "prompts" / "critique.md").read_text() == "critique v1\n"
    assert os.path.isdir(os.path.join(os.path.realpath(store), "recipes", h + ".git"))
    assert (store / "recipes" / ".gitignore").read_text().endswith("*\n")
    assert lock.changed
    entry = lock.get(ref.key)
    assert (entry.url, entry.path, entry.ref, entry.commit) == (source.url, "review.yaml", "v1",
                                                                 source.v1)
    assert lock.save()
    doc = json.loads(Path(lock.path).read_text())
    assert doc == {"version": 1, "recipes": {ref.key: {"url": source.url, "path": "review.yaml",
                                                       "ref": "v1", "commit": source.v1}}}


def test_an_annotated_tag_resolves_to_its_commit(source, store, lock):
    got = fetch(source.ref("v2"), str(store), lock)
    assert got.commit == source.v2  # peeled: the commit, not the tag object
    assert Path(got.file).read_text() == "version: 2\n"
    nested = fetch(source.ref("v2", "sdlc/full.yaml"), str(store), lock)
    assert nested.directory == got.directory and nested.file.endswith("/sdlc/full.yaml")


@pytest.mark.parametrize("digits", [7, 12, 40])
def test_fetch_by_commit(source, store, lock, digits):
    ref = source.ref(source.v1[:digits])
    got = fetch(ref, str(store), lock)
    assert got.commit == source.v1 and Path(got.file).read_text() == "version: 1\n"
    assert lock.get(ref.key).commit == source.v1  # the full id is locked


def test_a_second_fetch_is_offline(source, store, lock, tmp_path):
    ref = source.ref("v1")
    first = fetch(ref, str(store), lock)
    lock.save()
    source.bare.rename(tmp_path / "gone.git")  # the remote is unreachable now
    again = Lock.load(lock.path)
    second = fetch(ref, str(store), again)
    assert second == first and not again.changed
    assert Path(second.file).read_text() == "version: 1\n"
    # frozen too: the lock has it, the copy is there
    assert fetch(ref, str(store), again, frozen=True) == first


def test_a_clean_clone_fetches_the_locked_commit_even_after_the_tag_moved(source, tmp_path, lock):
    ref = source.ref("v1")
    fetch(ref, str(tmp_path / "dev" / ".amelia"), lock)
    lock.save()
    source.commit({"review.yaml": "version: 1, moved\n"}, "moved")
    source.tag("v1", force=True)
    ci = Lock.load(lock.path)  # CI: the committed lock, no .amelia yet
    got = fetch(ref, str(tmp_path / "ci" / ".amelia"), ci, frozen=True)
    assert got.commit == source.v1 and Path(got.file).read_text() == "version: 1\n"
    assert not ci.changed


def test_frozen_refuses_a_recipe_not_in_the_lock(source, store, lock):
    with pytest.raises(RecipeError) as e:
        fetch(source.ref("v1"), str(store), lock, frozen=True)
    assert e.value.message == f"recipe {source.ref('v1').key} is not in amelia.lock"
    assert "run `amelia lock` and commit amelia.lock" in e.value.hint
    assert not lock.changed and not (store / "recipes").exists()  # nothing fetched


def test_update_moves_the_pin_after_the_tag_moved(source, store, lock):
    ref = source.ref("v1")
    fetch(ref, str(store), lock)
    lock.save()
    moved = source.commit({"review.yaml": "version: 1.1\n"}, "fix")
    source.tag("v1", force=True)
    kept = fetch(ref, str(store), lock)  # without --update the lock wins
    assert kept.commit == source.v1 and not lock.changed
    got = fetch(ref, str(store), lock, update=True)
    assert got.commit == moved and Path(got.file).read_text() == "version: 1.1\n"
    assert lock.changed and lock.get(ref.key).commit == moved
    assert lock.save() and Lock.load(lock.path).get(ref.key).commit == moved
    assert Path(kept.file).read_text() == "version: 1\n"  # the old copy stays as it was


def test_a_new_tag_is_a_new_pin(source, store, lock):
    old = source.ref("v1")
    fetch(old, str(store), lock)
    lock.save()
    v3 = source.commit({"review.yaml": "version: 3\n"}, "v3")
    source.tag("v3")
    new = source.ref("v3")  # the include now says @v3
    got = fetch(new, str(store), lock, update=True)
    lock.keep_only([new.key])
    assert got.commit == v3 and lock.keys() == [new.key] and lock.changed


def test_update_and_frozen_together_are_refused(source, store, lock):
    with pytest.raises(RecipeError) as e:
        fetch(source.ref("v1"), str(store), lock, frozen=True, update=True)
    assert "contradict" in e.value.message


def test_a_branch_is_not_a_pin(source, store, lock):
    with pytest.raises(RecipeError) as e:
        fetch(source.ref("main"), str(store), lock)
    assert e.value.message == f"'main' is a branch of {source.url}, not a pin"
    assert e.value.hint.startswith("pin a tag or a commit")
    assert not lock.changed


def test_an_unknown_tag(source, store, lock):
    with pytest.raises(RecipeError) as e:
        fetch(source.ref("v9"), str(store), lock)
    assert e.value.message == f"{source.url} has no tag 'v9'"
    assert "git ls-remote --tags" in e.value.hint and not lock.changed


@pytest.mark.parametrize("commit", ["deadbeef12", "d" * 40])
def test_an_unknown_commit(source, store, lock, commit):
    with pytest.raises(RecipeError) as e:
        fetch(source.ref(commit), str(store), lock)
    assert e.value.message == f"{source.url} has no tag or commit '{commit}'"
    assert not lock.changed


def test_a_path_not_in_the_repository(source, store, lock):
    with pytest.raises(RecipeError) as e:
        fetch(source.ref("v1", "missing/review.yaml"), str(store), lock)
    assert e.value.message == (f"missing/review.yaml is not in {source.url} at v1 "
                               f"({source.v1[:12]})")
    assert e.value.hint == "its YAML files at that commit: review.yaml, sdlc/full.yaml"
    assert not lock.changed


def test_an_unreachable_repository(tmp_path, store, lock):
    url = (tmp_path / "nowhere.git").as_uri()
    with pytest.raises(RecipeError) as e:
        fetch(parse(f"git+{url}//a.yaml@v1"), str(store), lock)
    assert e.value.message.startswith(f"cannot read the repository {url}: ")
    assert "does not appear to be a git repository" in e.value.message
    assert "is a git repository" in e.value.hint


def test_a_locked_commit_gone_from_the_repository(source, store, lock, tmp_path):
    ref = source.ref("v1")
    lock.set(ref.key, LockEntry(source.url, "review.yaml", "v1", "e" * 40))
    with pytest.raises(RecipeError) as e:
        fetch(ref, str(store), lock)
    assert "pinned in amelia.lock" in e.value.message and "amelia lock --update" in e.value.hint


def test_the_users_repository_variables_are_ignored(source, store, lock, tmp_path, monkeypatch):
    """Run from a user's hook: GIT_DIR and GIT_INDEX_FILE point at their repository."""
    user = tmp_path / "user"
    user.mkdir()
    sh(user, "init", "-q")
    monkeypatch.setenv("GIT_DIR", str(user / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(user / ".git" / "index"))
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "ext:file")  # would re-allow ext:: otherwise
    got = fetch(source.ref("v2"), str(store), lock)
    assert got.commit == source.v2
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert sh(user, "for-each-ref") == "" and not (user / ".git" / "index").exists()


def test_symbolic_links_leaving_the_tree_are_left_out(source, store, lock):
    commit = source.commit({
        "evil.yaml": ("link", "/etc/passwd"),
        "up": ("link", "../../.."),
        "deep/a": ("link", ".."),  # the root: inside
        "deep/b.yaml": ("link", "a/../x"),  # deep/x to the eye, but through deep/a: out
        "prompts/same.md": ("link", "critique.md"),
    }, "links")
    source.tag("links")
    got = fetch(source.ref("links"), str(store), lock)
    assert got.commit == commit
    d = Path(got.directory)
    assert not os.path.lexists(d / "evil.yaml") and not os.path.lexists(d / "up")
    assert not os.path.lexists(d / "deep" / "b.yaml")
    assert (d / "prompts" / "same.md").read_text() == "critique v2\n"
    with pytest.raises(RecipeError) as e:
        fetch(source.ref("links", "evil.yaml"), str(store), lock)
    assert "evil.yaml is not in" in e.value.message


HOSTILE = [
    "git+ext::sh -c touch% {mark}//x.yaml@v1",
    "git+file:///x//-u.yaml@v1",
    "git+--upload-pack=touch {mark}//x.yaml@v1",
    "git+file://{src}//review.yaml@--upload-pack=touch {mark}",
    "git+file://{src}//--upload-pack=touch {mark}.yaml@v1",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_references_are_refused_and_run_nothing(tmp_path, text):
    mark = tmp_path / "pwned"
    text = text.format(mark=mark, src=tmp_path / "recipes.git")
    with pytest.raises(RecipeError):
        parse(text)
    assert not mark.exists()


@pytest.mark.parametrize("forged", [
    dict(url="ext::sh -c touch% {mark}", path_in_repo="x.yaml", ref="v1"),
    dict(url="{url}", path_in_repo="-u.yaml", ref="v1"),
    dict(url="{url}", path_in_repo="review.yaml", ref="--upload-pack=touch {mark}"),
    dict(url="--upload-pack=touch {mark}", path_in_repo="x.yaml", ref="v1"),
    dict(url="{url}//sub", path_in_repo="review.yaml", ref="v1"),  # does not read back
])
def test_a_forged_reference_is_checked_again_before_git(source, store, lock, tmp_path, forged):
    mark = tmp_path / "pwned"
    fields = {k: v.format(mark=mark, url=source.url) for k, v in forged.items()}
    ref = RecipeRef("git", "forged", **fields)
    with pytest.raises(RecipeError):
        fetch(ref, str(store), lock)
    assert not mark.exists() and not store.exists() and not lock.changed


def test_a_local_recipe_is_not_fetched(store, lock):
    with pytest.raises(ValueError):
        fetch(parse("recipes/review.yaml"), str(store), lock)


def test_the_runner_allows_only_file_https_http(tmp_path, monkeypatch):
    """Even when the user's environment re-allows git's ext:: transport."""
    from amelia.include.gitrun import environment, git

    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "ext:file")
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "user" / ".git"))
    assert environment()["GIT_ALLOW_PROTOCOL"] == "file:https:http"
    assert "GIT_DIR" not in environment() and environment()["GIT_TERMINAL_PROMPT"] == "0"
    mark = tmp_path / "pwned"
    status, _, err = git(str(tmp_path), "ls-remote", "--end-of-options",
                         f"ext::sh -c touch% {mark}", check=False)
    assert status != 0 and "not allowed" in err and not mark.exists()


def test_no_hook_and_no_template_of_the_user_runs(source, store, lock, tmp_path):
    """The user's global init.templateDir brings hooks into every new repository."""
    mark = tmp_path / "hook-ran"
    hooks = tmp_path / "template" / "hooks"
    hooks.mkdir(parents=True)
    for name in ("reference-transaction", "post-checkout", "pre-auto-gc"):
        (hooks / name).write_text(f"#!/bin/sh\necho {name} >> '{mark}'\n")
        (hooks / name).chmod(0o755)
    Path(os.environ["HOME"], ".gitconfig").write_text(
        f"[init]\n\ttemplateDir = {tmp_path / 'template'}\n[core]\n\thooksPath = {hooks}\n")
    got = fetch(source.ref("v1"), str(store), lock)
    assert got.commit == source.v1 and not mark.exists()
    mirror = Path(got.directory).parent.with_suffix(".git")
    assert not (mirror / "hooks").exists()


def test_git_missing(source, store, lock, monkeypatch):
    monkeypatch.setenv("PATH", str(store))  # no git there
    with pytest.raises(RecipeError) as e:
        fetch(source.ref("v1"), str(store), lock)
    assert e.value.message == "git is not installed (or not on PATH)"
    assert "install git" in e.value.hint
