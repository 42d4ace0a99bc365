#!/usr/bin/env python3
"""Measures how many resolver answers one cache zone can contain.

It sends COUNT requests, each with a new `session` cookie, so that each
answer is stored and, once the zone is full, evicts the least recently used
entry. Then it sends the same sessions again, newest first, and counts the
hits before the first miss: with least-recently-used eviction, the entries
still in the zone are exactly the newest ones. The location must add the
header X-Bench-Cache-Status with $authgear_cache_status. Prints JSON.
"""

import argparse
import http.client
import json
import sys


def session_cookie(prefix, index):
    return f"session={prefix}-{index:08d}.{index:032d}"


def cache_status(connection, cookie):
    connection.request("GET", "/", headers={"Cookie": cookie})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"capacity: expected status 200, got {response.status} for {cookie}")
    status = response.getheader("X-Bench-Cache-Status")
    if status is None:
        sys.exit("capacity: the response has no X-Bench-Cache-Status header")
    return status


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port of the capacity server on 127.0.0.1")
    parser.add_argument("--count", type=int, default=12000,
                        help="sessions to send, more than the zone can contain (default 12000, for a 1m zone)")
    parser.add_argument("--prefix", default="capacity", help="prefix of the session ids")
    args = parser.parse_args()

    connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
    for index in range(args.count):
        status = cache_status(connection, session_cookie(args.prefix, index))
        if status != "MISS":
            sys.exit(f"capacity: session {index} was new but got cache status {status}; "
                     "use a new --prefix or restart nginx")

    hits = 0
    for index in reversed(range(args.count)):
        if cache_status(connection, session_cookie(args.prefix, index)) != "HIT":
            break
        hits += 1
    connection.close()

    if hits == args.count:
        sys.exit(f"capacity: all {args.count} sessions are still cached; raise --count")
    print(json.dumps({"sent": args.count, "entries": hits}))


if __name__ == "__main__":
    main()
