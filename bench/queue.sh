#!/usr/bin/env bash
# Benchmark: queues of real crates.io crates built by `docbuild worker --once --jobs 2`,
# with dependency reuse between builds (the build cache) on and off, against the
# baseline: documenting each crate with cargo on the host, one after the other, each
# from a clean target directory, with the very `cargo rustdoc` command docbuild runs
# for it (docs.rs's features, flags and target, the same lockfile; replayed from the
# warm-up's build log, container paths mapped to the host's). A second baseline row
# is plain `cargo doc --no-deps` (default features only: less work than docs.rs does).
#
# Set A: 20 different crates that share dependencies.
# Set B: a registry's stream: 5 crates × 4 consecutive published versions, queued in
#        the order they could be published (round-robin by version).
#
# What is timed: the worker draining the queue (claim, download, build, store,
# settle: everything a job costs), and the baseline's cargo commands. What is not:
# building docbuild, the warm-up, queueing.
#
# Every timed run starts from a fresh data directory (empty database, storage, work
# directories and build cache) sharing only the warmed download cache (cargo home)
# and the toolchain's static files: a warm-up run per set downloads every crate and
# dependency first, untimed. Every build of every docbuild run must succeed.
#
# Usage: bash bench/queue.sh            both sets
#        SETS=A bash bench/queue.sh     one set (A or B)
#        ROUNDS=3 bash bench/queue.sh   the three timed runs taken in turn, three
#                                       times: medians (a shared machine's speed drifts)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sets=${SETS:-A B}
rounds=${ROUNDS:-1}

set_a=(serde@1.0.229 serde_json@1.0.154 itoa@1.0.18 ryu@1.0.23 memchr@2.8.3 bytes@1.12.1
    log@0.4.35 smallvec@1.16.5 anyhow@1.0.104 thiserror@2.0.21 once_cell@1.21.4 bitflags@2.13.2
    semver@1.0.28 base64@0.23.1 fastrand@2.5.0 indexmap@2.14.2 hashbrown@0.17.1 tracing@0.1.44
    url@2.5.8 http@1.5.0)

# Four consecutive published versions of each (yanked ones skipped: tracing 0.1.42,
# async-trait 0.1.90), with build scripts (serde_json, thiserror, proc-macro2) and
# proc macros (thiserror-impl, tracing-attributes, pin-project-internal; async-trait
# is one), dependencies shared between crates and between versions. Each documents
# with docbuild in 5-40 s from a cold target directory.
b_crates=(thiserror serde_json tracing pin-project async-trait)
declare -A b_versions=(
    [thiserror]="2.0.18 2.0.19 2.0.20 2.0.21"
    [serde_json]="1.0.151 1.0.152 1.0.153 1.0.154"
    [tracing]="0.1.40 0.1.41 0.1.43 0.1.44"
    [pin-project]="1.1.10 1.1.11 1.1.12 1.1.13"
    [async-trait]="0.1.88 0.1.89 0.1.91 0.1.92"
)
set_b=()
for round in 0 1 2 3; do
    for name in "${b_crates[@]}"; do
        read -ra versions <<<"${b_versions[$name]}"
        set_b+=("$name@${versions[$round]}")
    done
done

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
docbuild="${CARGO_TARGET_DIR:-$root/target}/release/docbuild"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
shared="$work/shared-cache"
mkdir -p "$shared/cargo-home" "$shared/static-files"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# The machine's busy CPU time so far (all processes: containers, engine, cargo), in
# clock ticks; `cpu_since TICKS` → core-seconds since.
ticks=$(getconf CLK_TCK)
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
cpu_since() { awk -v a="$1" -v b="$(busy)" -v t="$ticks" 'BEGIN { printf "%.0f", (b - a) / t }'; }

