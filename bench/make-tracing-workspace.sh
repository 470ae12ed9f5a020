#!/usr/bin/env bash
# Assembles a real multi-crate workspace from crates.io sources: the published
# tracing crates, unpacked side by side, with their path dependencies on each other
# restored, as in their repository before publishing.
#
# Usage: bash bench/make-tracing-workspace.sh DIR
set -euo pipefail
dest=$1
members=(tracing@0.1.44 tracing-core@0.1.36 tracing-attributes@0.1.31 tracing-log@0.2.0
    tracing-serde@0.2.0 tracing-subscriber@0.3.23)

# Let cargo download the published versions.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/src"
{
    printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n'
    for member in "${members[@]}"; do
        printf '%s = "=%s"\n' "${member%@*}" "${member#*@}"
    done
} >"$scratch/Cargo.toml"
touch "$scratch/src/lib.rs"
(cd "$scratch" && cargo fetch --quiet)
registry=$(cd "$scratch" && cargo metadata --format-version 1 --quiet |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(next(p["manifest_path"] for p in d["packages"] if p["name"] == "tracing-core").rsplit("/", 2)[0])')

rm -rf "$dest"
mkdir -p "$dest"
names=()
for member in "${members[@]}"; do
    name=${member%@*}
    names+=("$name")
    cp -r "$registry/$name-${member#*@}" "$dest/$name"
    rm -f "$dest/$name/Cargo.toml.orig" "$dest/$name/.cargo_vcs_info.json" "$dest/$name/Cargo.lock"
done
for name in "${names[@]}"; do
    for dep in "${names[@]}"; do
        # [dependencies.X], [dev-dependencies.X], [target.'cfg(…)'.dependencies.X]…
        sed -i -E "s#^\[((target\.[^]]*\.)?(dev-|build-)?dependencies)\.${dep}\]\$#&\npath = \"../${dep}\"#" \
            "$dest/$name/Cargo.toml"
    done
done
{
    printf '[workspace]\nresolver = "2"\nmembers = ['
    printf '"%s", ' "${names[@]}"
    printf ']\n'
} >"$dest/Cargo.toml"
