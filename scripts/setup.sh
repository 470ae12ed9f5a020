#!/usr/bin/env bash
# Makes a fresh Debian machine ready for docbuild: a running Docker engine,
# debootstrap for build environments and the container image, cargo-deb for the
# Debian package, Debian's Chromium with its WebDriver for the viewer's browser
# test, and (via services.sh) a running PostgreSQL and S3 server for the tests.
# Nothing is pulled: docbuild makes its sandbox images locally.
set -euo pipefail

engine_answers() { docker info >/dev/null 2>&1; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v mkfs.ext4 >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.ext4 ] || missing+=(e2fsprogs)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo-deb >/dev/null 2>&1; then
    echo "setup: installing cargo-deb" >&2
    cargo install cargo-deb --locked --quiet
fi

# Before the Docker engine, whose section exits as soon as the engine answers.
bash "$(dirname "$0")/services.sh"

if engine_answers; then
    exit 0
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
