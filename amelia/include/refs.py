"""A recipe reference as written in `include:`: a local path, or `git+URL//PATH@REF`. Pure.

Only what git can fetch without running anything: `file://`, `https://`, `http://` URLs
(never ssh, `git://`, or git's `ext::`/`fd::` transports, which run programs), no
credentials in the URL (they would be written to amelia.lock and shown in messages: a
credential helper supplies them), a path inside the repository that ends in .yaml/.yml,
and a pin: a tag, or a commit id of 7 to 40 hex digits. Whether a ref is a tag, a commit or
(refused) a branch is only known when it is fetched.

Messages never quote a URL part that may hold a secret (credentials, a query string).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

from ..git.refs import path_problem, ref_problem
from .errors import RecipeError

SCHEMES = ("file", "https", "http")
COMMIT_ID = re.compile(r"[0-9a-fA-F]{7,40}|[0-9a-fA-F]{64}")  # 64: SHA-256 repositories
EXAMPLE = "git+https://github.com/org/recipes.git//review.yaml@v1.0"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_TRANSPORT = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)::")  # git's ext::, fd::, ...
_SCP = re.compile(r"[^/:]*@[^/:]+:")  # git@github.com:org/repo (ssh)
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
                   r"(?::[0-9]{1,5})?")  # a name or [IPv6], then :port
_PIN_HINT = ("pin a tag (e.g. @v1.2.0) or a commit id (7 to 40 hex digits), e.g. "
             + EXAMPLE)


@dataclass(frozen=True)
class RecipeRef:
    """kind "local": `path` is the path as written. kind "git": `path` is the whole text as
    written, `url` the repository (`https://host/org/repo.git`), `path_in_repo` the recipe
    file in it, `ref` the tag or commit id."""

    kind: str
    path: str
    url: str = ""
    path_in_repo: str = ""
    ref: str = ""

    @property
    def key(self) -> str:
        """The lock's key: the text as written (`git+URL//PATH@REF`); the path for a local one."""
        if self.kind == "git":
            return f"git+{self.url}//{self.path_in_repo}@{self.ref}"
        return self.path


