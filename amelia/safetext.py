"""Text from outside made safe to show and to keep (DESIGN §11).

Two jobs, for every text Amelia did not write itself (server errors, model answers, step
output, file names, messages that quote them):

- `escape`: control and escape sequences shown, never executed. A terminal obeys ESC, CSI
  (8-bit 0x9b too), BEL, CR and the bidi overrides; each becomes a visible escape such as
  `\\x1b]0;title`. Backslashes are left alone, so escaping twice changes nothing (a text
  may pass through a log, the store and a reporter).
- `redact`: secrets replaced by `[redacted]`, wherever they came from and in any form a
  server or a library may quote them: whole, with its whitespace folded or escaped
  (`\\n` in a bytes repr), or as a fragment of `FRAGMENT` or more characters (a masked or
  cut echo). Redact before anything is cut: a cut key is a fragment nobody recognises.

Secrets are registered here (`add_secret`) by whoever reads them (providers, `.env`), and
found in the environment by their variable's name; the registry lives for the process.
Standard library only: the reporters and providers import it on their light paths.
"""

from __future__ import annotations

import json
import os
import re
import threading

REDACTED = "[redacted]"
# A run of this many characters of a secret is redacted wherever it stands. Shorter
# runs are not: 8 random key characters never turn up by chance, shorter words do.
FRAGMENT = 8
# Values of variables named like credentials are secrets when at least this long (a
# FLAG_TOKEN=1 is not); a key a provider reads is one from 4 characters.
MIN_ENV_SECRET = 8
MIN_SECRET = 4
SECRET_NAME = re.compile(r"(?:^|_)(?:[A-Z]*KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)(?:_|$)",
                         re.IGNORECASE)

