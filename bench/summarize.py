#!/usr/bin/env python3
"""Turns the raw results of one bench/run.sh run into a Markdown report:
the results tables, the cache zone figures and the targets table.

Usage: summarize.py OUT_DIR, where OUT_DIR contains results.jsonl, meta.json,
capacity.json and, when module_sessions ran, sessions-zone.json.
"""

import json
import statistics
import sys
from pathlib import Path

LABELS = {
    "noauth": "no auth",
    "recipe": "recipe, no cache",
    "recipe_cache": "recipe with proxy_cache, hit",
    "module": "module, no cache",
    "module_hit": "module, cache hit, 1 session",
    "module_sessions": "module, cache hit, {sessions} sessions",
    "module_miss": "module, cache miss on every request",
    "noauth_1conn": "no auth, 1 connection",
    "module_hit_1conn": "module, cache hit, 1 session, 1 connection",
}

# The scenarios whose requests should all be cache hits: any resolver call
# during their runs means the setup is wrong.
HIT_SCENARIOS = {"recipe_cache", "module_hit", "module_sessions", "module_hit_1conn"}

# Above this idle share of CPU 0, the nginx under test was not the bottleneck.
IDLE_CPU = 0.05

# Above this share of one CPU, other processes disturbed a run.
OTHER_CPU = 0.10


def load_json(path, default=None):
    if not path.exists():
        return default
    return json.loads(path.read_text())


class Scenario:
    """The rounds of one scenario, with per-round figures."""

    def __init__(self, name, rounds):
        self.name = name
        self.rounds = rounds
        self.connections = rounds[0]["connections"]
        seconds = [r["wrk"]["duration_us"] / 1e6 for r in rounds]
        requests = [r["wrk"]["requests"] for r in rounds]

        self.rps = [n / s for n, s in zip(requests, seconds)]
        self.p50 = [r["wrk"]["latency_p50_us"] for r in rounds]
        self.p99 = [r["wrk"]["latency_p99_us"] for r in rounds]
        self.calls_per_request = [r["resolver_calls"] / max(n, 1) for r, n in zip(rounds, requests)]
        # Requests per CPU second of the nginx under test: its capacity,
        # which other load on the machine changes far less than requests/s.
        self.per_cpu_second = [n / max(r["under_test_cpu_s"], 0.01) for r, n in zip(rounds, requests)]

        def share(key):
            return [r[key] / s for r, s in zip(rounds, seconds)]

        self.cpu = share("under_test_cpu_s")
        self.backend_cpu = share("backend_cpu_s")
        self.wrk_cpu = share("wrk_cpu_s")
        self.other_cpu = share("other_cpu_s")
        self.idle = [[idle / s for idle in r.get("idle_s", [0, 0])] for r, s in zip(rounds, seconds)]
        self.errors = sum(
            r["wrk"][key]
            for r in rounds
            for key in ("errors_connect", "errors_read", "errors_write", "errors_status",
                        "errors_timeout")
        )

    def median(self, values):
        return statistics.median(values)


