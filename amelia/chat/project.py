"""What a chat needs before its first prompt, each problem said before anything is typed:
the pipeline's models and sources, the one chosen of each (unknown: exit 2 with a
did-you-mean), its API key and the source's index (missing: exit 4 with a hint), and
the session to resume."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import api
from ..errors import EnvironmentProblem, UsageError, did_you_mean
from ..model_config import ModelConfig

DEFAULT = "default"
# Models a chat cannot use: claude-code edits files, and runs only in a step's worktree,
# never in the user's checkout (DESIGN §4).
NOT_FOR_CHAT = {"claude-code": "it edits files and runs only in steps, in a worktree"}


@dataclass(frozen=True)
class Project:
    root: str
    file: str  # the pipeline file, "" without one
    models: dict  # name → ModelConfig: the file's `models:` and `default`
    sources: dict  # name → SourceConfig


@dataclass
class Setup:
    project: Project
    store: object  # store.Store
    model_name: str
    model: ModelConfig
    source_name: str  # "" when the chat is not grounded
    source: object  # SourceConfig or None
    session_id: str
    history: list = field(default_factory=list)  # ChatMessage of a resumed session
    resumed: bool = False


def _pipeline_file(file: str | None) -> str | None:
    if file:
        return file
    return next((f for f in (api.DEFAULT_FILE, "amelia.yml") if os.path.exists(f)), None)


def load_project(file: str | None) -> Project:
    """The pipeline's models and sources; without a pipeline file (none given, none here),
    the project around the current directory with the built-in `default` model."""
    path = _pipeline_file(file)
    if path is None:
        from ..paths import find_root
        from ..resolve.models import DEFAULT_MODEL, model_config

        root = find_root(os.path.join(os.getcwd(), api.DEFAULT_FILE))
        return Project(root, "", {DEFAULT: model_config(DEFAULT, DEFAULT_MODEL)}, {})
    pipeline = api.validate(path)  # every problem of the file, located (exit 2)
    return Project(pipeline.root, path, pipeline_models(path), pipeline_sources(pipeline))


def pipeline_models(path: str) -> dict:
    """name → ModelConfig of the file's `models:` (and `default`), with AMELIA_MODEL's
    replacements as a run applies them. The resolved Pipeline keeps only the models its
    steps use, so the file is read again (it was just validated: no error is left)."""
    from ..loader import load_file
    from ..resolve.models import model_configs

    overrides = dict(api.parse_model_overrides(os.environ.get("AMELIA_MODEL", "")))
    problems: list = []
    models = model_configs(load_file(path).data, overrides,
                           lambda message, _where, hint="": problems.append(UsageError(message, hint=hint)))
    if problems:
        raise problems[0]
    return models


def pipeline_sources(pipeline) -> dict:
    from ..rag.sources import source_configs

    return source_configs(pipeline)


def pick_model(project: Project, name: str) -> ModelConfig:
    if name not in project.models:
        where = project.file or "the built-in models (no pipeline file here)"
        raise UsageError(f"no model named '{name}' in {where}",
                         hint=did_you_mean(name, project.models) or
                         f"models are: {', '.join(project.models)}")
    config = project.models[name]
    if config.provider in NOT_FOR_CHAT:
        raise UsageError(f"model '{name}' (provider {config.provider}) cannot chat: "
                         f"{NOT_FOR_CHAT[config.provider]}",
                         hint="choose a model of provider anthropic, openai or local with --model")
    return config


def pick_source(project: Project, name: str):
    if name not in project.sources:
        if not project.sources:
            hint = f"{project.file or 'the pipeline file'} declares no sources: add one under `sources:`"
        else:
            hint = did_you_mean(name, project.sources) or f"sources are: {', '.join(project.sources)}"
        raise UsageError(f"no source named '{name}'", hint=hint)
    return project.sources[name]


def model_problem(name: str, config: ModelConfig, root: str) -> EnvironmentProblem | None:
    """Why this model cannot answer here (a missing key, the local model not installed)."""
    from ..providers.keys import missing_keys

    for _, provider, var in missing_keys([config], root):
        return EnvironmentProblem(f"{var} is not set: model '{name}' ({provider}) needs it",
                                  hint="export it, or put it in .env at the project root")
    if config.provider == "local":
        from ..providers import ProviderError
        from ..providers.local import INSTALL_HINT, check_engine, model_path

        try:
            check_engine()
            model_path(config.model, root)
        except ProviderError as e:
            return EnvironmentProblem(f"model '{name}' cannot run: {e.message}",
                                      hint=f"install the local model ({INSTALL_HINT}), or choose "
                                           f"another with --model")
    return None


def is_indexed(config, store_dir: str) -> bool:
    from ..rag.retrieval import is_indexed as indexed

    return indexed(config, store_dir)


def find_session(chats, ref: str) -> str:
    """A session id from an id or a unique prefix of one."""
    matches = chats.matching(ref)
    if ref.lower() in matches:
        return ref.lower()
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"no chat session '{ref}'", hint="`amelia chat --list` lists them")
    raise UsageError(f"chat session '{ref}' is ambiguous ({len(matches)} sessions: "
                     f"{', '.join(matches[:5])})", hint="give more characters")


def open_chat(opts) -> Setup:
    """Everything checked, in the order a user fixes things: names first (exit 2), then
    the machine (exit 4)."""
    project = load_project(opts.file)
    if opts.model is not None:
        pick_model(project, opts.model)
    if opts.source:
        pick_source(project, opts.source)
    from ..store import Store

    store = Store(project.root)
    try:
        return _setup(project, store, opts)
    except BaseException:
        store.close()
        raise


def _setup(project: Project, store, opts) -> Setup:
    chats = store.state.chats
    session, history = None, []
    if opts.session:
        sid = find_session(chats, opts.session)
        session, history = chats.session(sid), chats.messages(sid)
    model_name = opts.model or (session and session["model"]) or DEFAULT
    source_name = opts.source or (session and session["source"]) or ""
    if session and not opts.model and model_name not in project.models:
        raise UsageError(f"session {session['id']} used model '{model_name}', which "
                         f"{project.file or 'this project'} no longer has",
                         hint=f"choose one with --model (models are: {', '.join(project.models)})")
    config = pick_model(project, model_name)
    source = pick_source(project, source_name) if source_name else None
    problem = model_problem(model_name, config, project.root)
    if problem:
        raise problem
    if source is not None and not is_indexed(source, store.dir):
        raise EnvironmentProblem(f"source '{source_name}' is not indexed yet",
                                 hint=f"run `amelia index --source {source_name}`")
    return Setup(project, store, model_name, config, source_name, source,
                 session["id"] if session else chats.unused_id(), history, session is not None)


def project_root(path: str) -> str:
    """The project root of a pipeline file, resolving it only when it declares `root:`."""
    from ..paths import find_root

    try:
        with open(path, "rb") as f:
            raw = f.read(api.MAX_PIPELINE_BYTES + 1)
    except OSError:
        raw = b"root:"  # validate says what is wrong with it
    if raw.startswith(b"root:") or b"\nroot:" in raw:
        return api.validate(path).root
    return find_root(path)


def saved_sessions(file: str | None) -> list:
    """The project's chat sessions, most recently used first (none before any chat)."""
    from ..store import Store, exists

    from ..paths import find_root

    path = _pipeline_file(file)
    root = project_root(path) if path else find_root(os.path.join(os.getcwd(), api.DEFAULT_FILE))
    if not exists(root):
        return []
    store = Store(root)
    try:
        return store.state.chats.sessions()
    finally:
        store.close()
