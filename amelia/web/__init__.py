"""The command center's rendering (issue 16): one code for `amelia report` and `amelia ui`.

- `view`  reads a run (or a pipeline) into plain JSON-ready dicts; no HTML
- `dag`   lays the step graph out and draws it as SVG
- `html`  the page (inline CSS, light and dark), a run's body, escaping

Standard library and markdown-it-py only; nothing here is imported on the run path.
"""
