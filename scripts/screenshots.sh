#!/usr/bin/env bash
# Remakes the viewer's screenshots in docs/screenshots/ (shown in README.md): the
# browser test walks the viewer over its fixture builds and saves what Chromium
# shows. Needs what scripts/setup.sh installs and starts.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/screenshots
DOCBUILD_SCREENSHOTS="$PWD/docs/screenshots" \
    cargo test --test viewer a_reader_finds_a_crate_reads_it_follows_a_dependency
ls -l docs/screenshots/*.png