# run_queue DIR REUSE CRATE… → "SECONDS CPU" for `worker --once --jobs 2` to drain a
# fresh data directory's queue of CRATE…; REUSE=off switches the build cache off.
run_queue() {
    local data="$work/$1" reuse=$2 start cpu seconds ok
    shift 2
    mkdir -p "$data/cache"
    ln -s "$shared/cargo-home" "$data/cache/cargo-home"
    ln -s "$shared/static-files" "$data/cache/static-files"
    if [ "$reuse" = off ]; then
        printf '[limits]\nbuild-cache = "0"\n' >"$data/docbuild.toml"
    fi
    for krate in "$@"; do
        "$docbuild" --data-dir "$data" queue add "$krate" >/dev/null
    done
    start=$(now)
    cpu=$(busy)
    "$docbuild" --data-dir "$data" worker --once --jobs 2 >"$data/worker.out" 2>&1
    seconds=$(elapsed "$start" "$(now)")
    cpu=$(cpu_since "$cpu")
    ok=$("$docbuild" --data-dir "$data" queue list --json | grep -c '"outcome":"success"' || true)
    if [ "$ok" -ne "$#" ]; then
        echo "only $ok of $# builds succeeded in run $1:" >&2
        "$docbuild" --data-dir "$data" queue list >&2
        exit 1
    fi
    if [ "${KEEP_DATA:-}" = 1 ]; then
        echo "$seconds $cpu"
        return
    fi
    # Its target directories are gigabytes: gone before the next run (untimed).
    rm -rf "$data"
    echo "$seconds $cpu"
}

# keep_replays DATA DIR CRATE…: for each crate, the sources docbuild built (its
# work directory's src/, with the lockfile it used) and its logged HTML and rustdoc
# JSON commands, into DIR/NAME-VERSION/{src,command,command-json}; then DATA goes.
sysroot=$(rustup run nightly rustc --print sysroot 2>/dev/null || rustc --print sysroot)
keep_replays() {
    local data=$1 dir=$2 krate name version work
    shift 2
    mkdir -p "$dir"
    for krate in "$@"; do
        name=${krate%@*}
        version=${krate#*@}
        work="$data/work/crates-io/$name/$version"
        mkdir -p "$dir/$name-$version"
        cp -r "$work/src" "$dir/$name-$version/src"
        # `[docbuild] TARGET: COMMAND`: the HTML run (not the dependencies' or JSON's).
        grep -m1 -E '^\[docbuild\] [^ ]+: /opt/docbuild/toolchain/bin/cargo ' "$work/build.log" |
            sed -e 's/^\[docbuild\] [^ ]*: //' -e "s#/opt/docbuild/toolchain#$sysroot#g" \
                >"$dir/$name-$version/command"
        grep -m1 -E '^\[docbuild\] [^ ]+ \(rustdoc JSON\): /opt/docbuild/toolchain/bin/cargo ' "$work/build.log" |
            sed -e 's/^\[docbuild\] [^:]*: //' -e "s#/opt/docbuild/toolchain#$sysroot#g" \
                >"$dir/$name-$version/command-json"
    done
    rm -rf "$data"
}

# run_replays DIR → "SECONDS CPU" for every kept command, one after the other, each in
# a clean target directory, offline with the same downloaded dependencies; then
# OWN_SECONDS into DIR/own: every crate once more with its dependencies compiled (its
# sources touched), the HTML and the rustdoc JSON command, one after the other. That is
# each crate's own rustdoc work, which no reuse of dependencies can take away.
replay() { # replay CRATE_DIR COMMAND_FILE
    (cd "$1/src" && env PATH="$sysroot/bin:$PATH" DOCS_RS=1 RUSTC_BOOTSTRAP=1 \
        CARGO_HOME="$shared/cargo-home" CARGO_TARGET_DIR="$1/target" \
        bash -c "$(cat "$1/$2")" >>"$1/log" 2>&1) ||
        echo "cargo rustdoc failed for $(basename "$1"): see $1/log" >&2
}
run_replays() {
    local dir=$1 crate start cpu result
    start=$(now)
    cpu=$(busy)
    for crate in "$dir"/*/; do
        replay "$crate" command
    done
    result="$(elapsed "$start" "$(now)") $(cpu_since "$cpu")"
    if [ -f "$dir/own" ]; then
        rm -rf "$dir"/*/target
        echo "$result"
        return
    fi
    for crate in "$dir"/*/; do
        find "$crate/src" -name '*.rs' -exec touch {} +
    done
    start=$(now)
    for crate in "$dir"/*/; do
        replay "$crate" command
        replay "$crate" command-json
    done
    elapsed "$start" "$(now)" >"$dir/own"
    echo "$result"
    rm -rf "$dir"/*/target
}

# run_cargo NAME CRATE… → seconds for `cargo doc --no-deps` on each crate's
# published sources (as the warm-up unpacked them), one after the other, each from a
# clean target directory, offline with the same downloaded dependencies.
run_cargo() {
    local dir="$work/$1" registry_src start cpu krate src
    shift
    registry_src=$(ls -d "$shared"/cargo-home/registry/src/*/ | head -n 1)
    mkdir -p "$dir"
    start=$(now)
    cpu=$(busy)
    for krate in "$@"; do
        src="$dir/${krate/@/-}"
        cp -r "$registry_src/${krate/@/-}" "$src"
        printf '\n[workspace]\n' >>"$src/Cargo.toml"
        (cd "$src" && CARGO_HOME="$shared/cargo-home" CARGO_TARGET_DIR="$src-target" \
            cargo doc --no-deps --offline --quiet >/dev/null 2>&1) || echo "cargo doc failed for $krate" >&2
    done
    echo "$(elapsed "$start" "$(now)") $(cpu_since "$cpu")"
    rm -rf "$dir"
}

