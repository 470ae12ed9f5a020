#!/usr/bin/env bash
# Benchmark: `docbuild check --workspace` on a real multi-crate workspace (the tracing
# crates, from their published sources) against checking its members one by one
# (`check -p MEMBER`, each from a clean target directory, as separate runs would).
# Downloads are warmed first and not timed.
#
# Usage: bash bench/workspace.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
docbuild="$root/target/release/docbuild"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DOCBUILD_CACHE_DIR="$work/cache"
# The public API comparison (crates.io, and a build of each published member) is not
# part of what is measured.
export DOCBUILD_NO_API=1
bash "$root/bench/make-tracing-workspace.sh" "$work/tracing"
members=$(cd "$work/tracing" && cargo metadata --no-deps --format-version 1 --quiet |
    python3 -c 'import json,sys; print(" ".join(p["name"] for p in json.load(sys.stdin)["packages"]))')

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
clean_targets() { rm -rf "$DOCBUILD_CACHE_DIR"/workspaces/*/slot-*; }

echo "warming downloads (not timed)..." >&2
"$docbuild" check "$work/tracing" --workspace >/dev/null

clean_targets
start=$(now)
"$docbuild" check "$work/tracing" --workspace >/dev/null
whole=$(elapsed "$start" "$(now)")

clean_targets
start=$(now)
"$docbuild" check "$work/tracing" --workspace --jobs 2 >/dev/null
whole2=$(elapsed "$start" "$(now)")

start=$(now)
for member in $members; do
    clean_targets
    "$docbuild" check "$work/tracing" -p "$member" >/dev/null
done
separate=$(elapsed "$start" "$(now)")

printf '%-36s %8s\n' run seconds
printf '%-36s %8s\n' "check --workspace" "$whole"
printf '%-36s %8s\n' "check --workspace --jobs 2" "$whole2"
printf '%-36s %8s\n' "check -p MEMBER, one by one" "$separate"
