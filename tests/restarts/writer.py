#!/usr/bin/env python3
"""The log writer of tests/restarts.rs: unique numbered lines at a steady rate.

    writer.py --path FILE --pidfile PIDFILE --ackfile ACKFILE
              [--rate LINES_PER_S] [--max-seconds T]

- Opens FILE with O_APPEND (so logrotate's copytruncate works: after the
  truncation the next write lands at offset 0) and keeps it open.
- Writes line number n, 0, 1, 2, ..., as `line(n)` below: `seq=NNNNNNNNN `
  then padding derived from n alone, 40-300 bytes with the newline. The
  counter (count.py) has the same function, so it can tell a line the
  writer wrote from anything else without a list of them.
- Whole lines only, each batch (one tick's worth) in one write(2).
- On SIGHUP (logrotate's postrotate in `create` mode, see reopen.sh)
  reopens FILE, creating it if needed, then bumps the number in ACKFILE
  (written whole, by rename): reopen.sh waits for that, so logrotate
  compresses the old file only after the writer has left it and no line
  is ever written to a file logrotate already read.
  In copytruncate mode nothing sends SIGHUP and the file is never reopened.
- Exits on SIGTERM (or after T seconds) and prints {"written": N,
  "reopens": R} on stdout: lines 0..N-1 were written.

Standard library only.
"""

import argparse
import hashlib
import json
import os
import signal
import time

TICK = 0.005
PREFIX_LEN = len("seq=000000000 ")


def line(n):
    """Line n with its newline, 40-300 bytes, a function of n alone."""
    h = hashlib.blake2b(n.to_bytes(8, "little"), digest_size=32).hexdigest()
    total = 40 + int(h[:4], 16) % 261
    pad_len = total - PREFIX_LEN - 1
    pad = (h * (pad_len // len(h) + 1))[:pad_len]
    return ("seq=%09d %s\n" % (n, pad)).encode()


reopen = False
stop = False


def on_hup(_sig, _frame):
    global reopen
    reopen = True


def on_term(_sig, _frame):
    global stop
    stop = True


def write_all(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


def write_whole(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--path", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--ackfile", required=True)
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--max-seconds", type=float, default=300.0)
    args = ap.parse_args()

    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGTERM, on_term)

    def open_log():
        return os.open(args.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    global reopen
    fd = open_log()
    reopens = 0
    write_whole(args.ackfile, "0\n")
    # The pid file appears only once the log and the ack file exist.
    write_whole(args.pidfile, "%d\n" % os.getpid())

    start = time.monotonic()
    written = 0
    while not stop:
        elapsed = time.monotonic() - start
        if elapsed >= args.max_seconds:
            break
        if reopen:
            reopen = False
            os.close(fd)
            fd = open_log()
            reopens += 1
            write_whole(args.ackfile, "%d\n" % reopens)
        due = int(args.rate * elapsed)
        if due > written:
            write_all(fd, b"".join(line(n) for n in range(written, due)))
            written = due
        time.sleep(TICK)
    os.close(fd)
    print(json.dumps({"written": written, "reopens": reopens}), flush=True)


if __name__ == "__main__":
    main()