# C0 and C1 controls and DEL (ESC, CSI, OSC, BEL, CR, BS, ...), and the Unicode marks
# that reorder or hide what is shown (bidi embeddings, overrides and isolates).
_UNSAFE_CHARS = ([chr(c) for c in range(0x20)] + [chr(c) for c in range(0x7f, 0xa0)]
                 + list("\u061c\u200e\u200f\u2028\u2029")
                 + [chr(c) for c in range(0x202a, 0x202f)]
                 + [chr(c) for c in range(0x2066, 0x206a)])
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _shown(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


# Tabs are kept in both forms: a terminal only moves on them.
_SHOWN = {c: _shown(c) for c in _UNSAFE_CHARS}
_ONE_LINE = re.compile("[" + re.escape("".join(c for c in _UNSAFE_CHARS if c != "\t")) + "]")
_LINES = re.compile("[" + re.escape("".join(c for c in _UNSAFE_CHARS if c not in "\t\n")) + "]")


def _sub(m: re.Match) -> str:
    return _SHOWN[m.group()]


def escape(text, newlines: bool = True) -> str:
    """`text` with every control or escape sequence shown as `\\xNN` (`\\r`, `\\u202e`).

    newlines: keep line breaks (a tail, a multi-line message); False for one-line
    values (a file name, a step's reason). A CR before a line break is the break's own
    (CRLF) and goes with it."""
    text = str(text)
    if newlines:
        if not _LINES.search(text):
            return text
        return _LINES.sub(_sub, text.replace("\r\n", "\n"))
    return _ONE_LINE.sub(_sub, text) if _ONE_LINE.search(text) else text


def escape_line(text) -> str:
    """One line: line breaks shown as `\\n` too (a value that must stay on its line)."""
    return escape(text, newlines=False)


# -- secrets -------------------------------------------------------------------------------

class _Registry:
    """The secrets known to this process, with what finding them takes precomputed."""

    def __init__(self):
        self._lock = threading.Lock()
        self.values: frozenset = frozenset()
        self.forms: tuple = ()  # every written form of every secret, longest first
        self.grams: frozenset = frozenset()  # every FRAGMENT-long piece of those forms
        self._env_seen = False

    def add(self, value: str) -> None:
        with self._lock:
            if value in self.values:
                return
            self.values = self.values | {value}
            forms = set(self.forms) | _forms(value)
            self.forms = tuple(sorted(forms, key=len, reverse=True))
            self.grams = self.grams | frozenset(
                f[i:i + FRAGMENT] for f in _forms(value) if len(f) >= FRAGMENT
                for i in range(len(f) - FRAGMENT + 1))

    def from_environment(self, environ) -> None:
        for name, value in environ.items():
            if SECRET_NAME.search(name) and _looks_secret(value):
                self.add(value)


def _looks_secret(value) -> bool:
    """Long enough, and not a path (SSH_KEY_PATH=/home/me/.ssh/id: hiding every path
    under /home/me would hide what a message is about, and a path is no secret)."""
    if not isinstance(value, str) or len(value.strip()) < MIN_ENV_SECRET:
        return False
    v = value.strip()
    if v.startswith(("/", "~", "./", "../")):
        try:
            return not os.path.exists(os.path.expanduser(v))
        except (OSError, ValueError):
            return True
    return True


def _forms(secret: str) -> set:
    """How a secret may be written in a message: as is, trimmed, its whitespace folded
    (a wrapped or re-joined text) or dropped, escaped as Python, JSON and `escape` do."""
    forms = {secret, secret.strip(), " ".join(secret.split()), "".join(secret.split()),
             secret.encode("unicode_escape").decode("ascii"), json.dumps(secret)[1:-1],
             escape_line(secret)}
    return {f for f in forms if len(f) >= MIN_SECRET}


_REGISTRY = _Registry()


def add_secret(value) -> None:
    """Never show `value` again (from now on, in this process)."""
    if isinstance(value, str) and len(value.strip()) >= MIN_SECRET:
        _REGISTRY.add(value)


def forget_secrets() -> None:
    """Start over with no secret known (the environment is read again on next use): for
    a process that runs many unrelated things, such as a test session."""
    global _REGISTRY
    _REGISTRY = _Registry()


def add_secrets_from(environ) -> None:
    """Register the values of variables named like credentials (`*_API_KEY`, `*TOKEN`,
    `*SECRET*`, `*PASSWORD*`) in a mapping: the environment, a parsed `.env`."""
    _REGISTRY.from_environment(environ)


def _ensure_environment() -> None:
    if not _REGISTRY._env_seen:
        _REGISTRY._env_seen = True
        add_secrets_from(os.environ)


def redact(text, extra=(), fragments: bool = True) -> str:
    """`text` with every known secret (and `extra` ones) replaced by `[redacted]`.

    fragments: also pieces of a secret (FRAGMENT characters or more, or fewer at the
    text's edges); False finds only whole secrets, at C speed (a log of many megabytes
    that a program printed, where a key stands whole if at all)."""
    text = str(text)
    _ensure_environment()
    for value in extra:
        add_secret(value)
    reg = _REGISTRY
    if not reg.forms or not text:
        return text
    for form in reg.forms:
        if form in text:
            text = text.replace(form, REDACTED)
    if not fragments:
        return text
    if reg.grams and len(text) >= FRAGMENT:
        text = _redact_fragments(text, reg)
    return _redact_edges(text, reg.forms)


def _redact_edges(text: str, forms) -> str:
    """A text cut by someone else may start with the last characters of a key or end with
    its first ones, too few for a FRAGMENT: MIN_SECRET of them at an edge are redacted."""
    for form in forms:
        for n in range(min(len(form) - 1, FRAGMENT - 1), MIN_SECRET - 1, -1):
            if text.endswith(form[:n]):
                text = text[:-n] + REDACTED
                break
        for n in range(min(len(form) - 1, FRAGMENT - 1), MIN_SECRET - 1, -1):
            if text.startswith(form[-n:]):
                text = REDACTED + text[n:]
                break
    return text


def _redact_fragments(text: str, reg: _Registry) -> str:
    grams = reg.grams
    hits = [i for i in range(len(text) - FRAGMENT + 1) if text[i:i + FRAGMENT] in grams]
    if not hits:
        return text
    spans: list = []  # merged [start, end) runs of secret characters
    for i in hits:
        if spans and i <= spans[-1][1]:
            spans[-1][1] = i + FRAGMENT
        else:
            spans.append([i, i + FRAGMENT])
    for span in spans:
        _widen(text, span, reg.forms)
    out, last = [], 0
    for start, end in spans:
        if start < last:  # widened into the previous run
            start = last
        out.append(text[last:start])
        if end > start:
            out.append(REDACTED)
        last = max(last, end)
    out.append(text[last:])
    return "".join(out)


def _widen(text: str, span: list, forms) -> None:
    """Grow a run over the neighbouring characters that continue the same secret: the
    few characters of a key left beside a cut or a mask are shorter than a FRAGMENT."""
    start, end = span
    piece = text[start:end]
    for form in forms:
        at = form.find(piece)
        if at < 0:
            continue
        while end < len(text) and at + (end - start) < len(form) and \
                text[end] == form[at + (end - start)]:
            end += 1
        while start > 0 and at > 0 and text[start - 1] == form[at - 1]:
            start -= 1
            at -= 1
        span[0], span[1] = start, end
        return


def shorten(text, limit: int, extra=()) -> str:
    """One line of at most `limit` characters: redacted first, then whitespace folded,
    escaped, then cut (with `…`). Cutting last means no key is ever cut in two."""
    text = escape_line(" ".join(redact(text, extra).split()))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def safe(text, newlines: bool = True, fragments: bool = True) -> str:
    """Redacted and escaped: what a terminal or a log file may be given."""
    return escape(redact(text, fragments=fragments), newlines=newlines)


def sanitize_file(path: str, chunk: int = 1 << 20) -> bool:
    """Rewrite a log file as `safe` text (redacted, escaped), in place and in bounded
    memory: what a program printed becomes a file a user may `cat`. One pass; a clean
    file is only read. True if it was rewritten. Best effort: a file that cannot be read
    or replaced is left as it is."""
    tmp = f"{path}.amelia-safe-{os.getpid()}"
    dst = None
    try:
        clean_bytes = 0  # the clean head, copied as it is once a block needs a change
        for block in _blocks(path, chunk):
            shown = _safe_block(block)
            if dst is None and shown == block:
                clean_bytes += len(block)
                continue
            if dst is None:
                dst = open(tmp, "wb")
                with open(path, "rb") as src:
                    _copy(src, dst, clean_bytes)
            dst.write(shown)
        if dst is None:
            return False
        dst.close()
        os.replace(tmp, path)
        return True
    except OSError:
        if dst is not None:
            dst.close()
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


def _copy(src, dst, n: int) -> None:
    while n > 0:
        data = src.read(min(n, 1 << 20))
        if not data:
            return
        dst.write(data)
        n -= len(data)


def _safe_block(block: bytes) -> bytes:
    # whole secrets only: a program prints a key whole, and a megabyte must take
    # milliseconds, not the fragment scan's fraction of a second
    return safe(block.decode("utf-8", "replace"), fragments=False).encode("utf-8")


def _blocks(path: str, chunk: int):
    """The file in blocks of about `chunk` bytes, each ending at a line's end where one
    comes soon (so that a secret is seldom cut in two, nor a UTF-8 character)."""
    with open(path, "rb") as src:
        while True:
            block = src.read(chunk)
            if not block:
                return
            if not block.endswith(b"\n"):
                block += src.readline(chunk)
            yield block
