#!/usr/bin/env python3
"""Independent line counter for tests/realtools.rs: compares the lines that
are in a directory's log files with the records in a Kafka topic, as
multisets, without using logferry at all (the files are read here, the
topic by kcat).

    count.py --dir DIR --prefix access.log --brokers B --topic T
             [--forbid-prefix error.log] [--files-only] [--kcat PATH]

Every file in DIR whose name starts with the prefix is read: the live file,
rotated copies (.1, dateext names) and compressed ones (.gz, through the
gzip module). The topic is read with
`kcat -C -b B -t T -o beginning -e -q -f '%s\\n'`: only the payload is
printed (keys are binary) and payloads never contain a newline.

Prints one JSON object:
  file_lines     lines in the files (with multiplicity)
  topic_records  records in the topic
  lost           file lines missing from the topic, counting multiplicity
  duplicated     extra copies in the topic of lines that are in the files
  unexpected     records that match no file line at all
  forbidden      (with --forbid-prefix) records equal to a line of a file
                 whose name starts with that prefix
plus what helps to read a failure: the files read, a file's unterminated
last fragment (not a line yet, so not counted), lost and duplicated lines
per file and a few examples of each kind.

Standard library only.
"""

import argparse
import collections
import gzip
import json
import os
import subprocess
import sys

EXAMPLES = 3


def read_file(path):
    """A file's bytes; .gz files decompressed."""
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def file_lines(directory, prefix):
    """[(name, [line, ...], unterminated_fragment)] for the matching files,
    sorted by name."""
    out = []
    for name in sorted(os.listdir(directory)):
        if not name.startswith(prefix):
            continue
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        data = read_file(path)
        parts = data.split(b"\n")
        # What follows the last newline is a line still being written (or
        # cut); a shipper must not send it as a line, so it is not counted.
        fragment = parts.pop()
        out.append((name, parts, fragment))
    return out


def topic_records(kcat, brokers, topic):
    cmd = [
        kcat, "-C", "-b", brokers, "-t", topic,
        "-o", "beginning", "-e", "-q", "-f", "%s\n",
    ]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=300, check=False)
    if res.returncode != 0:
        sys.stderr.write("kcat failed (%d): %s\n" % (
            res.returncode, res.stderr.decode("utf-8", "replace")))
        sys.exit(2)
    records = res.stdout.split(b"\n")
    # Every record is printed followed by "\n": the last piece is empty.
    tail = records.pop()
    if tail:
        sys.stderr.write("kcat output does not end with a newline\n")
        sys.exit(2)
    return records


def show(line):
    return line.decode("utf-8", "replace")[:200]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--brokers")
    ap.add_argument("--topic")
    ap.add_argument("--forbid-prefix")
    ap.add_argument("--kcat", default="kcat", help="kcat binary")
    ap.add_argument("--files-only", action="store_true",
                    help="count the files' lines only; do not read the topic")
    args = ap.parse_args()

    files = file_lines(args.dir, args.prefix)
    in_files = collections.Counter()
    for _, lines, _ in files:
        in_files.update(lines)
    result = {
        "file_lines": sum(in_files.values()),
        "files": [name for name, _, _ in files],
        "unterminated": {name: len(frag) for name, _, frag in files if frag},
    }
    if args.files_only:
        print(json.dumps(result, sort_keys=True))
        return
    if not (args.brokers and args.topic):
        ap.error("--brokers and --topic are needed unless --files-only")

    records = topic_records(args.kcat, args.brokers, args.topic)
    in_topic = collections.Counter(records)

    lost = dup = unexpected = 0
    lost_ex, dup_ex, unexpected_ex = [], [], []
    for line, n in in_files.items():
        got = in_topic.get(line, 0)
        if got < n:
            lost += n - got
            if len(lost_ex) < EXAMPLES:
                lost_ex.append(show(line))
        elif got > n:
            dup += got - n
            if len(dup_ex) < EXAMPLES:
                dup_ex.append(show(line))
    for line, n in in_topic.items():
        if line not in in_files:
            unexpected += n
            if len(unexpected_ex) < EXAMPLES:
                unexpected_ex.append(show(line))

    # Which file the lost lines were in: each file's lines take copies from
    # the topic in name order; a line finding none left is lost from it.
    left = collections.Counter(in_topic)
    lost_by_file = {}
    for name, lines, _ in files:
        missing = 0
        for line in lines:
            if left[line] > 0:
                left[line] -= 1
            else:
                missing += 1
        if missing:
            lost_by_file[name] = missing

    # Which files the duplicated lines are in (a line counts once per file).
    dup_by_file = {}
    for name, lines, _ in files:
        n = sum(1 for line in set(lines) if in_topic.get(line, 0) > in_files[line])
        if n:
            dup_by_file[name] = n

    result.update({
        "duplicated_by_file": dup_by_file,
        "topic_records": len(records),
        "lost": lost,
        "duplicated": dup,
        "unexpected": unexpected,
        "lost_by_file": lost_by_file,
        "examples": {"lost": lost_ex, "duplicated": dup_ex,
                     "unexpected": unexpected_ex},
    })
    if args.forbid_prefix:
        forbid_files = file_lines(args.dir, args.forbid_prefix)
        forbid = set()
        for _, lines, _ in forbid_files:
            forbid.update(lines)
        result["forbidden_files"] = [name for name, _, _ in forbid_files]
        # How many lines the excluded files hold: a check that the writer
        # did produce some, or "forbidden = 0" would prove nothing.
        result["forbidden_file_lines"] = sum(
            len(lines) for _, lines, _ in forbid_files)
        result["forbidden"] = sum(n for line, n in in_topic.items()
                                  if line in forbid)
        # Where the shipped ones came from (live file, rotated, compressed),
        # as distinct lines (nginx repeats an error line within a second).
        result["forbidden_by_file"] = {
            name: n for name, n in (
                (name, sum(1 for line in set(lines) if line in in_topic))
                for name, lines, _ in forbid_files) if n}
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
