#!/usr/bin/env python3
"""Independent line counter for tests/rotated_names.rs and tests/backfill.rs:
the writers there number every line they write (`seq=N`, N from 0), so what
must arrive is known without logferry: lines 0..EXPECT-1, each once.

    count.py --brokers B --topic T --expect N [--kcat PATH]

The topic is read with `kcat -C -b B -t T -o beginning -e -q -f '%s\\n'`
(payloads only; they never hold a newline). Prints one JSON object:
  records      records in the topic
  missing      numbers in 0..N-1 no record carries
  duplicated   extra copies of numbers that did arrive
  unexpected   records without a `seq=` number, or one outside 0..N-1
  out_of_order records whose number is below that of an earlier record
               (first copies only: a redelivered run after a crash is not
               counted twice)
  dup_first, dup_last   the smallest and largest duplicated number
plus a few examples of missing numbers.

Standard library only.
"""

import argparse
import collections
import json
import re
import subprocess
import sys

SEQ = re.compile(rb"seq=(\d+)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--kcat", default="kcat")
    args = ap.parse_args()
    out = subprocess.run(
        [args.kcat, "-C", "-b", args.brokers, "-t", args.topic,
         "-o", "beginning", "-e", "-q", "-f", "%s\\n"],
        check=True, stdout=subprocess.PIPE).stdout
    records = out.split(b"\n")
    if records and records[-1] == b"":
        records.pop()
    counts = collections.Counter()
    unexpected = 0
    out_of_order = 0
    highest = -1
    for r in records:
        m = SEQ.search(r)
        if not m:
            unexpected += 1
            continue
        n = int(m.group(1))
        if n >= args.expect:
            unexpected += 1
            continue
        if counts[n] == 0:
            if n < highest:
                out_of_order += 1
            highest = max(highest, n)
        counts[n] += 1
    missing = [n for n in range(args.expect) if counts[n] == 0]
    dups = [n for n, c in counts.items() if c > 1]
    json.dump({
        "records": len(records),
        "missing": len(missing),
        "missing_examples": missing[:5],
        "duplicated": sum(c - 1 for c in counts.values() if c > 1),
        "dup_first": min(dups) if dups else None,
        "dup_last": max(dups) if dups else None,
        "unexpected": unexpected,
        "out_of_order": out_of_order,
    }, sys.stdout)
    print()


if __name__ == "__main__":
    main()
