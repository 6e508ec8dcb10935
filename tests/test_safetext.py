"""amelia.safetext: escape sequences shown, never executed; secrets redacted in every
form a server or a library may quote them, before anything is cut."""

from __future__ import annotations

import pytest

from amelia import safetext
from amelia.safetext import REDACTED, escape, escape_line, redact, safe, sanitize_file, shorten

# 164 characters, as in the issue: a cut at 300 used to leave 96 of them readable.
KEY = "sk-proj-" + "Xq7Lm2Pz9Kd4Wt8R" * 9 + "Ab3Cd5Ef7Gh9Jk1Mn3Pq"
NEWLINE_KEY = "sk-" + "Uv6Tr4Yh2Bn8Cx0Z" * 4 + "\n" + "Op9Il7Ku5Jy3Ht1G" * 4


@pytest.fixture(autouse=True)
def _keys():
    safetext.forget_secrets()  # only these keys: none another test registered
    safetext.add_secret(KEY)
    safetext.add_secret(NEWLINE_KEY)
    yield
    safetext.forget_secrets()


def pieces(secret: str, n: int = safetext.FRAGMENT):
    return {secret[i:i + n] for i in range(len(secret) - n + 1)}


def leaks(text: str, secret: str = KEY) -> set:
    parts = [p for p in secret.split()] or [secret]
    return {p for part in parts for p in pieces(part) if p in text}


# -- escape ---------------------------------------------------------------------------------

def test_escape_sequences_are_shown_not_executed():
    text = "\x1b]0;pwned\x07\x1b[2J[/bold] \x9b31m \x08\x00\x7f"
    assert escape(text) == "\\x1b]0;pwned\\x07\\x1b[2J[/bold] \\x9b31m \\x08\\x00\\x7f"


def test_escape_keeps_line_breaks_and_tabs_unless_asked_for_one_line():
    assert escape("a\tb\r\nc\rd\n") == "a\tb\nc\\rd\n"
    assert escape_line("a\nb\rc\td") == "a\\nb\\rc\td"


def test_bidi_overrides_that_reorder_what_is_shown_are_escaped():
    assert escape("file\u202etxt.exe") == "file\\u202etxt.exe"
    assert escape("normal ünïcode – ok ✓") == "normal ünïcode – ok ✓"


def test_escaping_twice_changes_nothing():
    once = escape("\x1b[31mred\x1b[0m \\x1b already")
    assert escape(once) == once


# -- redact ---------------------------------------------------------------------------------

def test_a_whole_key_is_redacted():
    assert redact(f"bad key {KEY} given") == f"bad key {REDACTED} given"


@pytest.mark.parametrize("cut", [96, 40, 9])
def test_a_prefix_of_a_key_cut_by_someone_else_is_redacted(cut):
    text = redact("server says: Bearer " + KEY[:cut] + "… (truncated)")
    assert not leaks(text) and KEY[:cut] not in text


def test_a_suffix_and_a_masked_echo_are_redacted():
    assert not leaks(redact("…" + KEY[-50:] + " was rejected"))
    masked = redact(f"Incorrect API key provided: {KEY[:20]}****{KEY[-12:]}.")
    assert not leaks(masked) and masked.count(REDACTED) == 2


def test_a_few_key_characters_left_at_the_edge_of_a_cut_text_are_redacted():
    assert redact("the end: " + KEY[:5]) == "the end: " + REDACTED
    assert redact(KEY[-6:] + " rest") == REDACTED + " rest"


def test_a_key_with_a_newline_is_redacted_in_every_form_it_is_quoted():
    forms = [NEWLINE_KEY, repr(("Bearer " + NEWLINE_KEY).encode()), " ".join(NEWLINE_KEY.split()),
             NEWLINE_KEY.replace("\n", "\\n"), "".join(NEWLINE_KEY.split())]
    for form in forms:
        text = redact(f"Illegal header value {form}")
        assert not leaks(text, NEWLINE_KEY), text
        assert REDACTED in text


def test_ordinary_text_is_left_alone():
    text = "command exited with code 2: see build/out.txt (1234567890 bytes)"
    assert redact(text) == text


def test_credentials_in_the_environment_are_known_by_their_variable_name(tmp_path):
    token = "ghp_" + "R4nd0mT0k3nV4lu3" * 2
    safetext.add_secrets_from({"GITHUB_TOKEN": token, "KEYBOARD": "us-international-layout",
                               "SSH_KEY_PATH": str(tmp_path), "PWD": "/somewhere/quite/long",
                               "FLAG_TOKEN": "1"})
    assert redact(f"echo {token}") == f"echo {REDACTED}"
    text = f"us-international-layout in /somewhere/quite/long and {tmp_path}/x, 1"
    assert redact(text) == text  # no credential's name, a path, too short


def test_shorten_redacts_before_it_cuts():
    text = "x" * 200 + " key=" + KEY + " and more"
    short = shorten(text, 300)
    assert len(short) <= 300 and not leaks(short) and REDACTED in short
    assert shorten("a\x1b[2Jb\n c", 300) == "a\\x1b[2Jb c"


def test_safe_is_redacted_and_escaped():
    assert safe(f"\x1b]0;{KEY}\x07") == f"\\x1b]0;{REDACTED}\\x07"


# -- log files ------------------------------------------------------------------------------

def test_sanitize_file_rewrites_a_log_so_that_cat_shows_it_safely(tmp_path):
    log = tmp_path / "step.log"
    log.write_bytes(b"ok line\n\x1b]0;pwned\x07\x1b[2J\r\n" + f"key {KEY}\n".encode()
                    + b"\xff\xfe\n")
    assert sanitize_file(str(log)) is True
    text = log.read_text()
    assert text == f"ok line\n\\x1b]0;pwned\\x07\\x1b[2J\nkey {REDACTED}\n\ufffd\ufffd\n"
    assert sanitize_file(str(log)) is False  # a clean file is only read


def test_sanitize_file_works_in_blocks_on_a_large_log(tmp_path):
    log = tmp_path / "big.log"
    line = "progress \x1b[32m42%\x1b[0m " + KEY + "\n"
    log.write_text(line * 5000)
    sanitize_file(str(log), chunk=4096)
    text = log.read_text()
    assert "\x1b" not in text and not leaks(text)
    assert text.count("\n") == 5000 and text.count(REDACTED) == 5000


def test_sanitize_file_leaves_a_missing_file_alone(tmp_path):
    assert sanitize_file(str(tmp_path / "nope.log")) is False
