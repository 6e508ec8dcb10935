"""YAML → plain data, plus where every key and item came from.

A safe composer builds the node tree (no Python objects, no tags beyond the core
schema); we turn it into dicts and lists ourselves so that we can record positions,
refuse duplicate keys, and bound the size of what aliases expand to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Location, PipelineError

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000  # after alias expansion: a "billion laughs" stops here, at once
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


@dataclass
class SourceMap:
    """Positions (1-based line, col) by key path, and the file's lines for snippets."""

    file: str
    lines: list[str]
    positions: dict = field(default_factory=dict)

    def locate(self, path: Path) -> Location:
        """The nearest recorded position at or above `path`."""
        p = tuple(path)
        while p and p not in self.positions:
            p = p[:-1]
        line, col = self.positions.get(p, (0, 0))
        snippet = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return Location(self.file, line, col, format_path(tuple(path)), snippet)


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
            "pass a pipeline file, or run where amelia.yaml is (`amelia init` makes one)",
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
        raise PipelineError(f"file is not UTF-8 (byte {e.start})", Location(display)) from None
    import yaml

    lines = text.splitlines()
    source = SourceMap(display, lines)
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(text, Loader=loader_cls)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        snippet = lines[line - 1] if 0 < line <= len(lines) else ""
        problem = e.problem or e.context or "invalid YAML"
        raise PipelineError(
            f"invalid YAML: {problem}",
            Location(display, line, col, "", snippet),
            "check the indentation and quoting on this line",
        ) from None
    except yaml.YAMLError as e:
        raise PipelineError(f"invalid YAML: {e}", Location(display)) from None
    if node is None:
        return Loaded({}, source)
    builder = _Builder(source)
    data = builder.build(node, (), 0)
    return Loaded(data, source)


class _Builder:
    def __init__(self, source: SourceMap):
        import yaml.constructor

        self.source = source
        self.nodes = 0
        self.aliases = 0
        self.seen: set[int] = set()
        self.constructor = yaml.constructor.SafeConstructor()
        self._yaml = __import__("yaml")

    def _fail(self, message: str, node, path: Path, hint: str = ""):
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        lines = self.source.lines
        snippet = lines[line - 1] if 0 < line <= len(lines) else ""
        loc = Location(self.source.file, line, col, format_path(path), snippet)
        raise PipelineError(message, loc, hint)

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
        if id(node) in self.seen:
            # The same node again below itself, or an alias reused: count it.
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                self._fail(
                    f"more than {MAX_ALIASES} alias uses",
                    node,
                    path,
                    "YAML aliases (*name) are expanding too much; write the values out",
                )
        self.seen.add(id(node))
        if path not in self.source.positions:
            self.source.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
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
                if key in out:
                    self._fail(f"duplicate key '{key}'", key_node, child,
                               "YAML keeps only the last one; remove or rename one of them")
                self.source.positions[child] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                out[key] = self.build(value_node, child, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as e:
            self._fail(f"invalid value: {getattr(e, 'problem', e)}", node, path)
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        return node.value  # dates, binary: keep the text, as JSON would see it
