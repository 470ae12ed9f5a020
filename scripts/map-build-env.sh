#!/usr/bin/env bash
# Maps docs.rs's build environment (Ubuntu package names, one a line) to Debian's
# names on this machine's release: a name Debian can install is kept, a few known
# renames are applied, a `t64` name (Ubuntu's 64-bit time transition) falls back to
# its Debian name, anything else is marked `-`.
# Output: `ubuntu<TAB>debian` lines. Usage: map-build-env.sh LIST > image/docs-rs-packages.tsv
set -euo pipefail
list=${1:?usage: map-build-env.sh PACKAGE-LIST}
release=$(. /etc/os-release && echo "$VERSION_CODENAME")
echo "# docs.rs's build environment (crates-build-env, Ubuntu noble) mapped to Debian $release."
echo "# ubuntu<TAB>debian; '-' where Debian has no such package."
# Installable: a candidate version, not only a name other packages mention.
known() { apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [^(]'; }
declare -A renamed=(
    [libavcodec60]=libavcodec59 [libcares2]=libc-ares2 [libgeos-c1]=libgeos-c1v5
    [libjpeg-turbo8]=libjpeg62-turbo [libjpeg-turbo8-dev]=libjpeg62-turbo-dev
    [libjpeg8-dev]=libjpeg-dev [libldap2]=libldap-2.5-0
    [linux-headers-generic]=linux-headers-amd64
    [openjdk-8-jre-headless]=openjdk-17-jre-headless
)
grep -v '^#' "$list" | grep -v '^$' | while read -r name; do
    if [[ -n ${renamed[$name]:-} ]] && known "${renamed[$name]}"; then
        printf '%s\t%s\n' "$name" "${renamed[$name]}"
    elif known "$name"; then
        printf '%s\t%s\n' "$name" "$name"
    elif [[ $name == *t64* ]] && known "${name/t64/}"; then
        printf '%s\t%s\n' "$name" "${name/t64/}"
    else
        printf '%s\t-\n' "$name"
    fi
done
