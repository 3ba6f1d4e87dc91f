#!/usr/bin/env python3
"""Independent counter for tests/restarts.rs: compares the lines in a
directory's log files with the records in a Kafka topic and checks each
record's source attribution against the files, using no logferry code
(the files are read here, the topic by kcat).

    count.py --dir LOGS --prefix app.log --written N --mode create|copytruncate
             [--brokers B --topic T] [--kcat PATH] [--zstd PATH]
             [--checkpoint-dir DIR] [--files-only]

Files: every file in LOGS whose name starts with the prefix, decompressed
by its MAGIC BYTES (not its name): gzip (gzip module), bzip2 (bz2), xz
(lzma), zstd (the `zstd` CLI, as Python 3.11 has no zstd module). What
follows a file's last newline is a fragment (copytruncate may copy half a
line), not a line.

Topic: `kcat -C -e -q -o beginning -f 'P%p O%o K%K:%kS%S:%s'`, binary-safe
(key and payload are read by their printed lengths). A record's key is
logferry's source attribution v3 (src/wire/attribution.rs):
  [3][flags][varint pkey_len][pkey][varint generation][varint dev]
  [varint ino][varint offset][varint host_len][host][varint path_len][path]
varints are LEB128 (7 bits a byte, least significant first).

The writer (writer.py) writes line n as line(n), a function of n alone,
lines 0..N-1 (N = --written), so every line can be told from anything else.

Prints one JSON object; the test asserts on:
  lost            lines in the files that are not in the topic
  unexpected      records that are no line the writer wrote (a record
                  equal to a file's unterminated end, which logferry ships
                  once the file left its name and is idle, is counted as
                  fragments_shipped instead)
  bad_offsets     records whose line is not at their offset in the file
                  that holds it, or whose generation's records are spread
                  over more than one file
  bad_keys        records whose key does not decode
  and the counter's own honesty (sanity): file_garbage (a file line the
  writer did not write), file_duplicates (a line in two places),
  missing_from_files (create mode: written lines in no file; must be 0 as
  reopen.sh makes logrotate wait for the writer; copytruncate: the
  copy-to-truncate window, reported as dropped_by_logrotate).
and reports duplicated, shipped_not_in_files (lines logrotate dropped
that logferry had read), examples and where the lost lines were, and
logferry's own losses.jsonl.

Standard library only.
"""

import argparse
import bz2
import collections
import gzip
import hashlib
import json
import lzma
import os
import re
import subprocess
import sys

EXAMPLES = 5
PREFIX_LEN = len("seq=000000000 ")
SEQ_RE = re.compile(rb"^seq=(\d{9}) ")


