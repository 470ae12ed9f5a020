#!/usr/bin/env bash
# Benchmark: a queue of 20 real crates.io crates that share dependencies, built by
# `docbuild worker` with 1 and with 2 workers, against `cargo doc --no-deps` on each
# crate one after the other, each from a clean target directory.
#
# Downloads are warmed first and not timed; every timed build starts from an empty
# target directory, as docs.rs builds do.
#
# Usage: bash bench/queue.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
crates=(serde@1.0.229 serde_json@1.0.154 itoa@1.0.18 ryu@1.0.23 memchr@2.8.3 bytes@1.12.1
    log@0.4.35 smallvec@1.16.5 anyhow@1.0.104 thiserror@2.0.21 once_cell@1.21.4 bitflags@2.13.2
    semver@1.0.28 base64@0.23.1 fastrand@2.5.0 indexmap@2.14.2 hashbrown@0.17.1 tracing@0.1.44
    url@2.5.8 http@1.5.0)

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
docbuild="$root/target/release/docbuild"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
shared_cache="$work/cache"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# One data directory per run, all sharing one warmed download cache.
run_queue() { # run_queue NAME WORKERS → seconds
    local data="$work/$1" start
    mkdir -p "$data"
    ln -s "$shared_cache" "$data/cache"
    for krate in "${crates[@]}"; do
        "$docbuild" --data-dir "$data" queue add "$krate" >/dev/null
    done
    start=$(now)
    "$docbuild" --data-dir "$data" worker --once --jobs "$2"
    elapsed "$start" "$(now)"
    local ok
    ok=$("$docbuild" --data-dir "$data" queue list --json | grep -c '"outcome":"success"' || true)
    if [ "$ok" -ne "${#crates[@]}" ]; then
        echo "only $ok of ${#crates[@]} builds succeeded in run $1:" >&2
        "$docbuild" --data-dir "$data" queue list >&2
        exit 1
    fi
}

mkdir -p "$shared_cache"
echo "warming downloads (not timed)..." >&2
run_queue warm 2 >/dev/null

one=$(run_queue one-worker 1)
two=$(run_queue two-workers 2)

# Baseline: cargo doc on each crate's published sources, one after the other, each
# from a clean target directory, with the same downloaded dependencies.
registry_src=$(ls -d "$shared_cache"/cargo-home/registry/src/*/ | head -n 1)
start=$(now)
for krate in "${crates[@]}"; do
    name=${krate%@*}
    version=${krate#*@}
    src="$work/plain/$name"
    mkdir -p "$work/plain"
    cp -r "$registry_src/$name-$version" "$src"
    printf '\n[workspace]\n' >>"$src/Cargo.toml"
    (cd "$src" && CARGO_HOME="$shared_cache/cargo-home" CARGO_TARGET_DIR="$work/plain-target-$name" \
        cargo doc --no-deps --offline --quiet >/dev/null 2>&1) || echo "cargo doc failed for $krate" >&2
done
plain=$(elapsed "$start" "$(now)")

n=${#crates[@]}
per_hour() { awk -v n="$n" -v s="$1" 'BEGIN { printf "%.0f", n * 3600 / s }'; }
ratio() { awk -v a="$1" -v b="$plain" 'BEGIN { printf "%.2f", a / b }'; }
printf '%-28s %9s %12s %14s\n' run seconds builds/hour vs_cargo_doc
printf '%-28s %9s %12s %14s\n' "docbuild, 1 worker" "$one" "$(per_hour "$one")" "$(ratio "$one")"
printf '%-28s %9s %12s %14s\n' "docbuild, 2 workers" "$two" "$(per_hour "$two")" "$(ratio "$two")"
printf '%-28s %9s %12s %14s\n' "cargo doc --no-deps, serial" "$plain" "$(per_hour "$plain")" "1.00"
