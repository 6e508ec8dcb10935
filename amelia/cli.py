"""The command line: parse flags, call api, render, map errors to exit codes."""

from __future__ import annotations

import os
import sys

import click

from . import api
from .entry import exit_now, run_command
from .errors import AmeliaError, UsageError

FILE_ARG = click.argument("file", required=False, metavar="[FILE]")


def _guard(fn, as_json=False, debug=False):
    try:
        return fn()
    except AmeliaError as e:
        if debug:
            import traceback

            traceback.print_exc()
        sys.exit(api.report_error(e, as_json))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(api.VERSION, prog_name="amelia")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx, debug):
    """Make for LLM agents: run the steps of amelia.yaml whose inputs changed.

    FILE is a pipeline file; without it, amelia.yaml in the current directory.
    """
    ctx.obj = {"debug": debug}


def _run_options(fn):
    opts = [
        FILE_ARG,
        click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
                     help="Set a param (repeatable)."),
        click.option("-m", "--model", "models", multiple=True, metavar="NAME=MODEL",
                     help="Use model MODEL wherever NAME is used, e.g. default=claude (repeatable)."),
        click.option("--json", "json_", is_flag=True, help="JSON output."),
        click.option("--force", multiple=True, metavar="STEP", help="Run STEP even if cached."),
        click.option("--force-all", is_flag=True, help="Run every step."),
        click.option("--only", multiple=True, metavar="STEP", help="Only STEP and its upstream."),
        click.option("-v", "--verbose", is_flag=True, help="Also list cached steps."),
        click.option("--frozen", is_flag=True,
                     help="CI: refuse to run unless amelia.lock pins every remote recipe (never write it)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


@cli.command()
@_run_options
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Steps at once (default: number of cores).")
@click.option("--dry-run", is_flag=True, help="Say what would run and why; run nothing.")
@click.option("--check", is_flag=True, help="Exit 3 if anything is stale; run nothing.")
@click.option("--wait", is_flag=True, help="Wait for another run in this project to finish.")
@click.option("--adopt", is_flag=True,
              help="Record the outputs on disk as the result of the current inputs; run nothing.")
@click.option("--push", is_flag=True, help="Push each target's new commit to the target's `push:` remote.")
@click.pass_context
def run(ctx, file, params, models, json_, force, force_all, only, verbose, frozen, jobs, dry_run, check, wait,
        adopt, push):
    """Run the steps whose inputs changed."""
    fields = dict(file=file, params=list(params), models=list(models), json=json_, force=list(force), force_all=force_all,
                  only=list(only), verbose=verbose, jobs=jobs or 0, dry_run=dry_run, check=check,
                  wait=wait, adopt=adopt, push=push, frozen=frozen, debug=ctx.obj["debug"])
    exit_now(run_command(fields, "run", sys.argv[1:]))


@cli.command()
@_run_options
@click.pass_context
def plan(ctx, file, params, models, json_, force, force_all, only, verbose, frozen):
    """Say what `run` would do, and why."""
    fields = dict(file=file, params=list(params), models=list(models), json=json_, force=list(force), force_all=force_all,
                  only=list(only), verbose=verbose, frozen=frozen, debug=ctx.obj["debug"])
    sys.exit(run_command(fields, "plan", sys.argv[1:]))


@cli.command()
@FILE_ARG
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE")
@click.option("-m", "--model", "models", multiple=True, metavar="NAME=MODEL")
@click.option("--json", "json_", is_flag=True)
@click.option("--frozen", is_flag=True, help="Refuse unless amelia.lock pins every remote recipe (never write it).")
@click.pass_context
def validate(ctx, file, params, models, json_, frozen):
    """Check the pipeline file: schema, references, paths, cycles."""
    from .entry import parse_param

    def go():
        pipeline = api.validate(file, tuple(parse_param(p) for p in params), _models(models), frozen)
        if json_:
            click.echo(f'{{"valid": true, "pipeline": "{pipeline.name}", "steps": {len(pipeline.steps)}}}')
        else:
            n = len(pipeline.steps)
            click.echo(f"{pipeline.file}: ok ({n} step{'s' if n != 1 else ''})")

    _guard(go, json_, ctx.obj["debug"])


@cli.command()
@FILE_ARG
@click.option("--update", is_flag=True, help="Resolve every recipe's tag again: move the pins on purpose.")
@click.option("--json", "json_", is_flag=True)
@click.pass_context
def lock(ctx, file, update, json_):
    """Pin every remote recipe the file includes (and theirs) in amelia.lock.

    Without --update, pins already there stay; new includes are resolved and added, and
    pins no include names any more are dropped."""
    import json as json_mod

    def go():
        where, entries = api.lock(file, update)
        rel = os.path.relpath(where)
        if json_:
            click.echo(json_mod.dumps({"lock": rel, "recipes": {k: {"url": e.url, "path": e.path, "ref": e.ref,
                                                                     "commit": e.commit}
                                                                 for k, e in entries.items()}}))
            return
        for key, e in sorted(entries.items()):
            click.echo(f"{e.commit[:12]}  {key}")
        n = len(entries)
        click.echo(f"amelia: {rel} pins {n} recipe{'s' if n != 1 else ''}" if n else
                   "amelia: the file includes no git recipe; nothing to pin")

    _guard(go, json_, ctx.obj["debug"])


@cli.command()
@click.argument("steps", nargs=-1, metavar="[STEP]...")
@click.option("-f", "--file", default=None, help="Pipeline file.")
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.pass_context
def clean(ctx, steps, file, dry_run):
    """Remove the declared outputs of STEPs (of every step without one); nothing else.

    The store keeps them: the next `amelia run` restores them without running."""

    def go():
        from .clean import clean as clean_outputs

        removed = clean_outputs(file, steps, dry_run)
        verb = "would remove" if dry_run else "removed"
        for path in removed:
            click.echo(f"{verb} {path}")
        click.echo(f"amelia: {verb} {len(removed)} output{'s' if len(removed) != 1 else ''}")

    _guard(go, False, ctx.obj["debug"])


@cli.command()
@FILE_ARG
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE")
@click.option("-m", "--model", "models", multiple=True, metavar="NAME=MODEL")
@click.option("--format", "fmt", type=click.Choice(["text", "mermaid", "dot"]), default="text")
@click.pass_context
def graph(ctx, file, params, models, fmt):
    """Print the step graph (text, mermaid or dot)."""
    from . import graph as graph_mod
    from .entry import parse_param

    def go():
        pipeline = api.validate(file, tuple(parse_param(p) for p in params), _models(models))
        click.echo(graph_mod.render(pipeline, fmt), nl=False)

    _guard(go, False, ctx.obj["debug"])


def _models(models) -> tuple:
    return tuple(m for text in models for m in api.parse_model_overrides(text))


def _store_for(file):
    pipeline, store = api.open_project(file, (), create=False)
    if store is None:
        raise UsageError("no runs yet in this project", hint="run `amelia run` first")
    return pipeline, store


def _history_store(file):
    """The project's store for history and cache commands (runref.history_store)."""
    from .runref import history_store

    return history_store(file)


def _find_run(store, ref: str) -> str:
    from .runref import find_run

    return find_run(store, ref)


@cli.command()
@FILE_ARG
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many runs, newest first (a huge N lists them all, as `git log -n`).")
@click.option("--json", "json_", is_flag=True)
@click.pass_context
def runs(ctx, file, limit, json_):
    """List recent runs."""
    from .render import runs_text, to_json

    def go():
        store = _history_store(file)
        rows = store.history.runs(limit)
        totals = store.history.usage_totals(r["id"] for r in rows)
        for r in rows:
            r["usage"] = totals.get(r["id"])
        click.echo(to_json(rows) if json_ else runs_text(rows), nl=False)

    _guard(go, json_, ctx.obj["debug"])


@cli.command()
@click.argument("run_ref", metavar="RUN", default="last")
@click.option("-f", "--file", default=None, help="Pipeline file.")
@click.option("--json", "json_", is_flag=True)
@click.pass_context
def show(ctx, run_ref, file, json_):
    """Show one run: RUN is an id, a unique prefix, or `last`."""
    from .render import show_text, to_json

    def go():
        store = _history_store(file)
        run_ = store.history.run(_find_run(store, run_ref))
        run_["usage"] = store.history.usage_by_step(run_["id"])
        for s in run_["steps"]:
            s["usage"] = run_["usage"].get(s["step"])
        _attach_git(store, run_)
        click.echo(to_json(run_) if json_ else show_text(run_), nl=False)

    _guard(go, json_, ctx.obj["debug"])


@cli.command()
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.option("-o", "--output", "out", default=None, metavar="FILE",
              help="Where to write it (default: .amelia/reports/RUN.html).")
@click.option("-f", "--file", default=None, help="Pipeline file.")
@click.pass_context
def report(ctx, run_ref, out, file):
    """Write one run as a self-contained HTML page; prints its path.

    RUN is an id, a unique prefix, or `last` (the default). The page shows the step graph
    with each step's state, reason, time, tokens, cost, model, output and log tail; it
    loads nothing, so it opens offline and can be sent as one file."""
    from .report import write_report

    _guard(lambda: click.echo(write_report(file, run_ref, out)), False, ctx.obj["debug"])


def _attach_git(store, run_: dict) -> None:
    """The run's commits on targets, and what each coding step changed (`show`)."""
    import json as json_mod

    run_["commits"] = [json_mod.loads(e.data) for e in store.history.events(run_["id"])
                       if e.type == "target_committed"]
    from .apply import recorded
    from .targets import CHANGES

    for s in run_["steps"]:
        if s["status"] in ("ran", "cached") and any(
                o.startswith(CHANGES + "/") for o in _outputs_of(store, s.get("key"))):
            s["changes"] = recorded(store, run_["id"], s["step"])


def _outputs_of(store, key) -> dict:
    record = store.records.get(key) if key else None
    return record.outputs if record is not None else {}


@cli.command()
@click.argument("words", nargs=-1, metavar="[prune] [FILE]")
@click.option("--wait", is_flag=True, help="With prune: wait for a run in this project to finish.")
@click.option("--json", "json_", is_flag=True)
@click.pass_context
def targets(ctx, words, wait, json_):
    """List the git targets: branch, base, push, worktree, last commit.

    Also lists Amelia's worktrees that no target names (stale, scratch).
    `amelia targets prune [FILE]` removes those and the ones whose folder was deleted;
    their branches are kept. (A pipeline file named `prune`: write ./prune.)"""
    from . import target_commands as tc

    def go():
        prune_ = bool(words) and words[0] == "prune"
        rest = words[1:] if prune_ else words
        if len(rest) > 1:
            raise UsageError(f"unexpected argument '{rest[1]}'",
                             hint="`amelia targets [FILE]` or `amelia targets prune [FILE]`")
        if wait and not prune_:
            raise UsageError("--wait goes with `targets prune`", hint="`amelia targets prune --wait`")
        file = rest[0] if rest else None
        if prune_:
            removed = tc.prune(file, wait)
            click.echo(tc.prune_json(removed) if json_ else tc.prune_text(removed), nl=False)
            return
        pipeline, found = tc.listing(file)
        click.echo(tc.listing_json(pipeline, found) if json_ else tc.listing_text(pipeline, found),
                   nl=False)

    _guard(go, json_, ctx.obj["debug"])


@cli.command("apply")
@click.argument("run_ref", metavar="RUN")
@click.argument("step", metavar="STEP")
@click.option("-f", "--file", default=None, help="Pipeline file.")
@click.option("--yes", is_flag=True, help="Write the changes without asking.")
@click.option("--json", "json_", is_flag=True, help="The changes and whether they were applied (never asks).")
@click.pass_context
def apply_changes(ctx, run_ref, step, file, yes, json_):
    """Apply a coding agent's edits (STEP of RUN) to your files, after a diff.

    RUN is an id, a unique prefix, or `last`. Asks before writing (on a terminal), or
    --yes; git is never touched (nothing is staged)."""
    from . import apply as ap

    def go():
        store = _history_store(file)
        try:
            changes = ap.load(store, _find_run(store, run_ref), step, ap.top_of(store.root))
            n = len(changes.changes)
            files = f"{n} file{'s' if n != 1 else ''}"
            if not json_:
                click.echo(ap.diff_text(changes), nl=False)
            if not n:
                click.echo(ap.to_json(changes, store.root, False) if json_ else
                           "amelia: nothing to apply: your files already match the step's changes",
                           nl=not json_)
                return
            if not yes:
                if json_ or not sys.stdin.isatty():
                    if json_:
                        click.echo(ap.to_json(changes, store.root, False), nl=False)
                    raise UsageError(f"not applied: {files} would change",
                                     hint="pass --yes to apply them" + ("" if json_ else
                                          " (no terminal to ask on)"))
                if not click.confirm(f"Apply these changes to {files}?", default=False):
                    click.echo("amelia: nothing applied")
                    return
            ap.write(store, changes)
            click.echo(ap.to_json(changes, store.root, True) if json_ else
                       f"amelia: applied changes to {files}; nothing staged (see `git diff`)",
                       nl=not json_)
        finally:
            store.close()

    _guard(go, json_, ctx.obj["debug"])


@cli.group()
def cache():
    """Inspect and maintain the cache in .amelia/."""


@cache.command()
@FILE_ARG
@click.option("--json", "json_", is_flag=True)
@click.pass_context
def verify(ctx, file, json_):
    """Re-hash every object; exit 4 if any is corrupt."""
    from . import maintenance

    def go():
        store = _history_store(file)
        report = maintenance.verify(store)
        click.echo(report.render(json_), nl=False)
        if report.bad:
            sys.exit(4)

    _guard(go, json_, ctx.parent.parent.obj["debug"])


@cache.command()
@FILE_ARG
@click.option("--keep", type=click.IntRange(min=1), default=3, show_default=True,
              help="Records to keep per step (at least 1: `cache clear` forgets them all).")
@click.option("--prune-other-steps", is_flag=True,
              help="Also drop records of steps this pipeline does not have "
                   "(they may belong to another pipeline file in the same project).")
@click.option("--json", "json_", is_flag=True)
@click.pass_context
def gc(ctx, file, keep, prune_other_steps, json_):
    """Drop old records, unreferenced objects and old logs."""
    from . import maintenance

    def go():
        pipeline, store = _store_for(file)
        store.lock.acquire()
        report = maintenance.gc(store, pipeline, keep, prune_other_steps)
        click.echo(report.render(json_), nl=False)

    _guard(go, json_, ctx.parent.parent.obj["debug"])


@cache.command()
@FILE_ARG
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.pass_context
def clear(ctx, file, yes):
    """Forget every cached result (run history is kept)."""
    from . import maintenance

    def go():
        store = _history_store(file)
        if not yes and sys.stdin.isatty():
            click.confirm("Forget every cached result?", abort=True)
        store.lock.acquire()
        maintenance.clear(store)
        click.echo("cache cleared")

    _guard(go, False, ctx.parent.parent.obj["debug"])


@cli.command()
@FILE_ARG
@click.option("--json", "json_", is_flag=True)
@click.pass_context
def doctor(ctx, file, json_):
    """Check the install, keys, providers, the store and the disk."""
    import os

    from . import doctor as doc
    from .paths import find_root

    def go():
        pipeline = None
        if file or os.path.exists(api.DEFAULT_FILE):
            pipeline = api.validate(file)
            root = pipeline.root
        else:
            root = find_root(os.path.join(os.getcwd(), api.DEFAULT_FILE))
        checks = doc.run_all(pipeline, root)
        click.echo(doc.render(checks, json_), nl=False)
        if any(c.status == doc.FAIL for c in checks):
            sys.exit(4)

    _guard(go, json_, ctx.obj["debug"])


@cli.command()
@FILE_ARG
@click.option("-s", "--source", "names", multiple=True, metavar="NAME",
              help="Only this source (repeatable; default: all).")
@click.option("--refresh", is_flag=True, help="Fetch the pages of URL sources again, and re-check every file.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Sources at once.")
@click.option("--json", "json_", is_flag=True, help="JSON lines of events, then a summary.")
@click.pass_context
def index(ctx, file, names, refresh, jobs, json_):
    """Bring RAG sources up to date in their index."""
    from .rag import commands

    def go():
        commands.index(file, names, refresh, json_, jobs or 0, sys.argv[1:])
        return 0

    exit_now(_guard(go, json_, ctx.obj["debug"]))


@cli.command()
@click.argument("source")
@click.argument("text")
@click.option("-f", "--file", default=None, help="Pipeline file.")
@click.option("-k", "top_k", type=click.IntRange(1, 100), default=5, show_default=True,
              help="How many chunks.")
@click.option("--json", "json_", is_flag=True)
@click.pass_context
def query(ctx, source, text, file, top_k, json_):
    """Search a RAG source: the chunks closest to TEXT."""
    from .rag import commands

    _guard(lambda: commands.query(file, source, text, top_k, json_), json_, ctx.obj["debug"])
    exit_now(0)


@cli.command()
@FILE_ARG
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help="Set a param (repeatable).")
@click.option("-m", "--model", "models", multiple=True, metavar="NAME=MODEL",
              help="Use model MODEL wherever NAME is used (repeatable).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Steps at once (default: number of cores).")