def writer_line(n):
    """writer.py's line(n), without the newline."""
    h = hashlib.blake2b(n.to_bytes(8, "little"), digest_size=32).hexdigest()
    total = 40 + int(h[:4], 16) % 261
    pad_len = total - PREFIX_LEN - 1
    pad = (h * (pad_len // len(h) + 1))[:pad_len]
    return ("seq=%09d %s" % (n, pad)).encode()


def seq_of(line, written):
    """n if `line` is writer line n (n < written), else None."""
    m = SEQ_RE.match(line)
    if not m:
        return None
    n = int(m.group(1))
    if n >= written or writer_line(n) != line:
        return None
    return n


def read_file(path, zstd):
    """(bytes, kind), decompressed by magic bytes."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data), "gzip"
    if data[:3] == b"BZh":
        return bz2.decompress(data), "bzip2"
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data), "xz"
    if data[:4] == b"\x28\xb5\x2f\xfd":
        res = subprocess.run([zstd, "-d", "-c", "-q"], input=data,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             check=False)
        if res.returncode != 0:
            sys.stderr.write("zstd -d %s failed: %s\n" % (
                path, res.stderr.decode("utf-8", "replace")))
            sys.exit(2)
        return res.stdout, "zstd"
    return data, "plain"


def read_files(directory, prefix, zstd):
    """[(name, kind, data)] sorted by name."""
    out = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.startswith(prefix) and os.path.isfile(path):
            data, kind = read_file(path, zstd)
            out.append((name, kind, data))
    return out


def varint(buf, i):
    v = 0
    shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("short varint")
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, i
        shift += 7


def decode_key(key):
    """dict of the attribution in a v3 key; ValueError if it is none."""
    if key is None or len(key) < 2 or key[0] != 3:
        raise ValueError("not a v3 key: %r" % (key[:8] if key else key))
    i = 2
    n, i = varint(key, i)
    i += n
    gen, i = varint(key, i)
    dev, i = varint(key, i)
    ino, i = varint(key, i)
    off, i = varint(key, i)
    n, i = varint(key, i)
    host = key[i:i + n]
    i += n
    n, i = varint(key, i)
    path = key[i:i + n]
    i += n
    if i != len(key) or len(path) != n:
        raise ValueError("key length mismatch")
    return {"flags": key[1], "generation": gen, "dev": dev, "ino": ino,
            "offset": off, "host": host.decode("utf-8", "replace"),
            "path": path.decode("utf-8", "replace")}


def read_topic(kcat, brokers, topic):
    """[(partition, offset, key or None, payload)]."""
    cmd = [kcat, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e",
           "-q", "-f", "P%p O%o K%K:%kS%S:%s"]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=600, check=False)
    if res.returncode != 0:
        sys.stderr.write("kcat failed (%d): %s\n" % (
            res.returncode, res.stderr.decode("utf-8", "replace")))
        sys.exit(2)
    out = res.stdout
    recs = []
    i = 0

    def upto(sep, i):
        j = out.index(sep, i)
        return out[i:j], j + len(sep)

    while i < len(out):
        if out[i:i + 1] != b"P":
            raise SystemExit("kcat framing lost at byte %d: %r" % (i, out[i:i + 40]))
        p, i = upto(b" O", i + 1)
        o, i = upto(b" K", i)
        klen, i = upto(b":", i)
        klen = int(klen)
        key = None
        if klen >= 0:
            key = out[i:i + klen]
            i += klen
        if out[i:i + 1] != b"S":
            raise SystemExit("kcat framing lost at byte %d" % i)
        slen, i = upto(b":", i + 1)
        slen = int(slen)
        payload = b""
        if slen > 0:
            payload = out[i:i + slen]
            i += slen
        recs.append((int(p), int(o), key, payload))
    return recs


def show(line):
    return line.decode("utf-8", "replace")[:60]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--written", type=int, required=True)
    ap.add_argument("--mode", choices=["create", "copytruncate"], required=True)
    ap.add_argument("--brokers")
    ap.add_argument("--topic")
    ap.add_argument("--kcat", default="kcat")
    ap.add_argument("--zstd", default="zstd")
    ap.add_argument("--checkpoint-dir")
    ap.add_argument("--files-only", action="store_true")
    args = ap.parse_args()
    written = args.written

    # ---- the files
    files = read_files(args.dir, args.prefix, args.zstd)
    where = {}  # line -> (file name, offset)
    file_garbage = file_duplicates = 0
    garbage_ex, files_info, fragments = [], [], {}
    fragment_bytes = {}
    seqs_in_files = bytearray(written)
    for name, kind, data in files:
        pos = 0
        n_lines = 0
        while True:
            j = data.find(b"\n", pos)
            if j < 0:
                break
            line = data[pos:j]
            n_lines += 1
            if line in where:
                file_duplicates += 1
            else:
                where[line] = (name, pos)
            n = seq_of(line, written)
            if n is None:
                file_garbage += 1
                if len(garbage_ex) < EXAMPLES:
                    garbage_ex.append("%s@%d: %s" % (name, pos, show(line)))
            else:
                seqs_in_files[n] = 1
            pos = j + 1
        if pos < len(data):
            fragments[name] = len(data) - pos
            # logferry ships the unterminated end of a file that left its
            # name once it is idle (copytruncate can copy half a line):
            # such a record is this fragment, not something unexpected.
            fragment_bytes[data[pos:]] = (name, pos)
        files_info.append({"name": name, "kind": kind, "bytes": len(data),
                           "lines": n_lines})
    file_lines = sum(f["lines"] for f in files_info)
    missing_from_files = written - sum(seqs_in_files)
    result = {
        "mode": args.mode,
        "written": written,
        "files": files_info,
        "file_lines": file_lines,
        "fragments": fragments,
        "file_garbage": file_garbage,
        "file_duplicates": file_duplicates,
        "missing_from_files": missing_from_files,
        "examples": {"file_garbage": garbage_ex},
    }
    if args.mode == "copytruncate":
        result["dropped_by_logrotate"] = missing_from_files
    if args.files_only:
        print(json.dumps(result, sort_keys=True))
        return
    if not (args.brokers and args.topic):
        ap.error("--brokers and --topic are needed unless --files-only")

    # ---- the topic
    recs = read_topic(args.kcat, args.brokers, args.topic)
    in_topic = collections.Counter()
    unexpected = bad_keys = shipped_not_in_files = bad_offsets = 0
    fragments_shipped = 0
    unexpected_ex, bad_key_ex, bad_off_ex = [], [], []
    # generation -> Counter(file name) of records whose line sits at its
    # offset in that file
    gen_files = collections.defaultdict(collections.Counter)
    gen_ex = collections.defaultdict(dict)  # generation -> file -> offset
    gen_paths = collections.defaultdict(set)
    for (p, o, key, value) in recs:
        try:
            src = decode_key(key)
        except ValueError as e:
            src = None
            bad_keys += 1
            if len(bad_key_ex) < EXAMPLES:
                bad_key_ex.append("p%d o%d: %s" % (p, o, e))
        # A record may hold several lines (pack_bytes): split at newlines
        # (no line holds one), each at the offset after the one before.
        # No flag in the key is trusted for this.
        offset = src["offset"] if src else None
        for payload in value.split(b"\n"):
            line_offset = offset
            if offset is not None:
                offset += len(payload) + 1
            in_topic[payload] += 1
            at = where.get(payload)
            if at is None and payload in fragment_bytes:
                fragments_shipped += 1
                at = fragment_bytes[payload]
            elif at is None:
                if seq_of(payload, written) is None:
                    unexpected += 1
                    if len(unexpected_ex) < EXAMPLES:
                        unexpected_ex.append("p%d o%d: %r" % (p, o, payload[:80]))
                else:
                    shipped_not_in_files += 1
            if src is None or at is None:
                continue
            g = src["generation"]
            gen_paths[g].add(src["path"])
            if line_offset != at[1]:
                bad_offsets += 1
                if len(bad_off_ex) < EXAMPLES:
                    bad_off_ex.append(
                        "gen %d %s: record offset %d, line is at %s@%d (%s)" % (
                            g, src["path"], line_offset, at[0], at[1],
                            show(payload)))
                continue
            gen_files[g][at[0]] += 1
            gen_ex[g].setdefault(at[0], at[1])
    split_generations = {}
    for g, per_file in gen_files.items():
        if len(per_file) > 1:
            keep, _ = per_file.most_common(1)[0]
            stray = sum(n for f, n in per_file.items() if f != keep)
            bad_offsets += stray
            split_generations[str(g)] = dict(per_file)
            if len(bad_off_ex) < EXAMPLES:
                ex = ["%s@%d" % (f, off) for f, off in gen_ex[g].items()
                      if f != keep][:2]
                bad_off_ex.append("gen %d spread over files %s, e.g. %s" % (
                    g, dict(per_file), ex))

    # ---- lost and duplicated lines
    lost = dup = 0
    lost_by_file = {}
    lost_ex = []
    for line, (name, off) in where.items():
        got = in_topic.get(line, 0)
        if got == 0:
            if seq_of(line, written) is None:
                continue  # garbage, counted above
            lost += 1
            d = lost_by_file.setdefault(name, {
                "lines": 0, "first_offset": off, "last_offset": off,
                "first_seq": None, "last_seq": None})
            d["lines"] += 1
            d["first_offset"] = min(d["first_offset"], off)
            d["last_offset"] = max(d["last_offset"], off)
            n = int(line[4:13])
            d["first_seq"] = n if d["first_seq"] is None else min(d["first_seq"], n)
            d["last_seq"] = n if d["last_seq"] is None else max(d["last_seq"], n)
            if len(lost_ex) < EXAMPLES:
                lost_ex.append("%s@%d: %s" % (name, off, show(line)))
        elif got > 1:
            dup += got - 1
    # Lost lines as runs of consecutive sequence numbers (where they were).
    runs = []
    lost_seqs = sorted(int(line[4:13]) for line, _ in where.items()
                       if in_topic.get(line, 0) == 0
                       and seq_of(line, written) is not None)
    for n in lost_seqs:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    lost_runs = []
    for a, b in runs[:20]:
        name, off = where[writer_line(a)]
        lost_runs.append({"seqs": "%d-%d" % (a, b), "lines": b - a + 1,
                          "file": name, "offset": off})
    dup_by_file = collections.Counter()
    for line, n in in_topic.items():
        if n > 1 and line in where:
            dup_by_file[where[line][0]] += n - 1

    losses = []
    if args.checkpoint_dir:
        p = os.path.join(args.checkpoint_dir, "losses.jsonl")
        if os.path.exists(p):
            with open(p, "r", encoding="utf-8", errors="replace") as f:
                for l in f:
                    l = l.strip()
                    if l:
                        try:
                            losses.append(json.loads(l))
                        except ValueError:
                            losses.append({"unparsed": l})

    lines_per_file = {f["name"]: f["lines"] for f in files_info}
    for name, d in lost_by_file.items():
        d["file_lines"] = lines_per_file[name]
        d["whole_file"] = d["lines"] == lines_per_file[name]

    result.update({
        "topic_records": len(recs),
        "lost": lost,
        "duplicated": dup,
        "unexpected": unexpected,
        "fragments_shipped": fragments_shipped,
        "bad_offsets": bad_offsets,
        "bad_keys": bad_keys,
        "shipped_not_in_files": shipped_not_in_files,
        "generations": len(gen_files),
        "generation_paths": {str(g): sorted(p) for g, p in
                             sorted(gen_paths.items())[:40]},
        "split_generations": split_generations,
        "lost_by_file": lost_by_file,
        "lost_runs": lost_runs,
        "duplicated_by_file": dict(dup_by_file),
        "reported_losses": losses,
    })
    result["examples"].update({
        "lost": lost_ex, "unexpected": unexpected_ex,
        "bad_offsets": bad_off_ex, "bad_keys": bad_key_ex})
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
