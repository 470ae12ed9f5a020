#!/usr/bin/env bash
# Runs every test: the whole workspace (SQLite and the data directory, with the
# store's own tests on PostgreSQL and S3 too), then the HTTP tests again with
# PostgreSQL as the database. Needs what scripts/setup.sh installs and starts.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace "$@"
DOCBUILD_TEST_DATABASE=postgres cargo test --test serve --test package_files --test rustdoc_json "$@"