@click.option("--debounce", "debounce_ms", type=click.IntRange(min=0, max=60000), default=50,
              show_default=True, metavar="MS", help="Run once no file has changed for MS milliseconds.")
@click.option("--json", "json_", is_flag=True, help="JSON lines: events, and watch_changes per trigger.")
@click.option("-v", "--verbose", is_flag=True, help="Also list cached steps.")
@click.pass_context
def watch(ctx, file, params, models, jobs, debounce_ms, json_, verbose):
    """Run, then run again what each save makes stale, until Ctrl-C.

    Watches the pipeline file, the files it reads (prompts, schemas, params files) and every
    step's inputs; a save during a run stops and restarts the steps it invalidates."""
    from .entry import parse_param
    from .watch import main as watch_main
    from .watch.session import WatchOptions

    def go():
        opts = WatchOptions(file, tuple(parse_param(p) for p in params), _models(models), jobs or 0,
                            debounce_ms, json_, verbose, tuple(sys.argv[1:]))
        return watch_main(opts)

    exit_now(_guard(go, json_, ctx.obj["debug"]))


@cli.command()
@FILE_ARG
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free one; the URL printed shows it).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback is reachable by others (a warning says so).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Steps at once in runs started from the ui (default: number of cores).")
@click.pass_context
def ui(ctx, file, port, host, jobs):
    """Serve the live dashboard: pipelines, runs, the DAG, outputs, cost (until Ctrl-C)."""
    from .ui import serve

    exit_now(_guard(lambda: serve(file, host, port, jobs or 0), False, ctx.obj["debug"]))


