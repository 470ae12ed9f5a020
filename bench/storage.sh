#!/usr/bin/env bash
# Storage benchmark: what docbuild's blob storage keeps of a build's docs.
#
# 1. One large crate (tokio 1.40.0 by default), built by `docbuild worker --once` in
#    the default image: bytes under `storage/` (blobs, manifest, log) against the raw
#    bytes of the docs tree as built (`docs_size_bytes` of the build's record), for the
#    whole tree and for the HTML alone, and by kind of file. Goal: stored ≤ 15% of raw.
# 2. Five consecutive versions of one crate (semver 1.0.19 to 1.0.23 by default) stored
#    together in one storage, against 5 × the first version stored alone: what
#    content addressing deduplicates, by kind of file.
#
# Part 1 also shows what the same tree would take with other encodings (per file:
# gzip -9, brotli -q 11, zstd -19; and as one solid archive), to tell how far per-file
# gzip is from the goal (ENCODINGS=0 skips it).
#
# Stored bytes are the sizes of the files under `storage/` (what an object store keeps
# and bills); bytes allocated on the local file system (whole blocks) are shown
# beside them.
#
# Usage: bash bench/storage.sh   (LARGE=tokio@1.40.0 SERIES="semver@1.0.19 ... semver@1.0.23")
set -euo pipefail
source "$(dirname "$0")/lib.sh"
encodings=${ENCODINGS:-1}
[ "$encodings" = 1 ] && bench_install brotli zstd
large=${LARGE:-tokio@1.40.0}
read -r -a series <<<"${SERIES:-semver@1.0.19 semver@1.0.20 semver@1.0.21 semver@1.0.22 semver@1.0.23}"
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }

# --- 1. One large crate -------------------------------------------------------
data="$work/large"
start=$(now)
bench_build "$data" "$large"
large_seconds=$(elapsed "$start" "$(now)")
build=$(bench_build_id "$data" "$large")
storage="$data/storage"
raw=$(python3 "$stored_py" record "$data" "$build")
stored=$(bytes_stored "$storage")
allocated=$(bytes_allocated "$storage")
kinds=$(python3 "$stored_py" kinds "$storage" "$build")
read -r html_files html_raw html_blobs html_stored _ <<<"$(awk '/^all html / { print $3, $4, $5, $6 }' <<<"$kinds")"
manifest=$(stat -c %s "$storage/builds/$build/manifest.json.gz")
log=$(stat -c %s "$storage/builds/$build/build.log.gz" 2>/dev/null || echo 0)

echo
echo "== 1. $large: stored against raw (built and stored in ${large_seconds}s, build $build)"
python3 "$stored_py" describe "$data" "$build"
printf '%-34s %14s %14s %10s %8s\n' what raw_bytes stored_bytes stored/raw goal
printf '%-34s %14s %14s %10s %8s\n' "whole tree (files under storage/)" "$raw" "$stored" "$(pct "$stored" "$raw")" "<=15%"
printf '%-34s %14s %14s %10s %8s\n' "HTML only ($html_files files)" "$html_raw" "$html_stored" "$(pct "$html_stored" "$html_raw")" "<=15%"
printf '%-34s %14s %14s %10s\n' "whole tree, allocated on disk" "$raw" "$allocated" "$(pct "$allocated" "$raw")"
echo "stored bytes of the whole tree against the raw HTML alone: $(pct "$stored" "$html_raw")"
echo "of the stored bytes: manifest $manifest, log $log; by kind of file (blobs only):"
echo "$kinds"
if [ "$encodings" = 1 ]; then
    python3 "$stored_py" extract "$storage" "$build" "$work/large-tree"
    echo "the same tree in other encodings (each file kept as it is unless that saves a tenth):"
    python3 "$stored_py" encodings "$work/large-tree"
    rm -rf "$work/large-tree"
fi

# --- 2. Consecutive versions ----------------------------------------------------
data="$work/series"
storage="$data/storage"
start=$(now)
bench_build "$data" "${series[0]}"
first_alone=$(bytes_stored "$storage")
first_allocated=$(bytes_allocated "$storage")
bench_build "$data" "${series[@]:1}"
series_seconds=$(elapsed "$start" "$(now)")
together=$(bytes_stored "$storage")
together_allocated=$(bytes_allocated "$storage")
builds=()
raw_total=0
alone_total=0
for krate in "${series[@]}"; do
    id=$(bench_build_id "$data" "$krate")
    builds+=("$id")
    raw_total=$((raw_total + $(python3 "$stored_py" record "$data" "$id")))
    alone_total=$((alone_total + $(python3 "$stored_py" alone "$storage" "$id")))
done
n=${#series[@]}

echo
echo "== 2. ${series[0]} .. ${series[$((n - 1))]}: $n versions stored together (built and stored in ${series_seconds}s)"
printf '%-46s %14s %14s\n' what bytes vs_together
printf '%-46s %14s %14s\n' "raw docs of the $n versions" "$raw_total" "$(awk -v a="$raw_total" -v b="$together" 'BEGIN { printf "%.2fx", a / b }')"
printf '%-46s %14s %14s\n' "$n x ${series[0]} stored alone" "$((n * first_alone))" "$(awk -v a="$((n * first_alone))" -v b="$together" 'BEGIN { printf "%.2fx", a / b }')"
printf '%-46s %14s %14s\n' "each version stored alone, summed" "$alone_total" "$(awk -v a="$alone_total" -v b="$together" 'BEGIN { printf "%.2fx", a / b }')"
printf '%-46s %14s %14s\n' "stored together (files under storage/)" "$together" "1.00x"
echo "deduplication saves $(pct $((n * first_alone - together)) $((n * first_alone))) against $n x one version alone;" \
    "each version after the first adds $(((together - first_alone) / (n - 1))) bytes on average"
echo "allocated on disk: ${series[0]} alone $first_allocated, together $together_allocated" \
    "($(awk -v a="$((n * first_allocated))" -v b="$together_allocated" 'BEGIN { printf "%.2fx", a / b }') less than $n x alone)"
echo "by kind of file (blobs only; manifests and logs are per build):"
python3 "$stored_py" dedup "$storage" "${builds[@]}"
