"""Chat sessions in state.db: saving turns, listing, prefixes, and the upgrade to schema 5."""

from __future__ import annotations

import sqlite3

from amelia.store.chats import ID_ALPHABET, ID_LENGTH, ChatMessage, new_id, title_of
from amelia.store.state import SCHEMA_VERSION, StateDB


def turn(question: str, answer: str, model: str = "default", cost=0.001):
    return [ChatMessage("user", question),
            ChatMessage("assistant", answer, model, 10, 5, cost)]


def test_a_turn_creates_the_session_and_later_turns_append(tmp_path):
    db = StateDB(str(tmp_path / "state.db"))
    try:
        chats = db.chats
        sid = chats.unused_id()
        assert chats.session(sid) is None
        chats.save_turn(sid, "default", "", turn("How   do I\ninstall it?", "Like this."))
        chats.save_turn(sid, "fast", "docs", turn("And then?", "Then that.", "fast", None))
        s = chats.session(sid)
        assert s["title"] == "How do I install it?"  # the first message, on one line
        assert (s["model"], s["source"]) == ("fast", "docs")  # what the last turn used
        msgs = chats.messages(sid)
        assert [(m.role, m.content) for m in msgs] == [
            ("user", "How   do I\ninstall it?"), ("assistant", "Like this."),
            ("user", "And then?"), ("assistant", "Then that.")]
        assert msgs[1].input_tokens == 10 and msgs[3].model == "fast" and msgs[3].cost is None
        [row] = chats.sessions()
        assert (row["turns"], row["input_tokens"], row["output_tokens"]) == (2, 20, 10)
        assert row["cost"] is None  # one answer's cost is unknown: so is the total
    finally:
        db.close()


def test_sessions_are_listed_most_recently_used_first_with_their_totals(tmp_path):
    db = StateDB(str(tmp_path / "state.db"))
    try:
        db.chats.save_turn("aaaaaa", "default", "", turn("first", "a", cost=0.5))
        db.chats.save_turn("bbbbbb", "default", "", turn("second", "b", cost=0.25))
        assert [r["id"] for r in db.chats.sessions()] == ["bbbbbb", "aaaaaa"]
        db.chats.save_turn("aaaaaa", "default", "", turn("again", "c", cost=0.5))
        rows = db.chats.sessions()
        assert [r["id"] for r in rows] == ["aaaaaa", "bbbbbb"]
        assert rows[0]["cost"] == 1.0 and rows[0]["turns"] == 2
        assert [r["id"] for r in db.chats.sessions(limit=1)] == ["aaaaaa"]
    finally:
        db.close()


def test_prefixes_match_ids_and_like_wildcards_are_literal(tmp_path):
    db = StateDB(str(tmp_path / "state.db"))
    try:
        for sid in ("k3m9xq", "k3abcd", "zz2222"):
            db.chats.save_turn(sid, "default", "", turn("q", "a"))
        assert db.chats.matching("k3") == ["k3abcd", "k3m9xq"]
        assert db.chats.matching("k3m") == ["k3m9xq"]
        assert db.chats.matching("K3M") == ["k3m9xq"]  # typed in capitals
        assert db.chats.matching("%") == [] and db.chats.matching("_") == []
    finally:
        db.close()


def test_ids_are_short_and_typable():
    ids = {new_id() for _ in range(200)}
    assert len(ids) > 190
    assert all(len(i) == ID_LENGTH and set(i) <= set(ID_ALPHABET) for i in ids)
    assert not set("01ilo") & set(ID_ALPHABET)


def test_titles_are_cut():
    assert title_of("x" * 200).endswith("…") and len(title_of("x" * 200)) == 80
    assert title_of("  a \t b\n") == "a b"


def test_a_failed_turn_keeps_nothing(tmp_path):
    """A turn is one transaction: a message that cannot be written leaves no half turn."""
    db = StateDB(str(tmp_path / "state.db"))
    try:
        bad = [ChatMessage("user", "q"), ChatMessage("assistant", object())]  # not storable
        try:
            db.chats.save_turn("aaaaaa", "default", "", bad)
        except Exception:
            pass
        else:
            raise AssertionError("an object is not a SQLite value")
        assert db.chats.sessions() == [] and db.chats.messages("aaaaaa") == []
    finally:
        db.close()


def test_upgrade_from_version_4_keeps_the_data_and_adds_the_chat_tables(tmp_path):
    path = str(tmp_path / "state.db")
    db = StateDB(path)
    db.memo.save({"a.txt": (1, 2, 3, "h")})
    db.pipelines.save("d", "{}")
    db.history.start_run("r1", "p", "f", ["run"])
    db.close()
    conn = sqlite3.connect(path, isolation_level=None)  # made to look like schema 4
    conn.executescript("DROP TABLE chat_messages; DROP TABLE chat_sessions; PRAGMA user_version=4;")
    conn.close()
    db = StateDB(path)
    try:
        assert SCHEMA_VERSION == 5
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == 5
        assert db.memo.load() == {"a.txt": (1, 2, 3, "h")}
        assert db.pipelines.get("d") == "{}"
        assert db.history.run_ids() == ["r1"]
        db.chats.save_turn("aaaaaa", "default", "", turn("q", "a"))
        assert db.chats.sessions()[0]["id"] == "aaaaaa"
        assert db.integrity_check() == "ok"
    finally:
        db.close()
    again = StateDB(path)  # opening an upgraded database changes nothing
    try:
        assert again.chats.sessions()[0]["turns"] == 1
    finally:
        again.close()


def test_clearing_the_cache_keeps_the_chats(tmp_path):
    db = StateDB(str(tmp_path / "state.db"))
    try:
        db.chats.save_turn("aaaaaa", "default", "", turn("q", "a"))
        db.clear()
        assert len(db.chats.messages("aaaaaa")) == 2
    finally:
        db.close()