def _shown(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def _fail(message: str, hint: str = "") -> NoReturn:
    raise RecipeError(message, hint or f"write a local path, or git+URL//PATH@REF, e.g. {EXAMPLE}")


def parse(text) -> RecipeRef:
    """The reference `text` names; RecipeError (message, hint) when it is malformed."""
    if not isinstance(text, str):
        _fail("the recipe is not text")
    if not text.strip():
        _fail("the recipe is empty")
    for ch in text:
        if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            _fail(f"the recipe contains a control character ({_shown(ch)})",
                  "remove it: a recipe is a path or a URL on one line")
    if text != text.strip():
        _fail("the recipe starts or ends with spaces", "remove them")
    if text.startswith("git+"):
        return _parse_git(text)
    if _SCHEME.match(text) or _TRANSPORT.match(text):
        _fail("the recipe looks like a URL but does not start with 'git+'",
              f"a recipe in a git repository is git+URL//PATH@REF, e.g. {EXAMPLE}")
    return RecipeRef("local", text)


def _parse_git(text: str) -> RecipeRef:
    rest = text[len("git+"):]
    m = _SCHEME.match(rest)
    if not m:
        _not_a_url(rest)
    scheme = m.group(1)
    if scheme not in SCHEMES:
        hint = f"use the repository's https:// URL, e.g. {EXAMPLE}"
        if scheme.lower() in SCHEMES:
            hint = f"write the scheme in lower case ({scheme.lower()}://)"
        elif scheme.lower() in ("ssh", "git+ssh", "ssh+git"):
            hint += " (a git credential helper supplies the password of a private repository)"
        _fail(f"the recipe's URL uses the '{scheme}' scheme; only file://, https:// and http:// "
              f"are allowed", hint)
    after = rest[m.end():]
    host, slash, _ = after.partition("/")
    if "@" in host:  # user or token: never echoed, never locked
        _fail("the recipe's URL holds credentials (a user or token before '@')",
              "remove them and use a credential helper (`git config --global credential.helper "
              "...`): a secret in the URL would be written to amelia.lock")
    if not slash:
        _fail("the recipe's URL has no repository path, nor '//' and the recipe's path after it",
              f"write git+URL//PATH@REF, e.g. {EXAMPLE}")
    if scheme == "file":
        if host not in ("", "localhost"):
            _fail("a file:// URL names a host; only a repository on this machine can be read",
                  "write git+file:///absolute/path/repo.git//recipe.yaml@v1")
    elif not _HOST.fullmatch(host):
        bad = next((c for c in host if not (c.isascii() and (c.isalnum() or c in ".-:[]"))), "")
        why = f" (it contains {bad!r})" if bad and bad not in "?#%" else ""
        _fail(f"the recipe's URL does not have a valid host name{why}",
              f"write git+{scheme}://HOST/PATH//recipe.yaml@v1, e.g. {EXAMPLE}")
    repo_and_rest = after[len(host):]  # starts with '/'
    sep = repo_and_rest.find("//")
    if sep == -1:
        _fail("the recipe has no '//' between the repository's URL and the recipe's path in it",
              f"write git+URL//PATH@REF, e.g. {EXAMPLE}")
    repo, inner = repo_and_rest[:sep], repo_and_rest[sep + 2:]
    if repo in ("", "/"):
        _fail("the recipe's URL has no repository path before '//'",
              f"write git+URL//PATH@REF, e.g. {EXAMPLE}")
    if "?" in repo or "#" in repo:  # a query may carry a token: not echoed
        _fail("the recipe's URL has a query or a fragment ('?' or '#')",
              "remove it; use a credential helper for access to a private repository")
    if any(c.isspace() for c in repo):
        _fail("the recipe's URL contains a space", "encode it as %20")
    path, at, ref = inner.rpartition("@")
    if not at:
        _fail(f"the recipe {inner!r} in the repository is not pinned to a tag or a commit",
              f"pin it: add @TAG or @COMMIT, e.g. {inner}@v1.0")
    _check_path(path)
    _check_ref(ref)
    return RecipeRef("git", text, url=f"{scheme}://{host}{repo}", path_in_repo=path, ref=ref)


def _not_a_url(rest: str) -> NoReturn:
    t = _TRANSPORT.match(rest)
    if t:
        _fail(f"the recipe's URL uses git's '{t.group(1)}::' transport, which runs a program",
              f"use a file://, https:// or http:// URL, e.g. {EXAMPLE}")
    if _SCP.match(rest):
        _fail("the recipe's URL is an ssh address (user@host:path); only file://, https:// and "
              "http:// are allowed",
              f"use the repository's https:// URL (a git credential helper supplies the "
              f"password of a private repository), e.g. {EXAMPLE}")
    if rest.startswith(("/", ".", "~")) or not rest:
        _fail("'git+' is followed by a path, not a URL",
              "for a repository on this machine write git+file:///absolute/path/repo.git"
              "//recipe.yaml@v1")
    _fail("'git+' is not followed by a URL (scheme://...)",
          f"write git+URL//PATH@REF, e.g. {EXAMPLE}")


def _check_path(path: str) -> None:
    if not path:
        _fail("the recipe has no path after '//'",
              f"name the recipe file in the repository, e.g. {EXAMPLE}")
    problem = path_problem(path)
    if problem:
        problem = problem.replace("the worktree", "the repository").replace(
            "relative to the project", "relative to the repository's root")
        _fail(f"the recipe's path {path!r} {problem}",
              f"give the recipe file's path in the repository, e.g. {EXAMPLE}")
    if "\\" in path:
        _fail(f"the recipe's path {path!r} contains '\\'", "separate folders with '/'")
    if not path.lower().endswith((".yaml", ".yml")):
        _fail(f"the recipe's path {path!r} does not end in .yaml or .yml",
              "name the recipe's pipeline file, e.g. sdlc/full.yaml")


def _check_ref(ref: str) -> None:
    if not ref:
        _fail("the recipe has nothing after '@'", f"pin it: {_PIN_HINT}")
    if COMMIT_ID.fullmatch(ref):
        return
    problem = ref_problem(ref)
    if problem:
        _fail(f"the recipe's ref {ref!r} {problem}", _PIN_HINT)
