"""Recipe references: what `include: recipe:` accepts and, table-driven, what it refuses and
how it says so."""

from __future__ import annotations

import pytest

from amelia.include import RecipeError, RecipeRef, parse


@pytest.mark.parametrize("text, url, path, ref", [
    ("git+https://github.com/org/recipes.git//sdlc/full.yaml@v1.2.0",
     "https://github.com/org/recipes.git", "sdlc/full.yaml", "v1.2.0"),
    ("git+file:///srv/recipes.git//code-review.yaml@3f2a1c9e04b1",
     "file:///srv/recipes.git", "code-review.yaml", "3f2a1c9e04b1"),
    ("git+file://localhost/srv/r//a.yml@release/2024", "file://localhost/srv/r", "a.yml",
     "release/2024"),
    ("git+http://git.example.com:8080/r.git//x/y.yaml@" + "a" * 40,
     "http://git.example.com:8080/r.git", "x/y.yaml", "a" * 40),
    ("git+https://host/r.git//dir@2/x.yaml@v1", "https://host/r.git", "dir@2/x.yaml", "v1"),
])
def test_git_references(text, url, path, ref):
    r = parse(text)
    assert (r.kind, r.url, r.path_in_repo, r.ref, r.path) == ("git", url, path, ref, text)
    assert r.key == text  # the lock's key is the text as written


@pytest.mark.parametrize("text", ["recipes/review.yaml", "../shared/review.yaml", "review.yml",
                                  "/abs/review.yaml"])
def test_local_references(text):
    r = parse(text)
    assert r == RecipeRef("local", text) and r.key == text


SECRET = "ghp_s3cretT0ken"
BAD = [
    # (text, in the message, in the hint)
    (42, "is not text", "git+URL//PATH@REF"),
    ("", "is empty", "git+URL//PATH@REF"),
    (" git+https://h/r.git//a.yaml@v1", "spaces", "remove them"),
    ("git+https://h/r.git//a.yaml@v1\n", "control character (U+000A)", "one line"),
    ("recipes/a\x1b[31m.yaml", "control character (U+001B)", "one line"),
    ("https://h/r.git//a.yaml@v1", "does not start with 'git+'", "git+https://"),
    ("git+ssh://git@github.com/org/r.git//a.yaml@v1", "'ssh' scheme", "credential helper"),
    ("git+git://h/r.git//a.yaml@v1", "'git' scheme", "https://"),
    ("git+HTTPS://h/r.git//a.yaml@v1", "'HTTPS' scheme", "lower case (https://)"),
    ("git+ext::sh -c touch% /tmp/pwned//x.yaml@v1", "'ext::' transport, which runs a program",
     "https://"),
    ("git+fd::3//x.yaml@v1", "'fd::' transport", "https://"),
    ("git+git@github.com:org/r.git//a.yaml@v1", "ssh address", "https://"),
    ("git+/srv/r.git//a.yaml@v1", "followed by a path", "git+file:///absolute/path"),
    ("git+--upload-pack=touch /tmp/x//a.yaml@v1", "not followed by a URL", "git+URL//PATH@REF"),
    ("git+file://otherhost/r.git//a.yaml@v1", "names a host", "git+file:///"),
    ("git+https://ho st/r.git//a.yaml@v1", "valid host name (it contains ' ')", "HOST"),
    ("git+https://h", "no repository path", "git+URL//PATH@REF"),
    ("git+https://h/r.git/a.yaml@v1", "no '//'", "git+URL//PATH@REF"),
    ("git+file:////a.yaml@v1", "no repository path before '//'", "git+URL//PATH@REF"),
    ("git+https://h/my repo.git//a.yaml@v1", "contains a space", "%20"),
    ("git+https://h/r.git//a.yaml", "not pinned", "pin it: add @TAG or @COMMIT, e.g. a.yaml@v1.0"),
    ("git+https://h/r.git//a.yaml@", "nothing after '@'", "pin it"),
    ("git+https://h/r.git//@v1", "no path after '//'", "name the recipe file"),
    ("git+https://h/r.git//a.txt@v1", "does not end in .yaml or .yml", "sdlc/full.yaml"),
    ("git+https://h/r.git//../x.yaml@v1", "contains '..'", "path in the repository"),
    ("git+https://h/r.git//.git/hooks/x.yaml@v1", "is inside .git", "path in the repository"),
    ("git+https://h/r.git//a\\b.yaml@v1", "contains '\\'", "'/'"),
    ("git+file:///x//-u.yaml@v1", "starts with '-'", "path in the repository"),
    ("git+https://h/r.git//a.yaml@--upload-pack=touch x", "starts with '-'", "pin a tag"),
    ("git+https://h/r.git//a.yaml@main~1", "contains '~'", "7 to 40 hex digits"),
    ("git+https://h/r.git//a.yaml@a..b", "contains '..'", "pin a tag"),
    ("git+https://h/r.git//a.yaml@HEAD", "is 'HEAD'", "pin a tag"),
    ("git+https://h/r.git//a.yaml@v1.lock", "'.lock'", "pin a tag"),
]


@pytest.mark.parametrize("text, message, hint", BAD)
def test_refused(text, message, hint):
    with pytest.raises(RecipeError) as e:
        parse(text)
    assert message in e.value.message
    assert hint in e.value.hint


@pytest.mark.parametrize("text", [
    f"git+https://user:{SECRET}@github.com/org/r.git//a.yaml@v1",
    f"git+https://{SECRET}@github.com/org/r.git//a.yaml@v1",
    f"git+https://{SECRET}@github.com",
])
def test_credentials_refused_and_never_echoed(text):
    with pytest.raises(RecipeError) as e:
        parse(text)
    assert "credentials" in e.value.message
    assert "credential helper" in e.value.hint
    assert SECRET not in e.value.message + e.value.hint + str(e.value)


def test_a_query_is_refused_and_never_echoed():
    with pytest.raises(RecipeError) as e:
        parse(f"git+https://h/r.git?private_token={SECRET}//a.yaml@v1")
    assert "query" in e.value.message and "credential helper" in e.value.hint
    assert SECRET not in e.value.message + e.value.hint
