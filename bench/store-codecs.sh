#!/usr/bin/env bash
# What the HTML of a documentation tree costs stored one file at a time with other
# codecs than the stored blobs' gzip (bench/store.sh measures that one): whether a goal
# such as "stored HTML ≤ 15% of raw" is reachable, and at what price.
#
#   gzip -9, zopfli     gzip as every client accepts it (zopfli: slow, gzip-compatible)
#   brotli -q 11        `br`: browsers send it over HTTPS only
#   zstd -19            `zstd`: Chrome and Firefox only
#   zstd -19 + dict     a dictionary trained on the tree: no browser decodes it as is
#   whole tree          one tar.gz / tar.zst of all pages (cross-file redundancy; not
#                       servable per page)
#
# Usage: bash bench/store-codecs.sh DOC_TREE  (needs gzip, zopfli, brotli, zstd;
# Debian packages of the same names). ZOPFLI=0 skips zopfli (about 1 MB/s).
set -euo pipefail
tree=${1:?usage: store-codecs.sh DOC_TREE}
jobs=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$tree" && find . -type f -name '*.html' -print0) >"$work/list"
raw=$(cd "$tree" && xargs -0 cat <"$work/list" | wc -c)
files=$(tr -cd '\0' <"$work/list" | wc -c)
echo "$tree: $files HTML files, $raw bytes"

# per_file NAME COMMAND: COMMAND reads a file on stdin and writes it encoded.
per_file() {
    local name=$1 command=$2 start end total
    start=$(date +%s.%N)
    total=$(cd "$tree" && xargs -0 -P "$jobs" -n 50 sh -c 'for f; do '"$command"' <"$f" | wc -c; done' _ <"$work/list" |
        awk '{ s += $1 } END { print s }')
    end=$(date +%s.%N)
    awk -v n="$name" -v t="$total" -v r="$raw" -v a="$start" -v b="$end" \
        'BEGIN { printf "  %-22s %11d bytes  %5.1f%%  %6.1f s\n", n, t, 100 * t / r, b - a }'
}

per_file "gzip -6" "gzip -6 -c"
per_file "gzip -9" "gzip -9 -c"
if [ "${ZOPFLI:-1}" = 1 ]; then
    per_file "zopfli (gzip)" "zopfli -c /dev/stdin"
fi
per_file "brotli -q 11" "brotli -q 11 -c"
per_file "zstd -19" "zstd -q -19 -c"
(cd "$tree" && xargs -0 zstd -q --train --maxdict=112640 -o "$work/dict" <"$work/list") >/dev/null 2>&1
dict=$(wc -c <"$work/dict")
per_file "zstd -19 + dict" "zstd -q -19 -D $work/dict -c"
echo "  (dictionary: $dict bytes, stored once)"

for codec in "gzip -9" "zstd -19 --long=27"; do
    total=$(cd "$tree" && tar --null -T "$work/list" -cf - | $codec -c | wc -c)
    awk -v n="whole tree, ${codec%% *}" -v t="$total" -v r="$raw" \
        'BEGIN { printf "  %-22s %11d bytes  %5.1f%%\n", n, t, 100 * t / r }'
done
