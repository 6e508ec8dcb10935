"""Render a plan (plan.schema.json) as a markdown task list: tasks.py PLAN.json OUT.md"""

import json
import sys


def main(src: str, dst: str) -> None:
    with open(src, encoding="utf-8") as f:
        plan = json.load(f)
    lines = [f"# {plan['title']}", "", plan.get("summary", ""), ""]
    total = 0.0
    for milestone in plan["milestones"]:
        lines.append(f"## {milestone['name']}")
        lines.append("")
        for task in milestone["tasks"]:
            days = task["estimate_days"]
            total += days
            lines.append(f"- [ ] {task['title']} ({days:g} d)")
        lines.append("")
    lines.append(f"Total: {total:g} days")
    with open(dst, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
