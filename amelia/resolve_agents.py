"""Agent steps at resolve time: models, personas, prompt and schema files.

Turns `models:`, `agents:` and an agent step's `agent`/`model`/`prompt`/`schema` into
plain data the agent step kind executes and the cache key covers. Prompt and schema
files are read here: their text is part of the resolved pipeline, and their hashes
are recorded so that editing one invalidates the cached resolution.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict

from .errors import Location, did_you_mean
from .model_config import ModelConfig

DEFAULT_MODEL = {"provider": "local"}  # `default` when the file declares none: offline
DEFAULT_REPAIRS = 2
_PATHLIKE = re.compile(r"^[\w./-]+\.[A-Za-z0-9]+$")


def model_configs(doc: dict, overrides: dict, err) -> dict:
    """name → ModelConfig for every model under `models:` (plus the built-in default)."""
    declared = dict(doc.get("models") or {})
    declared.setdefault("default", DEFAULT_MODEL)
    out = {}
    for name, spec in declared.items():
        out[name] = _config(name, spec)
    for name, target in overrides.items():
        if target not in out:
            err(f"--model {name}={target}: no model named '{target}'", ("models",),
                did_you_mean(target, out) or f"models are: {', '.join(out)}")
            continue
        out[name] = out[target]
    return out


def _config(name: str, spec: dict) -> ModelConfig:
    fields = {k: v for k, v in spec.items() if k in ModelConfig.__dataclass_fields__}
    return ModelConfig(name=name, **fields)


def is_prompt_file(text: str) -> bool:
    """`prompt:` names a file when it is one path-like word with an extension."""
    return "\n" not in text and "${{" not in text and bool(_PATHLIKE.match(text.strip()))


def read_text_file(root: str, rel: str) -> tuple[str | None, str]:
    """(text, sha256) of a project file, or (None, why)."""
    from . import paths

    problem = paths.confinement_problem(rel, root)
    if problem:
        return None, f"path '{rel}' {problem}"
    full = os.path.join(root, rel)
    try:
        with open(full, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None, f"file '{rel}' does not exist"
    except IsADirectoryError:
        return None, f"'{rel}' is a directory"
    try:
        return raw.decode("utf-8"), hashlib.sha256(raw).hexdigest()
    except UnicodeDecodeError:
        return None, f"file '{rel}' is not UTF-8 text"


def file_location(file: str, text: str, offset: int, key_path: str = "") -> Location:
    """Where `offset` in a prompt file's text is; key_path names the key that reads it."""
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    lines = text.splitlines()
    snippet = lines[line - 1] if 0 < line <= len(lines) else ""
    return Location(file, line, col, key_path, snippet)


class AgentResolution:
    """One agent step's persona, model, prompt and schema; errors go to `err`.

    doc: the step's resolve.document.Document (its `agents:` and models); root: the
    project root, where prompt and schema files are read; sid: the step's id in doc.
    """

    def __init__(self, doc, root: str, err, sid: str, data: dict):
        self.doc = doc
        self.root = root
        self.err = err
        self.sid = sid
        self.data = data
        self.base = ("steps", sid)
        self.sources: list = []  # (path, sha256) of files read
        self.texts: list = []  # (text, yaml path, file or None): where templates are
        self.ok = True

    def _err(self, message, path, hint=""):
        self.ok = False
        self.err(message, path, hint)

    def resolve(self) -> dict | None:
        agent = self.data["agent"]
        agents = self.doc.data.get("agents") or {}
        if isinstance(agent, str):
            if agent not in agents:
                self._err(f"unknown agent '{agent}'", self.base + ("agent",),
                          did_you_mean(agent, agents) or
                          (f"agents are: {', '.join(agents)}" if agents else "declare it under `agents:`"))
                return None
            persona, persona_path = agents[agent], ("agents", agent)
        else:
            persona, persona_path = agent, self.base + ("agent",)
        if "output" not in self.data:
            self._err(f"agent step '{self.sid}' has no `output:` file", self.base,
                      "the answer is written to `output:`, e.g. output: build/answer.md")
        model = self._model(self.data.get("model", persona.get("model", "default")),
                            self.base + ("model",) if "model" in self.data else persona_path + ("model",))
        system = persona.get("system", "")
        if system:
            self.texts.append((system, persona_path + ("system",), None))
        prompt = self._prompt()
        schema = self._schema()
        if not self.ok or model is None or prompt is None:
            return None
        temperature = persona.get("temperature")
        if temperature is not None:
            model = ModelConfig(**{**asdict(model), "temperature": temperature})
        return {
            "model": asdict(model),
            "system": system,
            "prompt": prompt,
            "schema": schema,
            "repairs": self.data.get("repairs", DEFAULT_REPAIRS),
        }

    def _model(self, ref, path) -> ModelConfig | None:
        if isinstance(ref, dict):
            return _config("<inline>", ref)
        models = self.doc.models
        if ref not in models:
            self._err(f"unknown model '{ref}'", path,
                      did_you_mean(ref, models) or f"models are: {', '.join(models)}")
            return None
        return models[ref]

    def _prompt(self) -> str | None:
        text = self.data["prompt"]
        path = self.base + ("prompt",)
        if not is_prompt_file(text):
            self.texts.append((text, path, None))
            return text
        rel = text.strip()
        content, sha = read_text_file(self.root, rel)
        if content is None:
            self._err(f"prompt {sha}", path, "give a prompt file relative to the project root, "
                      "or write the prompt inline with `prompt: |`")
            return None
        self.sources.append((rel, sha))
        self.texts.append((content, path, rel))
        return content

    def _schema(self):
        if "schema" not in self.data:
            return None
        value = self.data["schema"]
        path = self.base + ("schema",)
        if isinstance(value, str):
            content, sha = read_text_file(self.root, value.strip())
            if content is None:
                self._err(f"schema {sha}", path, "give a JSON Schema file, or the schema inline")
                return None
            try:
                value = json.loads(content)
            except ValueError as e:
                self._err(f"schema file '{value}' is not JSON: {e}", path)
                return None
            self.sources.append((self.data["schema"].strip(), sha))
        import jsonschema

        try:
            jsonschema.validators.validator_for(value).check_schema(value)
        except jsonschema.SchemaError as e:
            where = "/".join(str(p) for p in e.absolute_path)
            self._err(f"schema is not a valid JSON Schema: {f'at {where}: ' if where else ''}{e.message}",
                      path, "check it against JSON Schema 2020-12 (type names: object, array, "
                      "string, number, integer, boolean, null)")
            return None
        return value
