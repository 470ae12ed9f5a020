#!/usr/bin/env bash
# rustdoc JSON benchmark: what making the default target's JSON adds to a build.
#
# One large crate (tokio 1.40.0 by default), built by `docbuild worker --once` in the
# default image: the HTML run's duration (the default target's `duration_ms` in the
# build's record, which includes compiling the dependencies) against the JSON run's
# (`json.duration_ms`: the same command with `--output-format json` in the same target
# directory, the dependencies already compiled), the JSON's size raw and as stored
# (gzip), and the whole build's wall time. Goal: the JSON run under 15% of the HTML
# run.
#
# Measured (2026-11-30, tokio 1.40.0, nightly 2026-05-19, 2 cores, debug binary): HTML
# run 43.3 s, JSON run 3.8 s (8.7%); JSON format version 57, 5.4 MiB raw, 0.8 MiB
# stored gzip (14.2%).
#
# Usage: bash bench/json.sh   (LARGE=tokio@1.40.0; DOCBUILD_BIN=path to skip building)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
large=${LARGE:-tokio@1.40.0}

data="$work/json"
start=$(now)
bench_build "$data" "$large"
wall=$(elapsed "$start" "$(now)")
build=$(bench_build_id "$data" "$large")

python3 - "$data" "$build" "$large" "$wall" <<'PY'
import gzip, json, os, sqlite3, sys
data, build, krate, wall = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
db = sqlite3.connect(os.path.join(data, "docbuild.db"))
(record,) = db.execute("SELECT record FROM builds WHERE id = ?", (build,)).fetchone()
record = json.loads(record)
html = record["targets"][0]
js = record.get("json")
if js is None:
    sys.exit(f"{krate}: the build has no rustdoc JSON; see its log")
with open(os.path.join(data, "storage", "builds", str(build), "json.json.gz"), "rb") as f:
    entry = json.loads(gzip.decompress(f.read()))["files"][js["target"] + ".json"]
share = 100 * js["duration_ms"] / html["duration_ms"]
print(f"crate: {krate} ({record.get('toolchain')}), target {js['target']}")
print(f"build wall time (queue to stored): {wall} s")
print(f"HTML run: {html['duration_ms'] / 1000:.1f} s (dependencies compiled in it)")
print(f"JSON run: {js['duration_ms'] / 1000:.1f} s = {share:.1f}% of the HTML run "
      f"(goal < 15%: {'met' if share < 15 else 'NOT met'})")
print(f"JSON: format version {js['format_version']}, {js['size_bytes'] / 2**20:.1f} MiB raw, "
      f"{entry['stored'] / 2**20:.1f} MiB stored ({entry['encoding']}, "
      f"{100 * entry['stored'] / js['size_bytes']:.1f}%)")
PY
