#!/usr/bin/env bash
# Item search latency: `docbuild serve`'s `/-/search?q=` over the newest docs of every
# crate it holds (50 crates.io crates by default, built by one worker with docs.rs's
# flags, rustdoc JSON included; those whose docs fail on today's nightly are left
# out), measured with wrk (8 connections) for a few queries after one request has
# read every build's JSON. Goal: p99 under 50 ms.
#
# Usage: bash bench/search.sh   (CRATES="a@1 b@2 …" to choose, DURATION=10s)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_install wrk curl
duration=${DURATION:-10s}
default_crates="itoa@1.0.15 ryu@1.0.20 memchr@2.7.4 cfg-if@1.0.0 lazy_static@1.5.0 once_cell@1.21.3
bitflags@2.9.1 either@1.15.0 scopeguard@1.2.0 hex@0.4.3 base64@0.22.1 fnv@1.0.7 smallvec@1.15.1
arrayvec@0.7.6 bytes@1.10.1 byteorder@1.5.0 log@0.4.27 semver@1.0.26 strsim@0.11.1
unicode-ident@1.0.18 unicode-width@0.2.1 unicode-segmentation@1.12.0 heck@0.5.0 glob@0.3.2
tinyvec@1.9.0 static_assertions@1.1.0 humantime@2.2.0 percent-encoding@2.3.1 equivalent@1.0.2
autocfg@1.5.0 version_check@0.9.5 same-file@1.0.6 termcolor@1.4.1 fastrand@2.3.0
pin-project-lite@0.2.16 futures-core@0.3.31 slab@0.4.11 rustc-hash@2.1.1 bytemuck@1.23.1
anyhow@1.0.98 indexmap@2.10.0 foldhash@0.1.5 adler2@2.0.1 crc32fast@1.4.2 itertools@0.14.0
utf8parse@0.2.2 memoffset@0.9.1 crossbeam-utils@0.8.21 subtle@2.6.1 textwrap@0.16.2"
read -r -a crates <<<"$(echo ${CRATES:-$default_crates})"

data="$work/data"
start=$(now)
for krate in "${crates[@]}"; do
    "$docbuild" --data-dir "$data" queue add "$krate" >/dev/null
done
"$docbuild" --data-dir "$data" worker --once >&2
# Crates whose docs no longer build on today's nightly are left out of the count.
built=$("$docbuild" --data-dir "$data" queue list --json | grep -c '"outcome":"success"' || true)
echo "built $built of ${#crates[@]} crates with docs in $(elapsed "$start" "$(now)") s"
[ "$built" -gt 0 ]

port=18090
bench_background "$docbuild" --data-dir "$data" serve --listen "127.0.0.1:$port" 2>"$work/serve.log"
for _ in $(seq 1 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done
first=$(curl -s -o "$work/first.html" -w '%{time_total}' "http://127.0.0.1:$port/-/search?q=new")
items=$(grep -o '<p class="summary">[0-9]*' "$work/first.html" | grep -o '[0-9]*$' || echo 0)
echo "first search (reads every build's JSON): ${first} s; 'new' matches $items items"

printf '%-14s %8s %10s %10s %10s\n' query results req_s p50_ms p99_ms
for query in new Error u8 iter 'hash&kind=struct' zzzz; do
    url="http://127.0.0.1:$port/-/search?q=$query"
    results=$(curl -s "$url" | grep -o '<p class="summary">[0-9]*' | grep -o '[0-9]*$' || echo 0)
    wrk -t2 -c8 -d"$duration" --latency "$url" | awk -v q="$query" -v n="$results" '
        function ms(v) { if (v ~ /us$/) { sub(/us/, "", v); return v / 1000 } if (v ~ /ms$/) { sub(/ms/, "", v); return v } sub(/s/, "", v); return v * 1000 }
        /Requests\/sec/ { rps = $2 }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        END { printf "%-14s %8s %10.0f %10.2f %10.2f\n", q, n, rps, p50, p99 }'
done
