"""amelia.lock: sorted JSON ending in a newline, written only when changed, and a damaged
file refused with its name and what to do."""

from __future__ import annotations

import json

import pytest

from amelia.include import Lock, LockEntry, RecipeError

A = "git+https://h/a.git//a.yaml@v1"
B = "git+file:///srv/b.git//x/b.yaml@3f2a1c9"
EA = LockEntry("https://h/a.git", "a.yaml", "v1", "1" * 40)
EB = LockEntry("file:///srv/b.git", "x/b.yaml", "3f2a1c9", "3f2a1c9" + "0" * 33)


def test_a_missing_file_is_an_empty_lock_and_is_not_written(tmp_path):
    lock = Lock.load(str(tmp_path / "amelia.lock"))
    assert len(lock) == 0 and lock.get(A) is None and not lock.changed
    assert lock.save() is False
    assert not (tmp_path / "amelia.lock").exists()


def test_written_sorted_with_a_newline_and_read_back(tmp_path):
    path = tmp_path / "amelia.lock"
    lock = Lock.load(str(path))
    lock.set(A, EA)
    lock.set(B, EB)
    assert lock.changed
    assert lock.save() is True and not lock.changed
    text = path.read_text()
    assert text.endswith("}\n")
    assert text == json.dumps({"version": 1, "recipes": {
        A: {"commit": "1" * 40, "path": "a.yaml", "ref": "v1", "url": "https://h/a.git"},
        B: {"commit": EB.commit, "path": "x/b.yaml", "ref": "3f2a1c9", "url": "file:///srv/b.git"},
    }}, indent=2, sort_keys=True) + "\n"
    assert text.index(B) < text.index(A)  # sorted ("git+file" < "git+https"), not as set
    again = Lock.load(str(path))
    assert again.get(A) == EA and again.get(B) == EB and again.keys() == [B, A]


def test_only_written_when_changed(tmp_path):
    path = tmp_path / "amelia.lock"
    # valid but not in Amelia's own layout: left byte for byte when nothing changes
    raw = json.dumps({"recipes": {A: {"url": EA.url, "path": EA.path, "ref": EA.ref,
                                      "commit": EA.commit}}, "version": 1})
    path.write_text(raw)
    lock = Lock.load(str(path))
    lock.set(A, EA)  # the same entry
    lock.keep_only([A, B])  # nothing to drop
    assert not lock.changed and lock.save() is False
    assert path.read_text() == raw
    lock.set(A, LockEntry(EA.url, EA.path, EA.ref, "2" * 40))
    assert lock.changed and lock.save()
    assert Lock.load(str(path)).get(A).commit == "2" * 40


def test_keep_only_drops_what_no_include_names(tmp_path):
    lock = Lock(str(tmp_path / "amelia.lock"))
    lock.set(A, EA)
    lock.set(B, EB)
    lock.save()
    lock.keep_only([B])
    assert lock.changed and lock.get(A) is None and lock.get(B) == EB
    lock.save()
    assert list(json.loads((tmp_path / "amelia.lock").read_text())["recipes"]) == [B]


def test_set_refuses_a_short_commit(tmp_path):
    with pytest.raises(ValueError):
        Lock(str(tmp_path / "l")).set(A, LockEntry(EA.url, EA.path, EA.ref, "abc1234"))


def _doc(**entry):
    return json.dumps({"version": 1, "recipes": {A: {"url": EA.url, "path": EA.path,
                                                     "ref": EA.ref, "commit": EA.commit,
                                                     **entry}}})


@pytest.mark.parametrize("content, why", [
    ("{not json", "is not JSON"),
    (b"\xff\xfe", "is not JSON"),
    ("[]", "is not a JSON object"),
    ('{"recipes": {}}', '"version" is None'),
    ('{"version": 1}', 'no "recipes" object'),
    ('{"version": 1, "recipes": {"review.yaml": {}}}', "is not a git recipe"),
    ('{"version": 1, "recipes": {"git+ext::sh//a.yaml@v1": {}}}', "is not a git recipe"),
    ('{"version": 1, "recipes": {"%s": "x"}}' % A, "text fields url, path, ref, commit"),
    (_doc(url="https://h/other.git"), "does not agree with its key"),
    (_doc(commit="--upload-pack=touch x"), "not a full commit id"),
    (_doc(commit="abc1234"), "not a full commit id"),
])
def test_a_damaged_lock_is_named_with_a_hint(tmp_path, content, why):
    path = tmp_path / "amelia.lock"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(RecipeError) as e:
        Lock.load(str(path))
    assert e.value.message.startswith(f"{path} is damaged: ")
    assert why in e.value.message
    assert e.value.hint == "delete it and run `amelia lock`"


def test_a_newer_lock_says_so(tmp_path):
    path = tmp_path / "amelia.lock"
    path.write_text('{"version": 2, "recipes": {}}\n')
    with pytest.raises(RecipeError) as e:
        Lock.load(str(path))
    assert "newer Amelia (lock version 2)" in e.value.message and "upgrade" in e.value.hint


def test_an_unreadable_lock(tmp_path):
    (tmp_path / "amelia.lock").mkdir()
    with pytest.raises(RecipeError) as e:
        Lock.load(str(tmp_path / "amelia.lock"))
    assert "cannot read" in e.value.message and "amelia lock" in e.value.hint
