"""YAML → plain data, plus where every key and item came from.

A safe composer builds the node tree (no Python objects, no tags beyond the core
schema); we turn it into dicts and lists ourselves so that we can record positions,
refuse duplicate keys, and bound the size of what aliases expand to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import Location, PipelineError

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
# After alias expansion: a "billion laughs" stops here, at once. Room for a pipeline of
# 20,000 steps (about 120,000 nodes), and a bound of about a second on what aliases cost.
MAX_NODES = 250_000
MAX_ALIASES = 1_000

Path = tuple  # of str keys and int indexes


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


MAX_SNIPPET = 160  # longer source lines are cut; past this column no snippet is shown


def snippet_of(lines: list, line: int, col: int = 1) -> str:
    """The source line for an error display, cut when it is very long."""
    if not 0 < line <= len(lines):
        return ""
    text = lines[line - 1]
    if len(text) <= MAX_SNIPPET:
        return text
    return text[:MAX_SNIPPET] + " ..." if col <= MAX_SNIPPET - 10 else ""


@dataclass
class SourceMap:
    """Positions (1-based line, col) by key path, and the file's lines for snippets.

    `positions` holds where each key (or list item, or the document) starts;
    `values` holds, for scalar values, (line, col, end_line, end_col) of the value.
    """

    file: str
    lines: list[str]
    positions: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)

    def locate(self, path: Path) -> Location:
        """The nearest recorded position at or above `path`."""
        p = tuple(path)
        while p and p not in self.positions:
            p = p[:-1]
        line, col = self.positions.get(p, (0, 0))
        return Location(self.file, line, col, format_path(tuple(path)), snippet_of(self.lines, line, col))

    def locate_within(self, path: Path, text: str, offset: int, needle: str) -> Location:
        """Where `needle`, found at `offset` in the scalar value at `path`, is in the file.

        Falls back to the key's position when the value's text cannot be matched
        with the file (escapes in a quoted string, a folded plain scalar).
        """
        span = self.values.get(tuple(path))
        if not span or not needle:
            return self.locate(path)
        nth = text.count(needle, 0, offset)  # occurrences before this one
        line, col, end_line, _ = span
        start = col - 1
        for ln in range(line, min(end_line, len(self.lines)) + 1):
            src = self.lines[ln - 1]
            i = src.find(needle, start)
            while i != -1:
                if nth == 0:
                    return Location(self.file, ln, i + 1, format_path(tuple(path)),
                                    snippet_of(self.lines, ln, i + 1))
                nth -= 1
                i = src.find(needle, i + len(needle))
            start = 0
        return self.locate(path)


@dataclass(frozen=True)
class Loaded:
    data: object
    source: SourceMap


def load_file(path: str, display: str | None = None) -> Loaded:
    display = display or path
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise PipelineError(
            f"pipeline file not found: {display}",
            Location(display),
            "pass a pipeline file, or run where amelia.yaml is (README.md shows a first one)",
        ) from None
    except OSError as e:
        raise PipelineError(f"cannot read {display}: {e.strerror}", Location(display)) from None
    return load_bytes(raw, display)


def load_bytes(raw: bytes, display: str) -> Loaded:
    if len(raw) > MAX_FILE_BYTES:
        raise PipelineError(
            f"file is larger than {MAX_FILE_BYTES // 1024} KiB",
            Location(display),
            "a pipeline file should be small; move prompts and data into their own files",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise PipelineError(f"file is not UTF-8: byte 0x{raw[e.start]:02x} at offset {e.start}",
                            Location(display, line, col),
                            "save the file as UTF-8") from None
    import yaml

    lines = text.splitlines()
    source = SourceMap(display, lines)
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(text, Loader=loader_cls)
    except yaml.MarkedYAMLError as e:
        raise _syntax_error(e, display, lines) from None
    except yaml.reader.ReaderError as e:
        raise _reader_error(e, text, display, loader_cls is not yaml.SafeLoader) from None
    except yaml.YAMLError as e:
        raise PipelineError(f"invalid YAML: {e}", Location(display)) from None
    if node is None:
        return Loaded({}, source)
    builder = _Builder(source)
    if _ANCHOR.search(text):  # no anchor, no alias: nothing to expand, nothing to measure
        builder.measure(node)
    data = builder.build(node, (), 0)
    return Loaded(data, source)


# Where an anchor (&name) may start: '&' and an anchor character (YAML's ns-anchor-char:
# no space, no flow indicator). Every anchor matches; `a && b` or `2>&1` match too, and
# only cost the measuring pass.
_ANCHOR = re.compile(r"&[^\s,\[\]{}]")


def _reader_error(e, text: str, display: str, in_bytes: bool) -> PipelineError:
    """A character YAML does not allow (a control character), located at line:col.

    The reader gives its offset in the text: in UTF-8 bytes from libyaml (in_bytes), in
    characters from the pure-Python reader. Lines are counted at "\n" only, and the
    snippet is cut from the text here, since such a character may also break lines
    for str.splitlines."""
    offset = max(e.position, 0)
    if in_bytes:
        offset = len(text.encode("utf-8", "surrogatepass")[:offset].decode("utf-8", "ignore"))
    offset = min(offset, len(text))
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    line = text.count("\n", 0, offset) + 1
    col = offset - start + 1
    lines = [""] * (line - 1) + [text[start:] if end == -1 else text[start:end]]
    char = e.character
    code = ord(char) if isinstance(char, str) else int(char or 0)
    return PipelineError(
        f"invalid YAML: control character U+{code:04X} is not allowed",
        Location(display, line, col, "", _visible(snippet_of(lines, line, col))),
        f"remove it; to put one in a value, write it as an escape in double quotes, e.g. \"\\x{code:02x}\""
        if code < 0x100 else "remove it")


def _visible(line: str) -> str:
    """A source line with its control characters shown as U+2400 symbols (␁), one column each,
    so that the caret below still lines up and the terminal never receives them raw."""
    return "".join(chr(0x2400 + ord(c)) if ord(c) < 0x20 and c != "\t" else
                   "\u2421" if c == "\x7f" else "\ufffd" if not c.isprintable() and c != "\t" else c
                   for c in line)


def _syntax_error(e, display: str, lines: list) -> PipelineError:
    """A located message for a YAML parse error.

    The problem mark says where the parser gave up; the context mark where the
    construct it was reading began. When the parser gave up at the end of the file
    (an unclosed quote or bracket), the start of the construct is the useful place.
    """
    problem = e.problem or "invalid YAML"
    context = e.context or ""
    mark, cmark = e.problem_mark, e.context_mark
    at_context = cmark is not None and (mark is None or mark.line >= len(lines)
                                        or "end of stream" in problem)
    if at_context:
        mark = cmark
    line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    if 0 < line <= len(lines) and col > len(lines[line - 1]) + 1:
        col = len(lines[line - 1]) + 1
    message = f"invalid YAML: {problem}"
    if "next token" in context:
        pass  # says nothing the problem does not
    elif context and at_context:
        message += f" ({context} that starts here)"
    elif context and cmark is not None and cmark.line + 1 != line:
        message += f" ({context} that starts at line {cmark.line + 1})"
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    if "\t" in src[: max(col, 1)] or "\t" in src[: len(src) - len(src.lstrip())]:
        hint = "YAML does not allow tabs for indentation; use spaces"
    elif "mapping values are not allowed" in problem:
        hint = "a ': ' inside a value starts a mapping; put the whole value in quotes"
    elif "nesting depth" in problem:
        hint = f"a pipeline file nests at most {MAX_DEPTH} levels"
    elif "quoted" in context:
        hint = "close the quote"
    elif "flow" in context:
        hint = "close the bracket"
    else:
        hint = "check the indentation and quoting on this line"
    return PipelineError(message, Location(display, line, col, "", snippet_of(lines, line, col)), hint)


_CORE = "tag:yaml.org,2002:"
_PLAIN_TAGS = frozenset((_CORE + "map", _CORE + "seq"))
_SCALAR_TAGS = frozenset(_CORE + t for t in (
    "str", "int", "float", "bool", "null", "timestamp", "binary", "merge", "value"))
_STR = _CORE + "str"
_TEXT_TAGS = frozenset((_CORE + "timestamp", _CORE + "binary"))
_NUL_HINT = "no file name, command or environment value can hold one; remove the \\0 escape"
_TAG_HINT = "amelia reads plain YAML: mappings, lists, strings, numbers, booleans and null"


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


class _Builder:
    def __init__(self, source: SourceMap):
        import yaml.constructor

        self.source = source
        self.nodes = 0
        self.constructor = yaml.constructor.SafeConstructor()
        self._yaml = __import__("yaml")

    def _fail(self, message: str, node, path: Path, hint: str = ""):
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        snippet = snippet_of(self.source.lines, line, col)
        loc = Location(self.source.file, line, col, format_path(path), snippet)
        raise PipelineError(message, loc, hint)

    def measure(self, root) -> None:
        """Bound what aliases expand to before expanding anything.

        The composed tree shares one node for an anchor and all its aliases, so
        its expanded size, height and alias uses are counted over distinct nodes
        (memoized): a "billion laughs" is refused in time linear in the file.
        """
        yaml = self._yaml
        sizes: dict[int, int] = {}
        heights: dict[int, int] = {}
        active: set[int] = set()
        aliases = 0
        too_many = "YAML aliases (*name) are expanding too much; write the values out"

        def children(node):
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    yield k, None
                    yield v, k.value if isinstance(k, yaml.ScalarNode) else None
            elif isinstance(node, yaml.SequenceNode):
                yield from ((v, i) for i, v in enumerate(node.value))

        def visit(node, path, depth):
            nonlocal aliases
            nid = id(node)
            if nid in active:
                self._fail("a YAML alias refers to a value that contains it", node, path,
                           "an anchor (&name) cannot be used inside its own value")
            if nid in sizes:  # seen before: this is an alias
                aliases += 1
                if aliases > MAX_ALIASES:
                    self._fail(f"more than {MAX_ALIASES} uses of YAML aliases", node, path, too_many)
            else:
                if depth > MAX_DEPTH:
                    self._fail(f"nesting deeper than {MAX_DEPTH} levels", node, path)
                active.add(nid)
                size, height = 1, 0
                for child, key in children(node):
                    if key is None and not isinstance(child, (yaml.MappingNode, yaml.SequenceNode)):
                        size += 1  # a scalar key
                        continue
                    child_path = path + (key,) if key is not None else path
                    visit(child, child_path, depth + 1)
                    size += sizes[id(child)]
                    height = max(height, heights[id(child)])
                    if size > MAX_NODES:
                        self._fail(f"this value expands to more than {MAX_NODES} nodes through YAML aliases",
                                   node, path, too_many)
                active.discard(nid)
                sizes[nid], heights[nid] = size, height + 1
            if depth + heights[nid] > MAX_DEPTH + 1:
                self._fail(f"nesting deeper than {MAX_DEPTH} levels", node, path,
                           "YAML aliases (*name) nest values too deeply; write the values out")

        visit(root, (), 0)

    def build(self, node, path: Path, depth: int):
        yaml = self._yaml
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self._fail(
                f"document expands to more than {MAX_NODES} nodes",
                node,
                path,
                "YAML aliases (*name) are expanding too much; write the values out",
            )
        if depth > MAX_DEPTH:
            self._fail(f"nesting deeper than {MAX_DEPTH} levels", node, path)
        if path not in self.source.positions:
            self.source.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if node.tag not in _PLAIN_TAGS and not isinstance(node, yaml.ScalarNode):
            self._fail(f"unsupported YAML tag '{_short_tag(node.tag)}'", node, path, _TAG_HINT)
        if isinstance(node, yaml.MappingNode):
            out: dict = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self._fail("YAML merge keys (<<) are not supported", key_node, path,
                               "write the keys out, or use a recipe")
                if not isinstance(key_node, yaml.ScalarNode):
                    self._fail("a key must be a plain string", key_node, path)
                key = key_node.value
                child = path + (key,)
                if "\0" in key:
                    self._fail("a key holds a NUL byte (\\0)", key_node, path, _NUL_HINT)
                if key in out:
                    first = self.source.positions[child][0]
                    self._fail(f"duplicate key '{key}' (first at line {first})", key_node, child,
                               "YAML would keep only the last one; remove or rename one of them")
                self.source.positions[child] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                out[key] = self.build(value_node, child, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        self.source.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1,
                                    node.end_mark.line + 1, node.end_mark.column + 1)
        if node.tag not in _SCALAR_TAGS:
            self._fail(f"unsupported YAML tag '{_short_tag(node.tag)}'", node, path, _TAG_HINT)
        if node.tag in _TEXT_TAGS:
            return node.value  # dates, binary: keep the text, as JSON would see it
        if node.tag == _STR:
            value = node.value  # what the constructor would make of it, without the call
            if "\0" in value:
                self._fail("a value holds a NUL byte (\\0)", node, path, _NUL_HINT)
            return value
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError) as e:
            problem = getattr(e, "problem", None) or str(e)
            self._fail(f"invalid value for {_short_tag(node.tag)}: {problem}", node, path)
        if isinstance(value, str) and "\0" in value:
            # No path, command, environment value or prompt can carry one (the OS cuts
            # C strings there); say so here, at the value, not as a traceback later.
            self._fail("a value holds a NUL byte (\\0)", node, path, _NUL_HINT)
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        return node.value
