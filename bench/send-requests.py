#!/usr/bin/env python3
"""Sends a fixed number of GET requests, one after another over one
keep-alive connection, and checks that each gets a 200. bench/profile.sh
uses it, because wrk runs for a time and not for a count."""

import argparse
import http.client
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--count", type=int, required=True, help="requests to send")
    parser.add_argument("--cookie", help="Cookie header of every request")
    parser.add_argument("--unique-prefix",
                        help="send `session=PREFIX-N.<32 digits>` with a new N per request instead")
    parser.add_argument("--sessions", type=int,
                        help="send the sessions of bench/wrk/sessions.lua, 1 to SESSIONS, in order")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per request (default 60)")
    args = parser.parse_args()

    connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=args.timeout)
    for index in range(args.count):
        if args.unique_prefix:
            cookie = f"session={args.unique_prefix}-{index}.{index:032d}"
        elif args.sessions:
            number = index % args.sessions + 1
            cookie = f"session=bench-{number:08d}.{number:032d}"
        else:
            cookie = args.cookie
        headers = {"Cookie": cookie} if cookie else {}
        connection.request("GET", "/", headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"send-requests: request {index} got status {response.status}")
    connection.close()


if __name__ == "__main__":
    main()