@cli.command()
def schema():
    """Print the JSON Schema of amelia.yaml (for editors)."""
    from .schema import schema_path

    with open(schema_path(), encoding="utf-8") as f:
        click.echo(f.read(), nl=False)


@cli.command("init")
@click.argument("directory", required=False, default=".", metavar="[DIR]")
@click.option("-r", "--recipe", default=None, metavar="NAME",
              help="Start from a shipped recipe (`--list` shows them).")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@click.option("--list", "list_", is_flag=True, help="List the shipped recipes, with what each does.")
@click.pass_context
def init_project(ctx, directory, recipe, force, list_):
    """Start a project in DIR (default: here): amelia.yaml, prompts/, .amelia/ in .gitignore.

    Without --recipe, a small pipeline (a command and an agent on the local model).
    Never overwrites a file without --force."""
    from . import init as init_mod

    def go():
        if list_:
            click.echo(init_mod.render_list(), nl=False)
            return
        click.echo(init_mod.render(init_mod.scaffold(directory, recipe, force)), nl=False)

    _guard(go, False, ctx.obj["debug"])


@cli.command()
@FILE_ARG
@click.option("-m", "--model", default=None, metavar="NAME",
              help="A model of the pipeline's `models:` (default: the session's, else `default`).")
@click.option("-s", "--source", default=None, metavar="NAME",
              help="Ground answers in this source; they cite its excerpts as [n].")
@click.option("--session", "session", default=None, metavar="ID",
              help="Resume a saved session (an id or a unique prefix).")
@click.option("--list", "list_", is_flag=True, help="List saved sessions, most recently used first.")
@click.option("--json", "json_", is_flag=True, help="With --list: JSON.")
@click.pass_context
def chat(ctx, file, model, source, session, list_, json_):
    """Chat with a model in the terminal, optionally grounded in a source.

    In the chat: /sources, /model NAME, /help, /exit (or Ctrl-D)."""
    from .chat import ChatOptions, main as chat_main

    def go():
        if json_ and not list_:
            raise UsageError("--json goes with --list", hint="`amelia chat --list --json`")
        return chat_main(ChatOptions(file, model, source, session, list_, json_))

    code = _guard(go, json_, ctx.obj["debug"])
    exit_now(code)


def main(args=None):
    try:
        cli.main(args=args, prog_name="amelia", standalone_mode=True)
    except KeyboardInterrupt:
        sys.stderr.write("amelia: interrupted\n")
        sys.exit(130)
