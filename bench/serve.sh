#!/usr/bin/env bash
# Load benchmark: `docbuild serve` against nginx serving the same files from disk,
# at the same URLs, with wrk (64 connections): requests per second and p99 latency
# for an HTML page, rustdoc's search index and a static file. Also the storage
# figure: bytes stored for the crate's docs against the raw HTML size.
#
# Usage: bash bench/serve.sh   (CRATE=serde_json@1.0.154 DURATION=10s by default)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
krate=${CRATE:-serde_json@1.0.154}
duration=${DURATION:-10s}
name=${krate%@*}
version=${krate#*@}
for tool in wrk nginx; do
    command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
done
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
docbuild="$root/target/release/docbuild"
work=$(mktemp -d)
nginx_pid=""
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
export DOCBUILD_DATA_DIR="$work/data"
"$docbuild" queue add "$krate" >/dev/null
"$docbuild" worker --once
build_dir=$(ls -d "$DOCBUILD_DATA_DIR/crates/crates-io/$name/$version"/*/ | head -n 1)
docs="$build_dir/docs"
lib=$(basename "$(dirname "$(ls "$docs"/*/index.html | head -n 1)")")

# The same URLs from nginx: the build's docs, and the shared static files.
port_ours=18080
port_nginx=18081
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
    server {
        listen 127.0.0.1:$port_nginx;
        location /$name/$version/static.files/ { alias $DOCBUILD_DATA_DIR/static/; }
        location /$name/$version/ { alias $docs/; }
    }
}
CONF
nginx -c "$work/nginx.conf" &
nginx_pid=$!
"$docbuild" serve --listen "127.0.0.1:$port_ours" 2>/dev/null &
server_pid=$!
sleep 1

page="/$name/$version/$lib/index.html"
static_file="/$name/$version/static.files/$(ls "$DOCBUILD_DATA_DIR/static" | grep -m1 '^rustdoc-.*\.css$')"
# rustdoc's search index: the largest of its files (a `search.index/` directory in
# current rustdoc, `search-index*.js` in older ones).
search_file=$(cd "$docs" && find . -path './search.index/*' -type f -o -name 'search-index*.js' -type f |
    xargs ls -S | head -n 1 | sed 's#^\./##')
search="/$name/$version/$search_file"

measure() { # measure PORT PATH → "rps p99_ms"
    wrk -t2 -c64 -d"$duration" --latency "http://127.0.0.1:$1$2" | awk '
        /Requests\/sec/ { rps = $2 }
        /^ +99%/ { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v = v / 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v = v * 1000 }; p99 = v }
        END { printf "%.0f %.2f", rps, p99 }'
}
printf '%-14s %12s %10s %12s %10s %8s\n' file docbuild_rps p99_ms nginx_rps p99_ms ratio
for label in html search static; do
    case $label in html) path=$page ;; search) path=$search ;; static) path=$static_file ;; esac
    for port in $port_ours $port_nginx; do
        status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$path")
        [ "$status" = 200 ] || { echo "$label: $path answers $status on port $port" >&2; exit 1; }
    done
    read -r ours ours_p99 <<<"$(measure $port_ours "$path")"
    read -r theirs theirs_p99 <<<"$(measure $port_nginx "$path")"
    printf '%-14s %12s %10s %12s %10s %8.2f\n' "$label" "$ours" "$ours_p99" "$theirs" "$theirs_p99" \
        "$(awk -v a="$ours" -v b="$theirs" 'BEGIN { print a / b }')"
done

html_bytes=$(find "$docs" -name '*.html' -printf '%s\n' | awk '{ s += $1 } END { print s }')
stored=$(du -sb "$build_dir" | cut -f1)
echo "storage: $stored bytes stored for $krate's build (docs, log, record); raw HTML $html_bytes bytes"
