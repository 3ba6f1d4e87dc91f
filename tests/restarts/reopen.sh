#!/bin/sh
# logrotate's postrotate in `create` mode (tests/restarts/create.conf):
# SIGHUP the writer and wait until it says it reopened its file, so the
# old file is compressed only after the writer left it (otherwise lines
# written to it after the compressor read it are in no file, and the
# counter could not tell logrotate's loss from logferry's).
#   reopen.sh PIDFILE ACKFILE
set -eu
pidfile=$1
ackfile=$2
old=$(cat "$ackfile")
kill -HUP "$(cat "$pidfile")"
i=0
while [ "$(cat "$ackfile")" = "$old" ]; do
    i=$((i + 1))
    if [ "$i" -gt 1000 ]; then
        echo "reopen.sh: the writer did not reopen within 10 s" >&2
        exit 1
    fi
    sleep 0.01
done