def spread(values, digits=0):
    """Formats the median with the range of the rounds, e.g. 21,300 (20,900–21,700)."""
    def number(value):
        return f"{value:,.{digits}f}"

    median = number(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({number(min(values))}–{number(max(values))})"


def ratio(numerator, denominator):
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def format_ratio(value):
    return "—" if value is None else f"{value:.2f}×"


def percent(values):
    return f"{statistics.median(values):.0%}"


def label(name, meta):
    return LABELS[name].format(sessions=f"{meta.get('sessions', 0):,}")


def ordered(scenarios):
    return [scenarios[name] for name in LABELS if name in scenarios]


def ratios(scenario, scenarios, metric):
    """Returns the scenario's median of `metric` against no auth at the same
    connection count and against the recipe with proxy_cache."""
    median = statistics.median(getattr(scenario, metric))
    baseline = next((s for s in scenarios.values()
                     if s.name.startswith("noauth") and s.connections == scenario.connections), None)
    recipe_cache = scenarios.get("recipe_cache")
    versus_noauth = ratio(median, statistics.median(getattr(baseline, metric))) if baseline else None
    versus_recipe = None
    if recipe_cache is not None and recipe_cache.connections == scenario.connections:
        versus_recipe = ratio(median, statistics.median(getattr(recipe_cache, metric)))
    return format_ratio(versus_noauth), format_ratio(versus_recipe)


def throughput_table(scenarios, meta):
    lines = [
        "| scenario | connections | requests/s | × no auth | × recipe with proxy_cache "
        "| p50 (µs) | p99 (µs) | resolver calls per request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in ordered(scenarios):
        versus_noauth, versus_recipe = ratios(scenario, scenarios, "rps")
        lines.append(
            f"| {label(scenario.name, meta)} | {scenario.connections} | {spread(scenario.rps)} "
            f"| {versus_noauth} | {versus_recipe} | {spread(scenario.p50)} | {spread(scenario.p99)} "
            f"| {statistics.median(scenario.calls_per_request):.3f} |"
        )
    return lines


def cpu_table(scenarios, meta):
    lines = [
        "| scenario | requests per CPU second of the nginx under test | × no auth "
        "| × recipe with proxy_cache | CPU: under test / backend / wrk / other "
        "| idle: CPU 0 / CPU 1 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for scenario in ordered(scenarios):
        versus_noauth, versus_recipe = ratios(scenario, scenarios, "per_cpu_second")
        shares = " / ".join(percent(values) for values in
                            (scenario.cpu, scenario.backend_cpu, scenario.wrk_cpu, scenario.other_cpu))
        idle = " / ".join(percent([pair[index] for pair in scenario.idle]) for index in (0, 1))
        lines.append(
            f"| {label(scenario.name, meta)} | {spread(scenario.per_cpu_second)} | {versus_noauth} "
            f"| {versus_recipe} | {shares} | {idle} |"
        )
    return lines


def zone_lines(capacity, zone, meta):
    lines = []
    if capacity is not None:
        lines.append(
            f"- **Entries per MB:** a 1m zone held {capacity['entries']:,} entries of the typical "
            f"identity, so {capacity['entries']:,} per MB of zone. Method: bench/capacity.py sent "
            f"{capacity['sent']:,} new sessions, then the same sessions newest first, and counted "
            "the hits before the first miss; with least-recently-used eviction those are exactly "
            "the entries still in the zone."
        )
    if zone is not None:
        used_mb = zone["used_bytes"] / 1048576
        zone_mb = zone["zone_bytes"] / 1048576
        slots = ", ".join(
            f"{slot['used']:,} of {slot['total']:,} slots of {slot['size']} bytes"
            for slot in zone["slots"] if slot["used"]
        )
        sessions = meta.get("sessions", 0)
        per_entry = zone["used_bytes"] / sessions if sessions else 0
        lines.append(
            f"- **Sessions zone after the run:** {zone['used_pages']:,} of {zone['total_pages']:,} "
            f"pages in use ({used_mb:.1f} MB of the {zone_mb:.0f} MB zone, "
            f"{zone['used_fraction']:.0%}); {slots}. That is {per_entry:.0f} bytes of pages per "
            f"warmed session. Method: bench/zone-usage.py read the slab allocator's page and slot "
            "counters from the worker's shared memory."
        )
    return lines


def target_rows(scenarios, capacity):
    """Evaluates each target on requests/s and, where it compares throughput,
    also on requests per CPU second of the nginx under test."""

    def median(name, metric):
        scenario = scenarios.get(name)
        return statistics.median(getattr(scenario, metric)) if scenario else None

    def difference(first, second):
        if first is None or second is None:
            return None
        return first - second

    def verdict(value, passes):
        if value is None:
            return "not run", "—"
        return None, "met" if passes(value) else "missed"

    rows = []

    def throughput_row(target, numerator, denominator, threshold, unit="×"):
        cells = []
        for metric in ("rps", "per_cpu_second"):
            value = ratio(median(numerator, metric), median(denominator, metric))
            missing, result = verdict(value, lambda v: v >= threshold)
            cells += [missing or f"{value:.2f}{unit}", result]
        rows.append(f"| {target} | {' | '.join(cells)} |")

    throughput_row("module cache hit ≥ 0.85× no auth", "module_hit", "noauth", 0.85)
    throughput_row("module cache hit ≥ 3× recipe with proxy_cache", "module_hit", "recipe_cache", 3.0)
    throughput_row("module without cache ≥ 1.0× recipe", "module", "recipe", 1.0)
    throughput_row("hits over many sessions within 10% of hits on one session",
                   "module_sessions", "module_hit", 0.90)

    value = capacity["entries"] if capacity else None
    missing, result = verdict(value, lambda v: v >= 3000)
    rows.append(f"| ≥ 3,000 identities per MB | {missing or f'{value:,} per MB'} | {result} | — | — |")

    connections = scenarios["module_hit"].connections if "module_hit" in scenarios else "?"
    for target, hit, base in (
        ("p99 added by a hit over no auth ≤ 50 µs, 1 connection", "module_hit_1conn", "noauth_1conn"),
        (f"p99 added by a hit over no auth ≤ 50 µs, {connections} connections", "module_hit", "noauth"),
    ):
        value = difference(median(hit, "p99"), median(base, "p99"))
        missing, result = verdict(value, lambda v: v <= 50)
        rows.append(f"| {target} | {missing or f'{value:+,.0f} µs'} | {result} | — | — |")
    return rows


def warnings(scenarios):
    lines = []
    for scenario in scenarios.values():
        if scenario.errors:
            lines.append(f"- {scenario.name}: wrk counted {scenario.errors:,} errors "
                         "(connect, read, write, timeout or non-2xx status).")
        if scenario.name in HIT_SCENARIOS and max(scenario.calls_per_request) > 0.001:
            lines.append(f"- {scenario.name}: the resolver was called on "
                         f"{max(scenario.calls_per_request):.1%} of requests, although every "
                         "request should be a cache hit.")
        idle_cpu0 = statistics.median(pair[0] for pair in scenario.idle)
        if scenario.connections > 1 and idle_cpu0 > IDLE_CPU:
            lines.append(f"- {scenario.name}: CPU 0, where the nginx under test runs, was idle "
                         f"{idle_cpu0:.0%} of the time, so the nginx under test was not the "
                         "bottleneck.")
        disturbed = [r for r, share in zip(scenario.rounds, scenario.other_cpu) if share > OTHER_CPU]
        if disturbed:
            lines.append(f"- {scenario.name}: other processes used more than {OTHER_CPU:.0%} of a "
                         f"CPU in round(s) {', '.join(str(r['round']) for r in disturbed)}.")
    return lines


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip())
    out_dir = Path(sys.argv[1])
    meta = load_json(out_dir / "meta.json", {})
    capacity = load_json(out_dir / "capacity.json")
    zone = load_json(out_dir / "sessions-zone.json")

    by_name = {}
    for line in (out_dir / "results.jsonl").read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            by_name.setdefault(record["scenario"], []).append(record)
    scenarios = {name: Scenario(name, rounds) for name, rounds in by_name.items()}

    pinned = ("the nginx under test on CPU 0, wrk and the backend nginx on CPU 1"
              if meta.get("pinned") else "not pinned to CPUs")
    lines = [
        f"Run of {meta.get('date', '?')} on commit {meta.get('commit', '?')}.",
        "",
        f"- Machine: {meta.get('nproc', '?')} CPUs (`nproc`), {meta.get('cpu_model', '?')}.",
        f"- Software: {meta.get('nginx_version', '?')} (release build, one worker process), "
        f"{meta.get('wrk_version', '?')}.",
        f"- Load: wrk with {meta.get('threads', '?')} thread(s), {meta.get('rounds', '?')} rounds of "
        f"{meta.get('seconds', '?')} s per scenario after {meta.get('warmup_seconds', '?')} s of "
        f"warm-up each; {pinned}.",
        f"- Command: `{meta.get('command', 'make bench')}`",
        "",
        "Each cell is the median across rounds, with the lowest and highest round in brackets.",
        "",
    ]
    lines += throughput_table(scenarios, meta)
    lines += [
        "",
        "The CPU column gives the share of one CPU that the nginx under test, the backend nginx, "
        "wrk and all other processes of the machine used during the runs, and the idle column "
        "the share of time each CPU was idle.",
        "",
    ]
    lines += cpu_table(scenarios, meta)
    lines += ["", "### Cache zone", ""]
    lines += zone_lines(capacity, zone, meta) or ["- not measured"]
    lines += [
        "",
        "### Targets",
        "",
        "| target | on requests/s | result | on requests per CPU second | result |",
        "|---|---:|---|---:|---|",
    ]
    lines += target_rows(scenarios, capacity)
    found = warnings(scenarios)
    if found:
        lines += ["", "### Warnings", ""] + found
    print("\n".join(lines))


if __name__ == "__main__":
    main()
