#!/usr/bin/env bash
# docs.rs's build environment made locally: its size and build time, and what it
# changes. Real -sys crates that docs.rs documents are built through the queue in the
# light default image and in the docs.rs environment, timed side by side.
#
# Usage: bash bench/image.sh   (as root, with Docker and Debian's mirror reachable)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
crates=(alsa-sys@0.3.1 libudev-sys@0.1.4 libdbus-sys@0.2.5)

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
docbuild="$root/target/release/docbuild"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

image=$("$docbuild" image show --json | sed 's/.*"image":"\([^"]*\)".*/\1/')
start=$(now)
"$docbuild" image build --json > "$work/image.json"
echo "image $image: $(cat "$work/image.json") (this run: $(elapsed "$start" "$(now)") s)"
size=$(docker image inspect --format '{{.Size}}' "$image")
echo "size: $((size / 1000000)) MB"

run() { # run NAME IMAGE-ARGS… → one line per crate: outcome and seconds
    local data="$work/$1" start
    shift
    mkdir -p "$data"
    for krate in "${crates[@]}"; do
        "$docbuild" --data-dir "$data" queue add "$krate" >/dev/null
    done
    start=$(now)
    "$docbuild" --data-dir "$data" worker --once "$@"
    echo "  total $(elapsed "$start" "$(now)") s"
    "$docbuild" --data-dir "$data" queue list --json |
        sed 's/.*"name":"\([^"]*\)".*"outcome":"\([^"]*\)".*/  \1: \2/'
}

echo "default image:"
run default
echo "docs.rs environment (--image docsrs):"
run docsrs --image docsrs
