#!/usr/bin/env bash
# Benchmark: storing a stored build's documentation tree (store/examples/store_bench.rs)
# on tokio 1.40.0's documentation: gzip levels compared, then store_tree into a local
# directory and into the S3 test server (moto, scripts/services.sh), each twice (the
# second store of the same tree uploads nothing).
#
# Trees measured (built once, kept in $WORK):
#   tokio     `cargo doc -p tokio --no-deps` (tokio's own pages, its sources, static.files)
#   docsrs    the same with `--cfg docsrs` (as docs.rs builds it: more items shown)
#   full      `cargo doc` with all of tokio's dependencies (libc's ~14,000 pages)
#
# Usage: bash bench/store.sh [tokio|docsrs|full ...]   (all three by default)
# Environment: WORK=/tmp/docbuild-store-bench, DOCBUILD_TEST_S3=http://127.0.0.1:9000
# ("none" skips S3), LEVELS=1,6,9.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${WORK:-/tmp/docbuild-store-bench}
s3=${DOCBUILD_TEST_S3:-http://127.0.0.1:9000}
levels=${LEVELS:-1,6,9}
trees=("$@")
[ ${#trees[@]} -gt 0 ] || trees=(tokio docsrs full)

# moto checks no signature, but the client wants credentials to sign with.
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-docbuild-bench}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-docbuild-bench}

mkdir -p "$work/probe/src"
if [ ! -f "$work/probe/Cargo.toml" ]; then
    printf '[package]\nname = "probe"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\ntokio = { version = "=1.40.0", features = ["full"] }\n' \
        >"$work/probe/Cargo.toml"
    touch "$work/probe/src/lib.rs"
fi
doc_tree() {
    local name=$1 dir="$work/target-$1"
    if [ ! -d "$dir/doc/tokio" ]; then
        case $name in
        tokio) (cd "$work/probe" && CARGO_TARGET_DIR=$dir nice -n 10 cargo doc --quiet -p tokio --no-deps) ;;
        # --cfg docsrs needs nightly features: the nightly toolchain, else stable told
        # to allow them.
        docsrs) (cd "$work/probe" && if rustup run nightly rustdoc --version >/dev/null 2>&1; then
            RUSTDOCFLAGS="--cfg docsrs" CARGO_TARGET_DIR=$dir nice -n 10 cargo +nightly doc --quiet -p tokio --no-deps
        else
            RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="--cfg docsrs" CARGO_TARGET_DIR=$dir nice -n 10 cargo doc --quiet -p tokio --no-deps
        fi) ;;
        full) (cd "$work/probe" && CARGO_TARGET_DIR=$dir nice -n 10 cargo doc --quiet) ;;
        *) echo "unknown tree $name" >&2; exit 2 ;;
        esac
    fi
    echo "$dir/doc"
}

nice -n 10 cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p docbuild-store --example store_bench
bench="${CARGO_TARGET_DIR:-$root/target}/release/examples/store_bench"
s3_args=()
if [ "$s3" != none ]; then
    curl -s -o /dev/null --max-time 3 "$s3" || { echo "S3 at $s3 cannot be reached: run scripts/services.sh, or DOCBUILD_TEST_S3=none" >&2; exit 1; }
    s3_args=(--s3 "$s3")
fi
for tree in "${trees[@]}"; do
    dir=$(doc_tree "$tree")
    echo "== $tree"
    "$bench" "$dir" --levels "$levels" "${s3_args[@]}"
done
