#!/usr/bin/env bash
# Maps docs.rs's build environment (Ubuntu package names, one a line) to Debian's
# names on this machine's release: a name Debian has is kept, a `t64` name (Ubuntu's
# 64-bit time transition) falls back to its Debian name, anything else is marked `-`.
# Output: `ubuntu<TAB>debian` lines. Usage: map-build-env.sh LIST > image/docs-rs-packages.tsv
set -euo pipefail
list=${1:?usage: map-build-env.sh PACKAGE-LIST}
release=$(. /etc/os-release && echo "$VERSION_CODENAME")
echo "# docs.rs's build environment (crates-build-env, Ubuntu noble) mapped to Debian $release."
echo "# ubuntu<TAB>debian; '-' where Debian has no such package."
known() { apt-cache show --no-all-versions "$1" >/dev/null 2>&1; }
grep -v '^#' "$list" | grep -v '^$' | while read -r name; do
    if known "$name"; then
        printf '%s\t%s\n' "$name" "$name"
    elif [[ $name == *t64* ]] && known "${name/t64/}"; then
        printf '%s\t%s\n' "$name" "${name/t64/}"
    else
        printf '%s\t-\n' "$name"
    fi
done
