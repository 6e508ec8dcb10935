#!/usr/bin/env bash
# One venv per peer under benchmarks/noop/.venvs/ (gitignored); GNU make is the system one.
# Versions are pinned so that figures can be reproduced; PYTHON overrides the interpreter.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
for spec in doit==0.37.0 dvc==3.67.1; do
  name="${spec%%==*}"
  venv="$here/.venvs/$name"
  if [ ! -x "$venv/bin/$name" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$spec"
  fi
  echo "$name: $venv/bin/$name ($("$venv/bin/pip" show "$name" 2>/dev/null | sed -n 's/^Version: //p'))"
done
command -v make >/dev/null && echo "make: $(command -v make) ($(make --version | head -1))" \
  || echo "warning: GNU make not found; install it (apt-get install make)" >&2
