#!/usr/bin/env python3
"""HTTP client for scripts/systemd/level2.sh (standard library only).

level2.sh runs it on the host inside the container's network namespace
(`nsenter -t LEADER -n python3 client.py ...`), so it only ever talks to 127.0.0.1 there.

  client.py get PORT [PATH] [--header NAME] [--timeout S]
      One GET with `Connection: close`. Prints `STATUS [HEADER-VALUE]`; exit 0 on 200.
  client.py load PORT --stop-file F --out F [--ready-file F] [--keepalive N] [--fresh N]
                 [--max-seconds S] [--max-requests N] [--timeout S]
      N threads on keep-alive connections (reconnecting after `Connection: close`) and N
      threads opening a new connection per request, until F exists (or the time or request
      bound is reached: a bounded load, never an endless one). Writes a JSON summary to --out.
      Every error counts: nothing is retried.
"""

import argparse
import http.client
import json
import os
import socket
import sys
import threading
import time

HOST = "127.0.0.1"


def get(args):
    conn = http.client.HTTPConnection(HOST, args.port, timeout=args.timeout)
    try:
        conn.request("GET", args.path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
    except (OSError, http.client.HTTPException) as e:
        print(f"error {type(e).__name__}: {e}")
        return 1
    finally:
        conn.close()
    line = str(resp.status)
    if args.header:
        line += " " + (resp.getheader(args.header) or "-")
    print(line)
    return 0 if resp.status == 200 else 1


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.connect_errors = 0
        self.errors = {}
        self.first_errors = []

    def total(self):
        return self.ok + self.failed

    def success(self):
        with self.lock:
            self.ok += 1

    def failure(self, kind, detail, connect=False):
        with self.lock:
            self.failed += 1
            if connect:
                self.connect_errors += 1
            self.errors[kind] = self.errors.get(kind, 0) + 1
            if len(self.first_errors) < 10:
                self.first_errors.append(f"{time.strftime('%H:%M:%S')} {kind}: {detail}")


def load(args):
    stats = Stats()
    stop = threading.Event()
    reason = {"why": None}
    started = time.monotonic()

    def should_stop():
        if stop.is_set():
            return True
        why = None
        if os.path.exists(args.stop_file):
            why = "stop-file"
        elif time.monotonic() - started > args.max_seconds:
            why = "max-seconds"
        elif stats.total() >= args.max_requests:
            why = "max-requests"
        if why:
            reason["why"] = reason["why"] or why
            stop.set()
            return True
        return False

    def one(conn, close):
        """One request on `conn`; False if the connection must be dropped."""
        if conn.sock is None:
            try:
                conn.connect()
            except OSError as e:
                stats.failure("connect:" + type(e).__name__, str(e), connect=True)
                return False
        try:
            headers = {"Connection": "close"} if close else {}
            conn.request("GET", "/", headers=headers)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException) as e:
            stats.failure(type(e).__name__, str(e))
            return False
        if resp.status != 200:
            stats.failure(f"status:{resp.status}", resp.reason)
        else:
            stats.success()
        return not (close or resp.will_close)

    def keepalive_thread():
        conn = http.client.HTTPConnection(HOST, args.port, timeout=args.timeout)
        while not should_stop():
            if not one(conn, close=False):
                conn.close()
            time.sleep(args.pause)
        conn.close()

    def fresh_thread():
        while not should_stop():
            conn = http.client.HTTPConnection(HOST, args.port, timeout=args.timeout)
            one(conn, close=True)
            conn.close()
            time.sleep(args.pause)

    threads = [threading.Thread(target=keepalive_thread) for _ in range(args.keepalive)]
    threads += [threading.Thread(target=fresh_thread) for _ in range(args.fresh)]
    for t in threads:
        t.daemon = True
        t.start()
    if args.ready_file:
        while stats.ok == 0 and not should_stop():
            time.sleep(0.01)
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
    while not should_stop():
        time.sleep(0.02)
    deadline = time.monotonic() + args.timeout + 5
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    summary = {
        "ok": stats.ok,
        "failed": stats.failed,
        "connect_errors": stats.connect_errors,
        "errors": stats.errors,
        "first_errors": stats.first_errors,
        "stopped_by": reason["why"],
        "seconds": round(time.monotonic() - started, 2),
        "stuck_threads": sum(t.is_alive() for t in threads),
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f)
    os.replace(tmp, args.out)
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("get")
    g.add_argument("port", type=int)
    g.add_argument("path", nargs="?", default="/")
    g.add_argument("--header")
    g.add_argument("--timeout", type=float, default=10)
    l = sub.add_parser("load")
    l.add_argument("port", type=int)
    l.add_argument("--stop-file", required=True)
    l.add_argument("--out", required=True)
    l.add_argument("--ready-file")
    l.add_argument("--keepalive", type=int, default=4)
    l.add_argument("--fresh", type=int, default=4)
    l.add_argument("--max-seconds", type=float, default=60)
    l.add_argument("--max-requests", type=int, default=200000)
    l.add_argument("--timeout", type=float, default=10)
    l.add_argument("--pause", type=float, default=0.002)
    args = p.parse_args()
    socket.setdefaulttimeout(args.timeout)
    return get(args) if args.cmd == "get" else load(args)


if __name__ == "__main__":
    sys.exit(main())
