"""`include:` → the documents of a pipeline (DESIGN §8, issue 15).

Each include names a recipe: a pipeline file whose `params` are its interface. It is
loaded, schema-checked and opened as one more Document of the graph, in its own scope:
its params are bound from `with:` (typed and checked here, every error at the include
line), its steps, targets and references namespaced (`as: review` → `review.critique`),
its files (prompt, schema, params files) read from its own folder, and every error in it
located in its own file with the include lines that brought it in.

A local recipe is a path relative to the including file; a git one
(`git+URL//PATH@REF`) is fetched at the commit `amelia.lock` pins (amelia.include).
An include that leads back to a file on its own include chain is a cycle.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field

from ..errors import AmeliaError, did_you_mean
from .params import _article, _type_ok

LOCK_FILE = "amelia.lock"
_NAMESPACE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_WHOLE_PARAM = re.compile(r"\s*\$\{\{\s*params\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}\s*")


@dataclass(frozen=True)
class RecipeOptions:
    """How remote recipes are pinned: `--frozen` (amelia.lock must already hold every one,
    and is never written) and `amelia lock --update` (resolve every ref again)."""

    frozen: bool = False
    update: bool = False


@dataclass(frozen=True)
class Binding:
    """What an include gives its recipe: param values, and where the recipe's files are."""

    values: dict = field(default_factory=dict)  # param → typed value, from `with:`
    stand_ins: frozenset = frozenset()  # params given an including param's stand-in (validate)
    files_root: str = ""  # the recipe's folder
    included_from: str = ""  # "amelia.yaml:4 (as review)", outermost first


def lock_path(top_file: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(top_file)), LOCK_FILE)


