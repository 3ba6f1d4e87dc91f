#!/usr/bin/env python3
"""Numbered lines for tests/rotated_names.rs, written over a span of time.

    lines.py --tag T --from A --to B --seconds S --seed N [--timed-rotating PATH]

Lines `T seq=N <padding>` for N in A..B-1, at random moments (from the
seed) spread over about S seconds. To stdout (for multilog), or with
--timed-rotating through Python's own logging.handlers.TimedRotatingFileHandler
rotating every second, with a namer that puts the date before the extension
(app.log -> app.2026-12-03_20-27-01.log), as applications do to keep the
extension. Standard library only.
"""

import argparse
import logging
import logging.handlers
import os
import random
import sys
import time


def timed_rotating(path):
    handler = logging.handlers.TimedRotatingFileHandler(
        path, when="S", interval=1, backupCount=0)
    stem, ext = os.path.splitext(path)

    def namer(default):
        # default: PATH.<date>; the date goes before the extension.
        date = default[len(path) + 1:]
        return f"{stem}.{date}{ext}"

    handler.namer = namer
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("lines")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    return lambda line: log.info(line), handler.close


def stdout():
    def write(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return write, sys.stdout.flush


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", required=True)
    ap.add_argument("--from", dest="start", type=int, required=True)
    ap.add_argument("--to", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--timed-rotating")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    write, close = timed_rotating(args.timed_rotating) if args.timed_rotating else stdout()
    n = max(1, args.to - args.start)
    mean = args.seconds / n
    for seq in range(args.start, args.to):
        write(f"{args.tag} seq={seq:08} " + "x" * rng.randrange(30, 120))
        time.sleep(rng.uniform(0, 2 * mean))
    close()


if __name__ == "__main__":
    main()
