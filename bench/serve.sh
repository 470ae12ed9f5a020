#!/usr/bin/env bash
# Load benchmark: `docbuild serve` answering from its compressed blob storage against
# nginx serving the same files pre-compressed (`gzip_static on`, `.gz` siblings made
# with `gzip -k -9`), at the same URLs, with wrk (64 connections, `Accept-Encoding:
# gzip`): requests per second and p99 latency for an HTML page, rustdoc's search
# index and a static file. Goal: docbuild ≥ 1.5× nginx's requests per second, with a
# p99 no higher than nginx's.
#
# The docs are no longer on disk as a tree: nginx's tree is extracted from the store
# (manifest and blobs, each checked against its hash, bench/stored.py), then every
# file is replaced by what docbuild sends at its URL (pages get docbuild's top bar, a
# build's scripts are remade), so both serve byte-identical content at every URL;
# the benchmarked URLs are checked again, with and without gzip.
#
# With BASELINE_BIN=/path/to/older/docbuild, that binary serves the same data too and
# is measured alternately with this one, ROUNDS times (default 3), so a change of the
# viewer is seen against the code before it in one run.
#
# Usage: bash bench/serve.sh   (CRATE=serde_json@1.0.154 DURATION=10s by default)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_install wrk nginx curl brotli
krate=${CRATE:-serde_json@1.0.154}
duration=${DURATION:-10s}
name=${krate%@*}
version=${krate#*@}

data="$work/data"
bench_build "$data" "$krate"
build=$(bench_build_id "$data" "$krate")
storage="$data/storage"

port_ours=18080
port_nginx=18081
port_base=18082
bench_background "$docbuild" --data-dir "$data" serve --listen "127.0.0.1:$port_ours" 2>"$work/serve.log"
for _ in $(seq 1 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$port_ours/$name/$version/" -L && break
    sleep 0.1
done
baseline=${BASELINE_BIN:-}
rounds=${ROUNDS:-3}
if [ -n "$baseline" ]; then
    bench_background "$baseline" --data-dir "$data" serve --listen "127.0.0.1:$port_base" 2>"$work/serve-baseline.log"
    for _ in $(seq 1 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$port_base/$name/$version/" -L && break
        sleep 0.1
    done
fi

# nginx's tree: the stored docs, then exactly what docbuild sends at each URL.
site="$work/site"
docs="$site/$name/$version"
python3 "$stored_py" extract "$storage" "$build" "$docs"
mirrored=$(python3 "$stored_py" mirror "http://127.0.0.1:$port_ours/$name/$version/" "$docs")
read -r files replaced removed <<<"$mirrored"
# .gz siblings, kept where gzip saves a tenth (docbuild's rule for storing gzip).
find "$docs" -type f -size +0 -print0 | xargs -0 gzip -k -9
find "$docs" -name '*.gz' -print0 | while IFS= read -r -d '' gz; do
    [ "$(stat -c %s "$gz")" -le $(($(stat -c %s "${gz%.gz}") * 9 / 10)) ] || rm "$gz"
done

cat >"$work/nginx.conf" <<CONF
user root;
worker_processes auto;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    tcp_nopush on;
    etag on;
    open_file_cache max=1000;
    gzip_static on;
    server {
        listen 127.0.0.1:$port_nginx;
        root $site;
    }
}
CONF
lib=$(basename "$(dirname "$(ls "$docs"/*/index.html | head -n 1)")")
page="/$name/$version/$lib/index.html"
static_file="/$name/$version/static.files/$(ls "$docs/static.files" | grep -m1 '^rustdoc-.*\.css$')"
# rustdoc's search index: the largest of its files (a `search.index/` directory in
# current rustdoc, `search-index*.js` in older ones).
search_file=$(cd "$docs" && find . \( -path './search.index/*' -o -name 'search-index*.js' \) -type f ! -name '*.gz' |
    xargs ls -S | head -n 1 | sed 's#^\./##')
search="/$name/$version/$search_file"

bench_background nginx -c "$work/nginx.conf"
for _ in $(seq 1 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$port_nginx$page" && break
    sleep 0.1
done

# The same bytes at the same URL from both: as sent without gzip, and gzip decoded.
same() { # same PATH → size and encodings, or exits
    local path=$1 port enc
    for port in $port_ours $port_nginx; do
        status=$(curl -s -o "$work/plain-$port" -w '%{http_code}' -H 'Accept-Encoding: identity' "http://127.0.0.1:$port$path")
        [ "$status" = 200 ] || { echo "$path answers $status on port $port" >&2; exit 1; }
        enc=$(curl -s -D - -o "$work/gzip-$port" -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port$path" |
            tr -d '\r' | awk -F': ' 'tolower($1) == "content-encoding" { print $2 }')
        [ "$enc" = gzip ] || { echo "$path is sent without gzip by port $port" >&2; exit 1; }
        gunzip -c "$work/gzip-$port" >"$work/gunzip-$port"
        cmp -s "$work/plain-$port" "$work/gunzip-$port" || { echo "$path: gzip and plain differ on port $port" >&2; exit 1; }
    done
    cmp -s "$work/plain-$port_ours" "$work/plain-$port_nginx" ||
        { echo "$path: docbuild and nginx send different content" >&2; exit 1; }
    echo "$(stat -c %s "$work/plain-$port_ours") $(stat -c %s "$work/gzip-$port_ours") $(stat -c %s "$work/gzip-$port_nginx")"
}

measure() { # measure PORT PATH → "rps p99_ms"
    wrk -t2 -c64 -d"$duration" --latency -H 'Accept-Encoding: gzip' "http://127.0.0.1:$1$2" | awk '
        /Requests\/sec/ { rps = $2 }
        /Non-2xx/ { bad = 1 }
        /^ +99%/ { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v = v / 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v = v * 1000 }; p99 = v }
        END { if (bad) exit 1; printf "%.0f %.2f", rps, p99 }'
}

echo "$krate (build $build): $files files, $replaced sent by docbuild otherwise than stored" \
    "(top bar, remade scripts), $removed not served at their path; wrk -t2 -c64 -d$duration, gzip"
printf '%-8s %9s %9s %9s %12s %10s %12s %10s %8s %8s\n' file raw_B gz_ours gz_nginx \
    docbuild_rps p99_ms nginx_rps p99_ms rps_x p99_ok
for label in html search static; do
    case $label in html) path=$page ;; search) path=$search ;; static) path=$static_file ;; esac
    sizes=$(same "$path")
    ours=$(measure $port_ours "$path")
    theirs=$(measure $port_nginx "$path")
    read -r raw gz_ours gz_nginx <<<"$sizes"
    read -r ours ours_p99 <<<"$ours"
    read -r theirs theirs_p99 <<<"$theirs"
    printf '%-8s %9s %9s %9s %12s %10s %12s %10s %8.2f %8s\n' "$label" "$raw" "$gz_ours" "$gz_nginx" \
        "$ours" "$ours_p99" "$theirs" "$theirs_p99" \
        "$(awk -v a="$ours" -v b="$theirs" 'BEGIN { print a / b }')" \
        "$(awk -v a="$ours_p99" -v b="$theirs_p99" 'BEGIN { print (a <= b) ? "yes" : "no" }')"
done
echo "paths: $page $search $static_file"

if [ -n "$baseline" ]; then
    echo
    echo "this build against BASELINE_BIN=$baseline, alternating, $rounds rounds (req/s, p99 ms)"
    printf '%-8s %6s %12s %10s %12s %10s\n' file round this_rps p99_ms base_rps p99_ms
    for label in html search static; do
        case $label in html) path=$page ;; search) path=$search ;; static) path=$static_file ;; esac
        for round in $(seq 1 "$rounds"); do
            read -r ours ours_p99 <<<"$(measure $port_ours "$path")"
            read -r base base_p99 <<<"$(measure $port_base "$path")"
            printf '%-8s %6s %12s %10s %12s %10s\n' "$label" "$round" "$ours" "$ours_p99" "$base" "$base_p99"
        done
    done
fi
