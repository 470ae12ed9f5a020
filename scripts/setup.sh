#!/usr/bin/env bash
# Makes a fresh Debian machine ready for docbuild: a running Docker engine.
# Nothing is pulled: docbuild makes its sandbox image locally on first use.
set -euo pipefail

engine_answers() { docker info >/dev/null 2>&1; }

if engine_answers; then
    exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
    echo "setup: installing Debian's docker.io" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
echo "setup: starting dockerd" >&2
nohup dockerd >/tmp/docbuild-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
    if engine_answers; then
        exit 0
    fi
    sleep 1
done
echo "setup: dockerd did not start; its log follows" >&2
tail -n 20 /tmp/docbuild-dockerd.log >&2
exit 1
