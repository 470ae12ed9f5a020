#!/usr/bin/env bash
# Benchmark: `docbuild check --no-package` against the same `cargo rustdoc` command
# run directly on the host, cold (empty target directory, dependencies downloaded) and
# warm (src/lib.rs touched, dependencies compiled), for a tiny crate and a real crate
# with more than 40 dependencies (axum, whose docs.rs metadata asks for all features).
#
# The direct command is replayed from docbuild's own log, so both run the same cargo
# arguments with the same toolchain and the same downloaded dependencies.
#
# Usage: bash bench/check.sh   (COLD_RUNS=2 WARM_RUNS=5 by default; medians reported;
# REAL_CRATE=axum REAL_VERSION=0.8.9 by default)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cold_runs=${COLD_RUNS:-2}
warm_runs=${WARM_RUNS:-5}
real_crate=${REAL_CRATE:-axum}
real_version=${REAL_VERSION:-0.8.9}

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
docbuild="${CARGO_TARGET_DIR:-$root/target}/release/docbuild"
work=$(mktemp -d)
# A check leaves its target directory mounted for the next one
# (DOCBUILD_KEEP_MOUNTED): unmounted here before the work directory is deleted.
unmount_all() {
    awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r -n 1 umount -l || true
}
trap 'unmount_all; rm -rf "$work"' EXIT
export DOCBUILD_CACHE_DIR="$work/cache"
# The public API comparison asks crates.io and may build the published version: not
# part of what is measured against `cargo rustdoc`.
export DOCBUILD_NO_API=1

# The real crate's published sources, fetched by cargo through a scratch project.
mkdir -p "$work/fetch/src"
printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n%s = "=%s"\n' \
    "$real_crate" "$real_version" >"$work/fetch/Cargo.toml"
touch "$work/fetch/src/lib.rs"
(cd "$work/fetch" && cargo fetch --quiet)
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$real_crate-$real_version" | head -n 1)
cp -r "$src" "$work/$real_crate"
cp -r "$root/tests/fixtures/documented" "$work/tiny"
# Both sides build against the same lockfile.
for crate in tiny "$real_crate"; do
    (cd "$work/$crate" && [ -f Cargo.lock ] || cargo generate-lockfile --quiet)
done

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

run_docbuild() {
    "$docbuild" check "$work/$1" --no-package --json >"$work/last-$1.json"
}
# Where the last check's log is (the check directory is named after the package, not
# the directory it is in); read outside the timed runs.
keep_log_path() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["log"])' "$work/last-$1.json" >"$work/log-$1"
}

# The direct command: docbuild's logged command with the container's paths mapped
# to the host's.
sysroot=$(rustup run nightly rustc --print sysroot 2>/dev/null || rustc --print sysroot)
direct_command() {
    local log
    log=$(cat "$work/log-$1")
    # The build's command line, not another of docbuild's lines ("… fetch skipped").
    grep -m1 '^\[docbuild\] [^ ]*: /opt/docbuild/toolchain/bin/cargo ' "$log" |
        sed -e 's/^\[docbuild\] [^:]*: //' \
        -e "s#/opt/docbuild/toolchain#$sysroot#g"
}
run_direct() {
    (cd "$work/$1" && env PATH="$sysroot/bin:$PATH" DOCS_RS=1 RUSTC_BOOTSTRAP=1 CARGO_HOME="$DOCBUILD_CACHE_DIR/cargo-home" \
        CARGO_TARGET_DIR="$work/direct-target-$1" bash -c "$(direct_command "$1")" >"$work/direct-$1.log" 2>&1)
}

measure() { # measure COMMAND CRATE MODE → seconds
    local start
    if [ "$3" = cold ] && [ "$1" = run_direct ]; then
        rm -rf "$work/direct-target-$2"
    elif [ "$3" = cold ]; then
        # docbuild's target directory is a loop-mounted filesystem image
        # (target.img), unmounted after each check: deleting the image makes the
        # next check start from an empty one.
        local dir
        dir=$(dirname "$(cat "$work/log-$2")")
        if mountpoint -q "$dir/target"; then umount "$dir/target"; fi
        rm -rf "$dir/target" "$dir/target.img" "$dir/target.unmounted"
    else
        touch "$work/$2/src/lib.rs"
    fi
    start=$(now)
    "$1" "$2"
    elapsed "$start" "$(now)"
}

printf '%-8s %5s %-5s %9s %11s %7s %12s\n' crate deps case direct_s docbuild_s ratio overhead_s
for crate in tiny "$real_crate"; do
    run_docbuild "$crate" # downloads dependencies into docbuild's cargo home, makes the image
    if ! grep -q '"outcome":"success"' "$work/last-$crate.json"; then
        echo "docbuild check of $crate did not succeed:" >&2
        cat "$work/last-$crate.json" >&2
        exit 1
    fi
    keep_log_path "$crate"
    run_direct "$crate" || { echo "direct run of $crate failed:" >&2; tail -n 20 "$work/direct-$crate.log" >&2; exit 1; }
    deps=$(cd "$work/$crate" && cargo tree --all-features -e normal,build --prefix none 2>/dev/null | sort -u | wc -l)
    deps=$((deps - 1))
    for mode in cold warm; do
        runs=$cold_runs
        [ "$mode" = warm ] && runs=$warm_runs
        direct=() ours=()
        for _ in $(seq 1 "$runs"); do
            direct+=("$(measure run_direct "$crate" "$mode")")
            ours+=("$(measure run_docbuild "$crate" "$mode")")
        done
        d=$(echo "${direct[*]}" | median)
        o=$(echo "${ours[*]}" | median)
        printf '%-8s %5s %-5s %9.2f %11.2f %7.2f %12.2f\n' "$crate" "$deps" "$mode" "$d" "$o" \
            "$(awk -v a="$o" -v b="$d" 'BEGIN { print a / b }')" "$(awk -v a="$o" -v b="$d" 'BEGIN { print a - b }')"
    done
done
