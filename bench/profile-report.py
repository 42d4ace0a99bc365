#!/usr/bin/env python3
"""Summarises the callgrind profiles of bench/profile.sh as Markdown: the
instructions per request of each scenario, the share of each shared object,
and the functions with the largest exclusive and inclusive counts."""

import argparse
import re
import subprocess
from pathlib import Path

# A callgrind_annotate line: the count, its share, then file:function and,
# when the profile spans several objects, the object in brackets.
LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*?)(?:\s+\[(.*)\])?$")


def annotate(path, inclusive):
    """Returns the total and a list of (count, function, object), largest first."""
    command = ["callgrind_annotate", "--auto=no", f"--inclusive={'yes' if inclusive else 'no'}",
               "--threshold=100", str(path)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    total = 0
    rows = []
    for line in output.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        count = int(match.group(1).replace(",", ""))
        name = match.group(2)
        if name.endswith("TOTALS"):
            total = count
            continue
        function = name.split(":", 1)[1] if ":" in name else name
        rows.append((count, function, Path(match.group(3) or "?").name))
    return total, rows


def object_shares(rows):
    shares = {}
    for count, _, obj in rows:
        shares[obj] = shares.get(obj, 0) + count
    return sorted(shares.items(), key=lambda item: -item[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="directory with callgrind.SCENARIO.out files")
    parser.add_argument("--requests", type=int, required=True, help="measured requests per scenario")
    parser.add_argument("--top", type=int, default=25, help="functions listed per scenario")
    parser.add_argument("scenarios", nargs="+")
    args = parser.parse_args()

    profiles = {}
    for name in args.scenarios:
        path = Path(args.dir) / f"callgrind.{name}.out"
        total, exclusive = annotate(path, inclusive=False)
        _, inclusive = annotate(path, inclusive=True)
        profiles[name] = (total, exclusive, inclusive)

    per_request = {name: total / args.requests for name, (total, _, _) in profiles.items()}
    baseline = per_request.get("noauth")
    lines = [
        f"Instructions (callgrind Ir) of the nginx under test per request, over {args.requests:,} "
        "requests sent one after another on one keep-alive connection.",
        "",
        "| scenario | instructions per request | added to no auth |",
        "|---|---:|---:|",
    ]
    for name, value in per_request.items():
        added = "—" if baseline is None else f"{value - baseline:+,.0f}"
        lines.append(f"| {name} | {value:,.0f} | {added} |")

    for name, (total, exclusive, inclusive) in profiles.items():
        lines += ["", f"### {name}", "", "Instructions per request by shared object:", ""]
        for obj, count in object_shares(exclusive):
            if count / total >= 0.005:
                lines.append(f"- {obj}: {count / args.requests:,.0f} ({count / total:.1%})")
        lines += ["", f"Top {args.top} functions by exclusive count:", "",
                  "| function | object | per request | share |", "|---|---|---:|---:|"]
        for count, function, obj in exclusive[:args.top]:
            lines.append(f"| `{function}` | {obj} | {count / args.requests:,.0f} | {count / total:.1%} |")
        module_rows = [row for row in inclusive if "authgear" in row[2]]
        if module_rows:
            lines += ["", "Functions of the module by inclusive count (callees included):", "",
                      "| function | per request | share |", "|---|---:|---:|"]
            for count, function, _ in module_rows[:args.top]:
                lines.append(f"| `{function}` | {count / args.requests:,.0f} | {count / total:.1%} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
