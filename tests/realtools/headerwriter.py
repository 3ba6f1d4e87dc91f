#!/usr/bin/env python3
"""A log writer that behaves like IIS's W3C logging, for tests/realtools.rs.

    headerwriter.py --path FILE --pidfile PIDFILE [--rate LINES_PER_S]
                    [--max-lines N] [--max-seconds T]

- Keeps FILE open in append mode, as servers do.
- Every file it creates starts with the SAME 293-byte header (#Software,
  #Version, #Fields): files of different generations have identical first
  bytes, which is what makes "same first bytes" useless as an identity.
- Then writes unique numbered lines at a steady rate, each batch in one
  write(2), whole lines only.
- On SIGUSR1 reopens FILE (creating it, with the header, if logrotate moved
  it away or created it empty), exactly as nginx does on USR1: lines
  written between logrotate's rename and the reopen still go to the old
  file.
- Exits by itself after N lines or T seconds, or on SIGTERM, and prints
  {"lines": data lines, "header_lines": header lines, "files": headers
  written, "written_total": all lines} on stdout.

Standard library only.
"""

import argparse
import json
import os
import signal
import time

HEADER = (
    b"#Software: Microsoft Internet Information Services 10.0\n"
    b"#Version: 1.0\n"
    b"#Fields: date time s-sitename s-computername s-ip cs-method "
    b"cs-uri-stem cs-uri-query s-port cs-username c-ip cs-version "
    b"cs(User-Agent) cs(Referer) cs-host sc-status sc-substatus "
    b"sc-win32-status sc-bytes cs-bytes time-taken\n"
)
HEADER_LINES = HEADER.count(b"\n")
TICK = 0.01

reopen = False
stop = False


def on_usr1(_sig, _frame):
    global reopen
    reopen = True


def on_term(_sig, _frame):
    global stop
    stop = True


def write_all(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


def line(n, now):
    t = time.gmtime(now)
    return (
        "%s W3SVC1 WEB01 10.0.0.5 GET /api/items/%d n=%08d 443 - "
        "192.0.2.%d HTTP/1.1 Mozilla/5.0+(X11;+Linux+x86_64) - "
        "www.example.test 200 0 0 %d %d %d\n"
        % (time.strftime("%Y-%m-%d %H:%M:%S", t), n * 7, n, n % 250,
           1000 + n % 5000, 300 + n % 700, n % 97)
    ).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--path", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--max-lines", type=int, default=200000)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    args = ap.parse_args()

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, on_term)

    stats = {"lines": 0, "header_lines": 0, "files": 0}

    def open_log():
        fd = os.open(args.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # A new file (or the empty one logrotate's `create` made) gets the
        # header before anything else.
        if os.fstat(fd).st_size == 0:
            write_all(fd, HEADER)
            stats["header_lines"] += HEADER_LINES
            stats["files"] += 1
        return fd

    global reopen
    fd = open_log()
    # The pid file appears only once the log exists, so whoever waits for
    # it may rotate at once; written whole (rename) so a reader never sees
    # it half written.
    tmp = args.pidfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(tmp, args.pidfile)

    start = time.monotonic()
    written = 0
    while not stop and written < args.max_lines:
        elapsed = time.monotonic() - start
        if elapsed >= args.max_seconds:
            break
        if reopen:
            reopen = False
            os.close(fd)
            fd = open_log()
        due = min(args.max_lines, int(args.rate * elapsed))
        if due > written:
            now = time.time()
            write_all(fd, b"".join(line(n, now) for n in range(written, due)))
            written = due
        time.sleep(TICK)
    os.close(fd)
    stats["lines"] = written
    stats["written_total"] = written + stats["header_lines"]
    print(json.dumps(stats, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
