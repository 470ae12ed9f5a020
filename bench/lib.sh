# Shared by bench/storage.sh and bench/serve.sh (sourced, not run): the release
# binary (or DOCBUILD_BIN), a temporary work directory removed on exit with every process started
# through `bench_background`, and building crates into a data directory of their own.
#
# Each data directory uses the default store: SQLite in the data directory and blob
# storage in its `storage/`, whatever the environment says.

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
unset DOCBUILD_DATABASE_URL DOCBUILD_STORAGE_URL DOCBUILD_DATA_DIR
stored_py="$bench_root/bench/stored.py"

# bench_install TOOL...: Debian's packages of the tools missing.
bench_install() {
    local missing=()
    for tool in "$@"; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# DOCBUILD_BIN benchmarks that binary (an installed docbuild, say) instead of building.
if [ -n "${DOCBUILD_BIN:-}" ]; then
    docbuild=$DOCBUILD_BIN
else
    cargo build --release --quiet --manifest-path "$bench_root/Cargo.toml"
    docbuild="$bench_root/target/release/docbuild"
fi
work=$(mktemp -d)
bench_pids=()
bench_cleanup() {
    for pid in "${bench_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${bench_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# bench_background COMMAND...: runs it in the background, ended on exit.
bench_background() {
    "$@" &
    bench_pids+=($!)
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# bench_build DATA KRATE...: queues each crate and builds them all in that order with
# one worker; prints nothing, fails unless every build succeeded.
bench_build() {
    local data=$1 krate
    shift
    for krate in "$@"; do
        "$docbuild" --data-dir "$data" queue add "$krate" >/dev/null
    done
    "$docbuild" --data-dir "$data" worker --once >&2
    for krate in "$@"; do
        python3 "$stored_py" build "$data" "${krate%@*}" "${krate#*@}" >/dev/null || {
            "$docbuild" --data-dir "$data" queue list >&2
            exit 1
        }
    done
}

# bench_build_id DATA KRATE: the id of the crate's stored build.
bench_build_id() {
    python3 "$stored_py" build "$1" "${2%@*}" "${2#*@}"
}

# Bytes of the files below a directory (what an object store keeps and bills; `du -sb`
# would add 4096 for each of the up to 256 `blobs/xx/` directories), and bytes
# allocated on this file system (whole blocks, directories included).
bytes_stored() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
bytes_allocated() { du -s --block-size=1 "$1" | cut -f1; }
