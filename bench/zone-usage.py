#!/usr/bin/env python3
"""Reads the slab allocator's usage of one shared memory zone of a running
nginx worker and prints it as JSON.

The zone is found by its size among the worker's shared mappings, so the
zone must be the only one of that size. The field offsets of nginx's
ngx_slab_pool_t come from the debug information of the nginx binary, read
with gdb, so they follow the nginx version that is running. Reading
/proc/PID/mem needs the same user as the worker, or root.
"""

import argparse
import json
import re
import struct
import subprocess
import sys

PAGE_SIZE = 4096
PAGE_SHIFT = 12

FIELDS = ["min_shift", "pages", "last", "stats", "pfree"]


def slab_layout(nginx_binary):
    """Returns the offsets of FIELDS in ngx_slab_pool_t and the sizes of
    ngx_slab_page_t and ngx_slab_stat_t, in bytes."""
    expressions = [f"(long)&((ngx_slab_pool_t *)0)->{field}" for field in FIELDS]
    expressions += ["sizeof(ngx_slab_page_t)", "sizeof(ngx_slab_stat_t)"]
    command = ["gdb", "-batch", "-nx"]
    for expression in expressions:
        command += ["-ex", f"print {expression}"]
    command.append(nginx_binary)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    values = [int(value) for value in re.findall(r"^\$\d+ = (\d+)$", output, re.MULTILINE)]
    if len(values) != len(expressions):
        sys.exit(f"zone-usage: gdb did not print the slab layout of {nginx_binary}; "
                 f"is it built with debug information (-g)? gdb printed:\n{output}")
    layout = dict(zip(FIELDS, values))
    layout["page_descriptor_size"], layout["stat_size"] = values[len(FIELDS):]
    return layout


def find_zone(pid, size):
    """Returns the start address of the worker's only shared mapping of
    `size` bytes."""
    matches = []
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            start, end = (int(part, 16) for part in fields[0].split("-"))
            if fields[1].endswith("s") and end - start == size:
                matches.append(start)
    if len(matches) != 1:
        sys.exit(f"zone-usage: expected one shared mapping of {size} bytes in process {pid}, "
                 f"found {len(matches)}")
    return matches[0]


def read_usage(pid, size, layout):
    base = find_zone(pid, size)
    with open(f"/proc/{pid}/mem", "rb") as memory:
        def read_word(address):
            memory.seek(address)
            return struct.unpack("<Q", memory.read(8))[0]

        min_shift = read_word(base + layout["min_shift"])
        pages = read_word(base + layout["pages"])
        last = read_word(base + layout["last"])
        stats = read_word(base + layout["stats"])
        free_pages = read_word(base + layout["pfree"])

        total_pages = (last - pages) // layout["page_descriptor_size"]
        slots = []
        for index in range(PAGE_SHIFT - min_shift):
            memory.seek(stats + index * layout["stat_size"])
            total, used, requests, failures = struct.unpack("<4Q", memory.read(32))
            if total or requests:
                slots.append({
                    "size": 1 << (min_shift + index),
                    "total": total,
                    "used": used,
                    "requests": requests,
                    "failures": failures,
                })

    used_pages = total_pages - free_pages
    return {
        "zone_bytes": size,
        "total_pages": total_pages,
        "used_pages": used_pages,
        "used_bytes": used_pages * PAGE_SIZE,
        "used_fraction": used_pages / total_pages if total_pages else 0.0,
        "slots": slots,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True, help="nginx worker process id")
    parser.add_argument("--size", type=int, required=True, help="zone size in bytes")
    parser.add_argument("--nginx", required=True, help="the nginx binary the worker runs")
    args = parser.parse_args()
    print(json.dumps(read_usage(args.pid, args.size, slab_layout(args.nginx))))


if __name__ == "__main__":
    main()
