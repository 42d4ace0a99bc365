#!/usr/bin/env python3
"""Prints the machine, the versions and the settings of a benchmark run as
JSON, for bench/summarize.py. bench/run.sh passes the settings in BENCH_*
environment variables."""

import json
import os
import subprocess


def output(*command):
    result = subprocess.run(command, capture_output=True, text=True)
    return (result.stdout or result.stderr).strip()


def cpu_model():
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    commit = output("git", "rev-parse", "--short", "HEAD")
    if output("git", "status", "--porcelain", "--untracked-files=no"):
        commit += " with uncommitted changes"
    names = ["seconds", "rounds", "warmup_seconds", "connections", "threads", "sessions",
             "sessions_zone_mb"]
    settings = dict(zip(names, (int(value) for value in os.environ["BENCH_SETTINGS"].split())))
    print(json.dumps({
        "command": os.environ["BENCH_COMMAND"],
        "date": output("date", "-u", "+%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "nproc": int(output("nproc")),
        "cpu_model": cpu_model(),
        "nginx_version": output(os.environ["BENCH_NGINX"], "-v"),
        "wrk_version": output("wrk", "--version").splitlines()[0].split(" Copyright")[0],
        "pinned": os.environ["BENCH_PINNED"] == "1",
        **settings,
    }, indent=2))


if __name__ == "__main__":
    main()
