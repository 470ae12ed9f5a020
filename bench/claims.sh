#!/usr/bin/env bash
# Queue benchmark: claims per second with 8 concurrent workers on PostgreSQL and on
# SQLite, side by side, each on a fresh database, asserting that no job is claimed
# twice (store/examples/claims.rs). Each worker claims a job, begins its build and
# finishes it, until the queue is empty; claims/s counts those whole cycles.
#
# Usage: bash bench/claims.sh   (CLAIMS_JOBS=2000 CLAIMS_WORKERS=8 by default;
# DOCBUILD_TEST_POSTGRES names another PostgreSQL whose role may create databases)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export CLAIMS_JOBS=${CLAIMS_JOBS:-2000}
export CLAIMS_WORKERS=${CLAIMS_WORKERS:-8}

# The test PostgreSQL, installed and started by the project's script if it is not
# answering (the script leaves it running, as the tests expect).
if [ -z "${DOCBUILD_TEST_POSTGRES:-}" ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    bash "$root/scripts/services.sh" >&2
fi
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p docbuild-store --example claims
# The example makes its databases and drops them on exit (a SQLite file in a
# temporary directory, a PostgreSQL database dropped WITH (FORCE)).
"$root/target/release/examples/claims"
