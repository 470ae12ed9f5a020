#!/usr/bin/env bash
# Runs every test: the whole workspace (SQLite and the data directory, with the
# store's own tests on PostgreSQL and S3 too), then the HTTP tests again with
# PostgreSQL as the database. Needs what scripts/setup.sh installs and starts.
set -euo pipefail
cd "$(dirname "$0")/.."
# `check` leaves a target directory mounted for the next check of its package
# (DOCBUILD_KEEP_MOUNTED): those of the tests' caches are unmounted once they end.
tests_tmp=$(realpath -m "${CARGO_TARGET_DIR:-target}/tmp")
unmount_kept() {
    awk -v dir="$tests_tmp/" 'index($5, dir) == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | xargs -r -n 1 umount -l || true
}
trap unmount_kept EXIT
cargo test --workspace "$@"
DOCBUILD_TEST_DATABASE=postgres cargo test --test serve --test package_files --test rustdoc_json "$@"
