"""Take docs/ui.png: `amelia ui` on a small demo project, mid-run, at 1280x800.

    .venv/bin/python scripts/screenshot_ui.py

Needs Debian's Chromium (/usr/bin/chromium) and playwright (the dev extra).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIPELINE = """\
amelia: 1
name: docs-site
steps:
  collect:
    description: Gather the notes
    run: mkdir -p build && ls -la > build/notes.txt
    output: build/notes.txt
  outline:
    description: Outline from the notes
    inputs: [build/notes.txt]
    run: sleep 0.3 && wc -l build/notes.txt > build/outline.txt
    output: build/outline.txt
  draft:
    description: Draft the page
    inputs: [build/outline.txt]
    run: sleep 0.3 && cat build/outline.txt > build/draft.md
    output: build/draft.md
  review:
    description: Review the draft
    inputs: [build/draft.md]
    run: sleep 0.3 && echo ok > build/review.txt
    output: build/review.txt
  lint:
    description: Check the links
    inputs: [build/draft.md]
    run: sleep 6 && echo clean > build/lint.txt
    output: build/lint.txt
  publish:
    description: Bundle for the site
    inputs: [build/draft.md, build/lint.txt, build/review.txt]
    run: cat build/draft.md > build/site.html
    output: build/site.html
"""


def main() -> int:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="amelia-shot-")) / "docs-site"
    work.mkdir()
    (work / "amelia.yaml").write_text(PIPELINE)
    subprocess.run([str(REPO / ".venv/bin/amelia"), "run"], cwd=work, check=True, capture_output=True)
    (work / "amelia.yaml").write_text(PIPELINE.replace("ls -la", "ls -l"))  # a change: it runs again
    ui = subprocess.Popen([str(REPO / ".venv/bin/amelia"), "ui", "--port", "0"], cwd=work,
                          stdout=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://\S+", ui.stdout.readline()).group(0)
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url)
            page.get_by_role("button", name=re.compile("Start run")).click()
            page.wait_for_selector("[data-step='lint'].state-running", timeout=15000)
            time.sleep(0.3)
            page.screenshot(path=str(REPO / "docs" / "ui.png"))
            browser.close()
    finally:
        ui.terminate()
        ui.wait(10)
        shutil.rmtree(work.parent, ignore_errors=True)
    print(REPO / "docs" / "ui.png")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    sys.exit(main())
