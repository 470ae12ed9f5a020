#!/usr/bin/env bash
# Public API diffs of real crates, built as every build is (in the sandbox, rustdoc
# JSON included) and served by `docbuild serve`: the changes the viewer's diff page
# and `check` report, to set against each crate's changelog, and the time to read two
# versions' JSON and diff them (`api/examples/diff.rs`), for tokio too.
#
# Default pairs: base64 0.20.0 → 0.21.0 (its RELEASE-NOTES.md lists the removals) and
# tokio 1.40.0 → 1.41.0. Usage: bash bench/api-diff.sh   (PAIRS="name@old:new …")
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_install curl
read -r -a pairs <<<"${PAIRS:-base64@0.20.0:0.21.0 tokio@1.40.0:1.41.0}"
cargo build --release --quiet --example diff -p docbuild-api --manifest-path "$bench_root/Cargo.toml"
diff_bin="$bench_root/target/release/examples/diff"

crates=()
for pair in "${pairs[@]}"; do
    name=${pair%@*}
    versions=${pair#*@}
    crates+=("$name@${versions%:*}" "$name@${versions#*:}")
done
data="$work/data"
bench_build "$data" "${crates[@]}"

port=18091
bench_background "$docbuild" --data-dir "$data" serve --listen "127.0.0.1:$port" 2>"$work/serve.log"
for _ in $(seq 1 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done
for pair in "${pairs[@]}"; do
    name=${pair%@*}
    versions=${pair#*@}
    old=${versions%:*}
    new=${versions#*:}
    for version in "$old" "$new"; do
        curl -fs -o "$work/$name-$version.json" "http://127.0.0.1:$port/crate/$name/$version/json"
    done
    echo "== $name $old → $new"
    echo "-- the diff page (/crate/$name/$new/diff/$old):"
    curl -fs "http://127.0.0.1:$port/crate/$name/$new/diff/$old" |
        grep -o 'api-summary"[^>]*>[^<]*' | sed 's/.*>//'
    echo "-- every change, and the time to read both JSON files and diff them:"
    "$diff_bin" "$work/$name-$old.json" "$work/$name-$new.json"
done