class Includes:
    """Walks the include graph from the root document, opening each recipe."""

    def __init__(self, root: str, problems, refs_of, open_doc, options: RecipeOptions):
        self.root = root
        self.problems = problems
        self.refs_of = refs_of  # Document → its References (for `with:` templates)
        self.open_doc = open_doc  # (Loaded, file, namespace, Binding) → Document
        self.options = options
        self.lock = None  # amelia.include.Lock, loaded at the first git recipe
        self.lock_file = ""
        self.sources: dict = {}  # recipe files (and amelia.lock) → sha256: the resolve cache's
        self.keys: list = []  # the lock keys the file's git recipes use

    def documents(self, top) -> tuple:
        """(documents, includes): the root document first, then each recipe, depth first."""
        docs, edges = [top], []
        self._visit(top, (_identity_of_file(top.file),), docs, edges)
        if self.lock is not None and not self.problems.errors:
            self._finish_lock()
        return tuple(docs), tuple(edges)

    def _visit(self, doc, chain: tuple, docs: list, edges: list) -> None:
        err = self.problems.reporter(doc)
        used: dict = {}  # namespace → the include index that took it
        for i, item in enumerate(doc.data.get("include") or ()):
            at = ("include", i)
            found = self._recipe(doc, item["recipe"], at + ("recipe",), err)
            if found is None:
                continue
            path, label, identity, folder = found
            if identity in chain:
                names = [_short(c) for c in chain[chain.index(identity):]] + [_short(identity)]
                err(f"include cycle: {' -> '.join(names)}", at + ("recipe",),
                    "a recipe cannot include itself, directly or through others: remove one include")
                continue
            local = item.get("as") or os.path.splitext(os.path.basename(path))[0]
            if not _NAMESPACE.fullmatch(local):
                err(f"recipe file name '{local}' is not a usable namespace", at + ("recipe",),
                    "name its steps with `as:`, e.g. as: review")
                continue
            if local in used:
                err(f"two includes use the namespace '{local}'", at + (("as",) if "as" in item else ("recipe",)),
                    "give one of them another `as:`")
                continue
            used[local] = i
            namespace = f"{doc.namespace}.{local}" if doc.namespace else local
            loaded = self._load(path, label, doc, at)
            if loaded is None:
                continue
            line = doc.source.locate(at).line
            site = f"{doc.file}:{line} (as {namespace})"
            chained = f"{site}, {doc.included_from}" if doc.included_from else site
            binding = self._bind(doc, loaded.data, item.get("with") or {}, at, label, folder, chained)
            child = self.open_doc(loaded, label, namespace, binding)
            docs.append(child)
            edges.append((doc.namespace, namespace))
            self._visit(child, chain + (identity,), docs, edges)

    # -- finding and loading a recipe -----------------------------------------------------
    def _recipe(self, doc, text: str, where: tuple, err):
        """(path on disk, label for messages, identity, folder its files are read from), or
        None after an error."""
        from ..include import RecipeError, parse

        try:
            ref = parse(text)
        except RecipeError as e:
            err(e.message, where, e.hint)
            return None
        if ref.kind == "local":
            # relative to the including file: a recipe's own folder (also a git recipe's,
            # whose label is its URL), else the pipeline file's
            folder = doc.files_root or os.path.dirname(os.path.abspath(doc.file))
            path = os.path.normpath(os.path.join(folder, ref.path))
            label = os.path.relpath(path)  # for messages: from where you are
            if not os.path.isfile(path):
                err(f"recipe '{text}' not found" + (f" ({path})" if path != os.path.abspath(text) else ""),
                    where, "a local recipe is a path relative to the file that includes it")
                return None
            return path, label, _identity_of_file(path), os.path.dirname(path)
        return self._fetch(ref, text, where, err)

    def _fetch(self, ref, text: str, where: tuple, err):
        from ..include import Lock, RecipeError, fetch

        try:
            if self.lock is None:
                self.lock_file = lock_path(self.problems.top_file)
                self.lock = Lock.load(self.lock_file)
            got = fetch(ref, os.path.join(self.root, ".amelia"), self.lock,
                        frozen=self.options.frozen, update=self.options.update)
        except RecipeError as e:
            err(e.message, where, e.hint)
            return None
        self.keys.append(ref.key)
        identity = f"{ref.url}//{ref.path_in_repo}@{got.commit}"
        return got.file, text, identity, os.path.dirname(got.file)

    def _load(self, path: str, label: str, doc, at: tuple):
        from .. import schema
        from ..loader import load_file

        try:
            loaded = load_file(path, label)
        except AmeliaError as e:
            self._extend([e], doc, at)
            return None
        if not isinstance(loaded.data, dict):
            self.problems.reporter(doc)(f"recipe {label} is not a mapping of keys", at + ("recipe",),
                                        "a recipe is a pipeline file: `amelia: 1`, `params:`, `steps:`")
            return None
        errors = schema.validate(loaded)
        if errors:
            self._extend(errors, doc, at)
            return None
        with open(path, "rb") as f:
            self.sources[self._source_path(path)] = hashlib.sha256(f.read()).hexdigest()
        return loaded

    def _extend(self, errors: list, doc, at: tuple) -> None:
        line = doc.source.locate(at).line
        site = f"{doc.file}:{line}"
        chain = f"{site}, {doc.included_from}" if doc.included_from else site
        for e in errors:
            e.included_from = chain
        self.problems.extend(errors)

    def _source_path(self, path: str) -> str:
        rel = os.path.relpath(path, self.root)
        return path if rel.startswith("..") else rel.replace(os.sep, "/")

    def _finish_lock(self) -> None:
        """Write amelia.lock (not with --frozen, which refuses one that does not match)."""
        from ..include import RecipeError

        stale = sorted(set(self.lock.keys()) - set(self.keys))
        if self.options.frozen:
            if stale:
                self.problems.reporter(_Nowhere(self.lock_file))(
                    f"{LOCK_FILE} pins {len(stale)} recipe{'s' if len(stale) != 1 else ''} no include "
                    f"names any more: {', '.join(stale[:3])}", (),
                    "run `amelia lock` and commit amelia.lock")
            self._source_of_lock()
            return
        self.lock.keep_only(self.keys)
        try:
            self.lock.save()
        except (RecipeError, OSError) as e:
            from ..errors import EnvironmentProblem

            raise EnvironmentProblem(f"cannot write {self.lock_file}: {getattr(e, 'message', e)}",
                                     hint="check the folder's permissions") from None
        self._source_of_lock()

    def _source_of_lock(self) -> None:
        """amelia.lock is read when the file is resolved: a change to it resolves it again."""
        if os.path.exists(self.lock_file):
            with open(self.lock_file, "rb") as f:
                self.sources[self._source_path(self.lock_file)] = hashlib.sha256(f.read()).hexdigest()

    # -- `with:` ---------------------------------------------------------------------------
    def _bind(self, doc, data: dict, given: dict, at: tuple, label: str, folder: str, site: str):
        """The recipe's params from `with:`, typed and checked (a bad or missing one is said
        and stands in, so that the recipe's own errors are found too)."""
        err = self.problems.reporter(doc)
        refs = self.refs_of(doc)
        declared = data.get("params") or {}
        values, stand_ins, ok = {}, set(), True
        for name, value in given.items():
            where = at + ("with", name)
            if name not in declared:
                err(f"recipe {label} has no param '{name}'", where,
                    did_you_mean(name, list(declared)) or
                    (f"its params are: {', '.join(declared)}" if declared else "it declares no params"))
                ok = False
                continue
            if isinstance(value, str) and "${{" in value:
                whole = _WHOLE_PARAM.fullmatch(value)
                if whole and whole.group(1) in doc.params:  # passed through with its type
                    value = doc.params[whole.group(1)]
                    if whole.group(1) in doc.stand_ins:
                        stand_ins.add(name)
                        values[name] = _stand_in(declared[name], value)
                        continue
                else:
                    value = refs.render_path(value, where)
                    if value is None:
                        ok = False
                        continue
            ptype = declared[name].get("type")
            if not _type_ok(ptype, value):
                err(f"param '{name}' of recipe {label} is {_article(ptype)} {ptype}, not {value!r}", where,
                    "remove the quotes: a quoted value is a string"
                    if isinstance(value, str) and ptype != "string" else "")
                ok = False
                continue
            allowed = declared[name].get("enum")
            if allowed and value not in allowed:
                err(f"param '{name}' of recipe {label} must be one of {', '.join(map(str, allowed))}", where,
                    did_you_mean(str(value), [str(v) for v in allowed]) or "")
                ok = False
                continue
            values[name] = value
        missing = [n for n, spec in declared.items() if "default" not in spec and n not in values
                   and n not in given]
        if missing:
            err(f"recipe {label} needs param{'s' if len(missing) > 1 else ''} {', '.join(missing)}", at,
                f"give {'them' if len(missing) > 1 else 'it'} under `with:`, e.g. with: {{{missing[0]}: …}}")
            ok = False
        if not ok:  # said; the recipe is still read (with stand-ins) so its own errors show
            for name, spec in declared.items():
                if name not in values and "default" not in spec:
                    values[name] = _stand_in(spec, None)
                    stand_ins.add(name)
        return Binding(values, frozenset(stand_ins), folder, site)


class _Nowhere:
    """A reporter's document for an error about a file that has no source map (amelia.lock)."""

    def __init__(self, file: str):
        from ..loader import SourceMap

        self.source = SourceMap(os.path.relpath(file), [])
        self.included_from = ""


def _stand_in(spec: dict, value):
    """A value of the param's type: the one given when it has that type, else a placeholder."""
    from .params import PLACEHOLDERS

    ptype = spec.get("type")
    if value is not None and _type_ok(ptype, value):
        return value
    return PLACEHOLDERS.get(ptype, "<param>")


def _identity_of_file(path: str) -> str:
    return os.path.realpath(path)


def _short(identity: str) -> str:
    """A chain entry for a message: a file's name relative to the working folder."""
    if "//" in identity and not identity.startswith("/"):
        return identity
    rel = os.path.relpath(identity)
    return identity if rel.startswith("..") else rel
