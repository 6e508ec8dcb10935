"""Write a pipeline of N steps for the validate/plan benchmark. Standard library only.

Half the steps are a chain (each reads the file the one before writes), half a wide
fan (each reads a glob of source files and writes its own file, with a `needs:` on the
chain's head); a last step reads all of the fan's outputs through a glob and one
references the chain's last output through `${{ steps.ID.output }}`.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def pipeline(n: int) -> str:
    chain = n // 2
    fan = n - chain - 2
    lines = ["amelia: 1", "steps:"]
    for i in range(chain):
        inp = f", inputs: c/{i - 1}" if i else ""
        lines.append(f"  c{i}: {{run: x, output: c/{i}{inp}}}")
    for i in range(fan):
        # every 10th also names the chain's head in `needs:` (ordering only)
        needs = ", needs: c0" if i % 10 == 0 else ""
        lines.append(f"  f{i}: {{run: x, output: f/{i}, inputs: s/*.t{needs}}}")
    lines.append("  join: {run: x, inputs: ['f/*'], output: j/all}")
    lines.append(f"  last: {{run: 'echo ${{{{ steps.c{chain - 1}.output }}}}', output: j/last}}")
    return "\n".join(lines) + "\n"


def write(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "s").mkdir(exist_ok=True)
    (root / "s" / "a.t").write_text("a\n")
    p = root / "amelia.yaml"
    p.write_text(pipeline(n))
    return p


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dir", type=Path)
    ap.add_argument("-n", type=int, default=1000)
    a = ap.parse_args()
    print(write(a.dir, a.n))