# median "SECONDS CPU"… → the pair with the median seconds (the lower of two middles).
median() {
    printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"
}

# bench_set LABEL CRATE…: warm-up (untimed), the three timed runs ($rounds times, in
# turn; medians), their table.
bench_set() {
    local label=$1 on off plain nodeps round ons=() offs=() plains=()
    shift
    echo "set $label: warming downloads (not timed)..." >&2
    KEEP_DATA=1 run_queue "$label-warm" on "$@" >/dev/null
    keep_replays "$work/$label-warm" "$work/$label-replays" "$@"
    for round in $(seq "$rounds"); do
        echo "set $label, round $round of $rounds: docbuild, reuse on..." >&2
        ons+=("$(run_queue "$label-reuse-on" on "$@")")
        echo "set $label, round $round of $rounds: docbuild, reuse off..." >&2
        offs+=("$(run_queue "$label-reuse-off" off "$@")")
        echo "set $label, round $round of $rounds: cargo rustdoc, as docbuild runs it..." >&2
        plains+=("$(run_replays "$work/$label-replays")")
        echo "set $label, round $round: on ${ons[-1]}, off ${offs[-1]}, cargo ${plains[-1]}" >&2
    done
    on=$(median "${ons[@]}")
    off=$(median "${offs[@]}")
    plain=$(median "${plains[@]}")
    echo "set $label: cargo doc --no-deps..." >&2
    nodeps=$(run_cargo "$label-cargo" "$@")
    local n=$#
    row() { # row RUN "SECONDS CPU": builds/hour and speed-up = baseline / run
        awk -v run="$1" -v s="${2% *}" -v cpu="${2#* }" -v n="$n" -v base="${plain% *}" \
            'BEGIN { printf "%-34s %9.1f %8s %12.0f %9.2fx\n", run, s, cpu, n * 3600 / s, base / s }'
    }
    echo
    printf 'Set %s: %d builds (cpu: core-seconds of the whole machine; median of %d rounds)\n' \
        "$label" "$n" "$rounds"
    printf '%-34s %9s %8s %12s %10s\n' run seconds cpu builds/hour speed-up
    row "docbuild --jobs 2, reuse on" "$on"
    row "docbuild --jobs 2, reuse off" "$off"
    row "cargo rustdoc (docbuild's), serial" "$plain"
    row "cargo doc --no-deps, serial" "$nodeps"
    # The most any reuse of dependencies can give: two jobs at a time doing nothing
    # but each crate's own rustdoc runs.
    awk -v own="$(cat "$work/$label-replays/own")" -v base="${plain% *}" 'BEGIN {
        printf "each crate'"'"'s own rustdoc runs (HTML + JSON), dependencies compiled: %.1f s serial;\n", own
        printf "with every dependency reused, --jobs 2 could reach at best %.2fx\n", base / (own / 2) }'
}

for set in $sets; do
    case $set in
    A) bench_set A "${set_a[@]}" ;;
    B) bench_set B "${set_b[@]}" ;;
    *) echo "unknown set $set (A or B)" >&2 && exit 2 ;;
    esac
done
