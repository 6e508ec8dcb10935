"""The agent step kind at resolve time: persona, model, prompt and schema files.

Owned by the agent kind (steps/agent.py) and called only through its `resolve` hook:
turns an agent step's `agent`/`model`/`prompt`/`schema`/`repairs` (and the `agents:`
persona it names) into an AgentConfig. Prompt and schema files are read here: their
text is part of the resolved pipeline, and their hashes are recorded so that editing
one invalidates the cached resolution.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

from .errors import did_you_mean
from .steps import Resolved
from .steps.agent import DEFAULT_REPAIRS, AgentConfig

# Deeper schemas are refused before jsonschema (and every later json.dumps of the key)
# recurses through them: a file nested 100,000 deep would end in a RecursionError.
MAX_SCHEMA_DEPTH = 64

_PATHLIKE = re.compile(r"^[\w./-]+\.[A-Za-z0-9]+$")


def _depth(value) -> int:
    """How deeply a JSON value nests (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            d += 1
            deepest = max(deepest, d)
            if deepest > MAX_SCHEMA_DEPTH:
                return deepest
            stack.extend((c, d) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def is_prompt_file(text: str) -> bool:
    """`prompt:` names a file when it is one path-like word with an extension."""
    return "\n" not in text and "${{" not in text and bool(_PATHLIKE.match(text.strip()))


class AgentResolution:
    """One agent step's persona, model, prompt and schema; errors go to `ctx.err`.

    ctx: resolve.kinds.KindContext (the step's document, the project root, where prompt
    and schema files are read); sid: the step's id in its document; data: its mapping.
    """

    def __init__(self, ctx, sid: str, data: dict):
        self.ctx = ctx
        self.sid = sid
        self.data = data
        self.base = ctx.base
        self.sources: list = []  # (path, sha256) of files read
        self.texts: list = []  # (text, yaml path, file or None): where templates are
        self.ok = True

    def _err(self, message, path, hint=""):
        self.ok = False
        self.ctx.err(message, path, hint)

    def resolve(self) -> Resolved:
        config = self._config()
        return Resolved(config if self.ok else None, tuple(self.texts), tuple(self.sources))

    def _config(self) -> AgentConfig | None:
        agent = self.data["agent"]
        agents = self.ctx.doc.data.get("agents") or {}
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
            model = replace(model, temperature=temperature)
        return AgentConfig(model=model, system=system, prompt=prompt, schema=schema,
                           repairs=self.data.get("repairs", DEFAULT_REPAIRS))

    def _model(self, ref, path):
        if isinstance(ref, dict):
            from .resolve.models import model_config

            return model_config("<inline>", ref)
        models = self.ctx.models
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
        content, sha = self.ctx.read_text(rel)
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
            content, sha = self.ctx.read_text(value.strip())
            if content is None:
                self._err(f"schema {sha}", path, "give a JSON Schema file, or the schema inline")
                return None
            try:
                value = json.loads(content)
                too_deep = _depth(value) > MAX_SCHEMA_DEPTH
            except ValueError as e:
                self._err(f"schema file '{value}' is not JSON: {e}", path)
                return None
            except RecursionError:  # the decoder recurses once per level
                too_deep = True
            if too_deep:
                self._err(f"schema file '{self.data['schema'].strip()}' nests deeper than "
                          f"{MAX_SCHEMA_DEPTH} levels", path,
                          "a schema for an answer is a few levels deep; flatten it, or use $defs and $ref")
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
