"""A git recipe brought onto disk at its pinned commit.

Layout under the store (`.amelia`):

    recipes/<h>.git/          a bare mirror of the repository (h = sha256(url)[:16])
    recipes/<h>/<commit>/     the repository's tree at that commit, made once, then read offline

The lock decides the commit: a locked one is used as is (the tag is never re-resolved, so
a tag moved upstream changes nothing until `amelia lock --update`); an unlocked one is
resolved (a tag to its commit, a commit id to the full id; a branch is refused) and locked.

The tree is written from `git ls-tree` and `git cat-file --batch` rather than by `git
archive` or a checkout: those apply the repository's .gitattributes (export-ignore,
export-subst) and the user's filter programs (smudge), so what is read would not be what
the commit holds. Every path is checked before it is written; a symbolic link that leads
out of the tree is left out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass

from ..git.refs import path_problem
from .errors import RecipeError
from .gitrun import git, reason
from .lock import FULL_COMMIT, Lock, LockEntry
from .refs import COMMIT_ID, RecipeRef, parse

MAX_TREE_BYTES = 100 * 1024 * 1024  # DESIGN §11: the ingestion cap
MAX_TREE_FILES = 50_000
_ALL_REFS = ("+refs/heads/*:refs/amelia/heads/*", "+refs/tags/*:refs/tags/*")


@dataclass(frozen=True)
class FetchedRecipe:
    """`file`: the recipe file (absolute); `directory`: the repository's tree at `commit`
    (the recipe's prompt files are read relative to `file`, inside it)."""

    file: str
    directory: str
    commit: str


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def fetch(ref: RecipeRef, store_dir: str, lock: Lock, *, frozen: bool = False,
          update: bool = False) -> FetchedRecipe:
    """The recipe `ref` names, at the commit the lock pins (fetched if not on disk yet), or,
    when it is not locked or `update`, at the commit its ref resolves to now (then locked:
    `lock.set`; the caller saves the lock). `frozen`: an unlocked recipe is refused."""
    ref = _checked(ref)
    if frozen and update:
        raise RecipeError("--frozen and --update contradict each other",
                          "`--update` moves pins; `--frozen` refuses any change: give one")
    entry = lock.get(ref.key)
    if entry is None and frozen:
        name = os.path.basename(lock.path) or "amelia.lock"
        raise RecipeError(f"recipe {ref.key} is not in {name}",
                          f"run `amelia lock` and commit {name} (--frozen runs only "
                          f"pinned recipes)")
    base = _recipes_dir(store_dir)
    mirror = os.path.join(base, url_hash(ref.url) + ".git")
    trees = os.path.join(base, url_hash(ref.url))
    if entry is not None and not update:
        commit = entry.commit
        if not os.path.isdir(os.path.join(trees, commit)):
            _init(mirror)
            _ensure_commit(mirror, ref, commit)
    else:
        _init(mirror)
        commit = _resolve(mirror, ref)
    directory = _materialize(mirror, commit, os.path.join(trees, commit))
    file = _recipe_file(directory, ref, commit)
    if entry is None or update:
        lock.set(ref.key, LockEntry(ref.url, ref.path_in_repo, ref.ref, commit))
    return FetchedRecipe(file, directory, commit)


def _checked(ref) -> RecipeRef:
    """The reference parsed again from its key: a RecipeRef made by hand (not by `parse`)
    gets the same checks before anything reaches git."""
    if not isinstance(ref, RecipeRef) or ref.kind != "git":
        raise ValueError(f"only a git recipe is fetched, not {ref!r}")
    again = parse(ref.key)
    if (again.kind, again.url, again.path_in_repo, again.ref) != (
            "git", ref.url, ref.path_in_repo, ref.ref):
        raise RecipeError("the recipe's URL, path and ref do not read back as one reference",
                          "write it as git+URL//PATH@REF, with no '//' in the URL's path")
    return again


def _recipes_dir(store_dir: str) -> str:
    """`<store>/recipes`, with a .gitignore so `git status` never lists the mirrors."""
    from ..paths import ignored_folder

    return ignored_folder(store_dir, "recipes", "amelia's copies of remote recipes")


def _init(mirror: str) -> None:
    if os.path.isfile(os.path.join(mirror, "HEAD")):
        return
    # --template=: no sample hooks or other files from the user's template folder
    git(os.path.dirname(mirror), "-c", "init.defaultBranch=main", "init", "--bare", "--quiet",
        "--template=", "--end-of-options", mirror)


# ---------------------------------------------------------------------------- resolving

def _unreachable(ref: RecipeRef, err: str) -> RecipeError:
    if ref.url.startswith("file:"):
        hint = "check that the path is a git repository on this machine"
    else:
        hint = ("check the URL and the network; a private repository needs a git credential "
                "helper (`git config --global credential.helper ...`)")
    return RecipeError(f"cannot read the repository {ref.url}: {reason(err) or 'git failed'}", hint)


def _fetch(mirror: str, ref: RecipeRef, *refspecs: str, check: bool = True) -> bool:
    status, _, err = git(mirror, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                         "--end-of-options", ref.url, *refspecs, check=False)
    if status != 0 and check:
        raise _unreachable(ref, err)
    return status == 0


def _commit(mirror: str, rev: str) -> str | None:
    """The full commit id rev names in the mirror, else None."""
    status, out, _ = git(mirror, "rev-parse", "--verify", "--quiet", "--end-of-options",
                         rev + "^{commit}", check=False)
    return out.decode().strip() if status == 0 else None


def _resolve(mirror: str, ref: RecipeRef) -> str:
    """The commit ref.ref names in the repository now (fetched into the mirror)."""
    r = ref.ref
    tag, branch = f"refs/tags/{r}", f"refs/heads/{r}"
    status, out, err = git(mirror, "ls-remote", "--end-of-options", ref.url, tag, branch,
                           check=False)
    if status != 0:
        raise _unreachable(ref, err)
    names = {line.partition("\t")[2] for line in out.decode("utf-8", "replace").splitlines()}
    if tag in names:
        _fetch(mirror, ref, f"+{tag}:{tag}")  # + : the tag may have moved since last time
        commit = _commit(mirror, tag)
        if not commit:
            raise RecipeError(f"tag '{r}' of {ref.url} does not name a commit",
                              "pin a tag of a commit, or a commit id")
        return commit
    if COMMIT_ID.fullmatch(r):
        commit = _find_commit(mirror, ref, r.lower())
        if commit:
            return commit
        raise RecipeError(f"{ref.url} has no tag or commit '{r}'",
                          "check the commit id (`git log --oneline` in the repository), "
                          "or pin a tag")
    if branch in names:
        raise RecipeError(f"'{r}' is a branch of {ref.url}, not a pin",
                          f"pin a tag or a commit (a branch moves): "
                          f"git+{ref.url}//{ref.path_in_repo}@v1.0 or @<commit id>")
    raise RecipeError(f"{ref.url} has no tag '{r}'",
                      f"list its tags with `git ls-remote --tags {ref.url}`, or pin a commit id")


def _by_prefix(mirror: str, hexid: str) -> str | None:
    status, out, err = git(mirror, "rev-parse", "--verify", "--end-of-options",
                           hexid + "^{commit}", check=False)
    if status != 0 and "ambiguous" in err:
        raise RecipeError(f"commit id '{hexid}' is ambiguous in the repository",
                          "give more of its hex digits")
    full = out.decode().strip() if status == 0 else ""
    return full if full.startswith(hexid) else None  # not a ref that happens to look hex


def _find_commit(mirror: str, ref: RecipeRef, hexid: str) -> str | None:
    found = _by_prefix(mirror, hexid)
    if found:
        return found
    if FULL_COMMIT.fullmatch(hexid) and _fetch(mirror, ref, hexid, check=False):
        found = _by_prefix(mirror, hexid)
        if found:
            return found
    # a short id, or a server that serves only what its refs reach: fetch those, look again
    _fetch(mirror, ref, *_ALL_REFS)
    return _by_prefix(mirror, hexid)


def _ensure_commit(mirror: str, ref: RecipeRef, commit: str) -> None:
    """The locked commit in the mirror (a clean clone of the project: fetched now)."""
    if _commit(mirror, commit) == commit:
        return
    if _fetch(mirror, ref, commit, check=False) and _commit(mirror, commit) == commit:
        return
    _fetch(mirror, ref, *_ALL_REFS)
    if _commit(mirror, commit) != commit:
        raise RecipeError(f"commit {commit[:12]}, pinned in amelia.lock for {ref.key}, is not "
                          f"in {ref.url} any more",
                          "run `amelia lock --update` to pin the ref again, and commit "
                          "amelia.lock")


# ---------------------------------------------------------------------------- the tree

def _unsafe(commit: str, path: str, why: str) -> RecipeError:
    return RecipeError(f"the repository's tree at {commit[:12]} has an unsafe path "
                       f"{path!r}: it {why}",
                       "Amelia does not write it; fix the repository or pin another commit")


def _listing(mirror: str, commit: str) -> tuple:
    """(files [(path, blob, executable)], links [(path, blob)]) of the commit's tree, each
    path checked."""
    _, out, _ = git(mirror, "ls-tree", "-r", "-z", "-l", "--full-tree", "--end-of-options",
                    commit)
    files, links, total = [], [], 0
    for rec in out.split(b"\0"):
        if not rec:
            continue
        meta, _, raw = rec.partition(b"\t")
        fields = meta.split()
        if len(fields) != 4 or fields[1] != b"blob":
            continue  # a submodule (a commit): not part of this repository's tree
        mode, _, oid, size = fields
        try:
            path = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _unsafe(commit, raw.decode("utf-8", "replace"), "is not UTF-8") from None
        why = path_problem(path)
        if not why and any(p in ("", ".") for p in path.split("/")):
            why = "has an empty or '.' part"
        if why:
            raise _unsafe(commit, path, why)
        total += int(size)
        if total > MAX_TREE_BYTES or len(files) + len(links) >= MAX_TREE_FILES:
            raise RecipeError(f"the repository's tree at {commit[:12]} is larger than "
                              f"{MAX_TREE_BYTES // (1024 * 1024)} MB or "
                              f"{MAX_TREE_FILES} files",
                              "keep recipes in a small repository of their own")
        if mode == b"120000":
            links.append((path, oid))
        else:
            files.append((path, oid, mode == b"100755"))
    return files, links


def _blobs(mirror: str, oids) -> dict:
    oids = sorted(set(oids))
    if not oids:
        return {}
    _, out, _ = git(mirror, "cat-file", "--batch", input=b"\n".join(oids) + b"\n")
    blobs, i = {}, 0
    while i < len(out):
        nl = out.index(b"\n", i)
        header = out[i:nl].split()
        if len(header) != 3 or header[1] != b"blob":
            raise RecipeError(f"the mirror lacks object {out[i:nl].decode('utf-8', 'replace')}",
                              "delete .amelia/recipes and run again")
        size = int(header[2])
        blobs[header[0]] = out[nl + 1:nl + 1 + size]
        i = nl + 1 + size + 1  # the content, then a newline
    return blobs


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _write_tree(tmp: str, files, links, blobs) -> None:
    for path, oid, executable in files:
        full = os.path.join(tmp, *path.split("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        # O_EXCL|O_NOFOLLOW: a crafted tree naming one path twice never writes through a link
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o755 if executable else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(blobs[oid])
    made = []
    for path, oid in links:  # after the files: no file is ever written through a link
        try:
            target = blobs[oid].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if not target or target.startswith("/") or "\0" in target:
            continue  # absolute: outside the tree by definition
        full = os.path.join(tmp, *path.split("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        os.symlink(target, full)
        made.append(full)
    # a link may lead out through other links (a/b -> ../.., c -> a/b/x): resolve them all
    # on disk and drop the ones that leave, until none does
    root = os.path.realpath(tmp)
    dropped = True
    while dropped:
        dropped = False
        for full in made:
            if os.path.islink(full) and not _inside(os.path.realpath(full), root):
                os.unlink(full)
                dropped = True


def _materialize(mirror: str, commit: str, dest: str) -> str:
    """The commit's tree at dest (made once: written to a temporary folder, then renamed)."""
    if os.path.isdir(dest):
        return dest
    files, links = _listing(mirror, commit)
    blobs = _blobs(mirror, [oid for _, oid, _ in files] + [oid for _, oid in links])
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        try:
            _write_tree(tmp, files, links, blobs)
        except OSError as e:
            raise RecipeError(f"cannot write the repository's tree at {commit[:12]}: "
                              f"{e.strerror or e}",
                              "check the disk; a tree naming one path twice is refused") from e
        try:
            os.rename(tmp, dest)
        except OSError:
            if not os.path.isdir(dest):  # not another process that made it first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _recipe_file(directory: str, ref: RecipeRef, commit: str) -> str:
    parts = [p for p in ref.path_in_repo.split("/") if p not in ("", ".")]
    full = os.path.join(directory, *parts)
    if os.path.isfile(full) and _inside(os.path.realpath(full), os.path.realpath(directory)):
        return full
    found = sorted(os.path.relpath(os.path.join(d, f), directory).replace(os.sep, "/")
                   for d, _, names in os.walk(directory) for f in names
                   if f.lower().endswith((".yaml", ".yml")))
    if found:
        listed = ", ".join(found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")
        hint = f"its YAML files at that commit: {listed}"
    else:
        hint = "it has no .yaml file at that commit"
    raise RecipeError(f"{ref.path_in_repo} is not in {ref.url} at {ref.ref} ({commit[:12]})", hint)
