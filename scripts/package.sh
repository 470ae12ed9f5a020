#!/usr/bin/env bash
# Makes docbuild's deployment artifacts, with nothing pulled from an image registry:
#   deb    target/debian/docbuild_VERSION_amd64.deb (cargo-deb, metadata in Cargo.toml)
#   image  the container image docbuild:VERSION: a minimal Debian made with debootstrap
#          (`docbuild image build --list deploy/container-packages.txt`) plus the binary,
#          running `serve --with-worker` against the host's engine through its socket.
#
# Usage: bash scripts/package.sh [deb|image|all] [--binary PATH]
#   --binary PATH  package this docbuild binary instead of building a release one.
# Prints each artifact's name, size and the seconds it took.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
what=${1:-all}
binary=
if [ "${2:-}" = --binary ]; then
    binary=${3:?--binary needs a path}
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

if [ -z "$binary" ]; then
    cargo build --release --quiet
    binary=target/release/docbuild
fi

make_deb() {
    local start; start=$(now)
    if ! command -v cargo-deb >/dev/null 2>&1; then
        cargo install cargo-deb --locked --quiet
    fi
    # Completions and man pages, made by the binary from its own definition.
    rm -rf target/assets && mkdir -p target/assets/man
    "$binary" completions bash > target/assets/docbuild.bash
    "$binary" completions zsh > target/assets/_docbuild
    "$binary" completions fish > target/assets/docbuild.fish
    "$binary" man --out target/assets/man
    gzip -9n target/assets/man/*.1
    local args=(--no-build --output target/debian/)
    case "$binary" in
        target/release/docbuild) ;;
        # A development build (the tests'): its profile, compressed quickly.
        target/debug/docbuild) args+=(--profile dev --no-strip --fast) ;;
        *) echo "package.sh: --binary must be target/release/docbuild or target/debug/docbuild for a deb" >&2; exit 2 ;;
    esac
    local deb
    deb=$(cargo deb "${args[@]}" 2>/dev/null | tail -n 1)
    echo "deb $deb $(stat -c %s "$deb") bytes $(elapsed "$start" "$(now)") s"
}

make_image() {
    local start base; start=$(now)
    base=$("$binary" image build --list deploy/container-packages.txt --json |
        sed 's/.*"image":"\([^"]*\)".*/\1/')
    # The working container, removed however the script ends (a failed commit too).
    container=$(docker create "$base" /usr/bin/docbuild)
    trap 'docker rm -f "${container:-}" >/dev/null 2>&1 || true' EXIT
    docker cp "$binary" "$container:/usr/bin/docbuild" >/dev/null
    docker commit \
        --change 'ENTRYPOINT ["/usr/bin/docbuild"]' \
        --change 'CMD ["serve", "--with-worker", "--listen", "0.0.0.0:3000"]' \
        --change 'ENV DOCBUILD_DATA_DIR=/var/lib/docbuild' \
        --change 'EXPOSE 3000' \
        "$container" "docbuild:$version" >/dev/null
    echo "image docbuild:$version $(docker image inspect --format '{{.Size}}' "docbuild:$version") bytes $(elapsed "$start" "$(now)") s"
}

case "$what" in
    deb) make_deb ;;
    image) make_image ;;
    all) make_deb; make_image ;;
    *) echo "usage: package.sh [deb|image|all] [--binary PATH]" >&2; exit 2 ;;
esac
