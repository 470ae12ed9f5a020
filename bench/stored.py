#!/usr/bin/env python3
"""Reads docbuild's stored builds straight from a storage directory, for the benchmarks.

A build's manifest is `builds/<id>/manifest.json.gz`: gzip JSON
`{"files": {"<path>": {"hash", "size", "stored", "encoding"}}}`; a file's blob is
`blobs/<hash[:2]>/<hash>.br` for brotli, `.gz` for gzip, `blobs/<hash[:2]>/<hash>` when
it is stored as it is (store/src/archive.rs, `blob_key`).

    stored.py build DATA_DIR NAME VERSION       id of the release's newest successful build (SQLite)
    stored.py record DATA_DIR BUILD             docs_size_bytes of the build's record (SQLite)
    stored.py describe DATA_DIR BUILD           the build's toolchain, features and doc command
    stored.py kinds STORAGE BUILD               raw and stored bytes by kind of file
    stored.py alone STORAGE BUILD               bytes the build takes in storage on its own
    stored.py dedup STORAGE BUILD...            by kind: stored bytes of each build alone, summed,
                                                against the builds stored together
    stored.py extract STORAGE BUILD OUT         writes the build's docs tree to OUT
    stored.py encodings DIR                     what the tree at DIR would take per file with
                                                gzip -9 (as stored), brotli -q 11 and zstd -19,
                                                and as one solid archive; HTML and all files
    stored.py mirror BASE_URL OUT               replaces each file below OUT by what the server
                                                at BASE_URL/<path> sends (without gzip), removes
                                                those it does not serve; prints files, replaced,
                                                removed
"""
import gzip
import hashlib
import json
import os
import sqlite3
import subprocess
import sys


def manifest(storage, build):
    with open(os.path.join(storage, "builds", str(build), "manifest.json.gz"), "rb") as f:
        return json.loads(gzip.decompress(f.read()))["files"]


def blob_key(entry):
    h = entry["hash"]
    suffix = {"gzip": ".gz", "brotli": ".br"}.get(entry["encoding"], "")
    return f"blobs/{h[:2]}/{h}{suffix}"


def kind(path):
    name = path.rsplit("/", 1)[-1]
    if path.startswith("static.files/") or "/static.files/" in path:
        return "static.files (toolchain)"
    if "search.index/" in path or name.startswith("search-index") or name.startswith("search.desc") \
            or "search.desc/" in path:
        return "search index"
    if path.startswith("src/") and name.endswith(".html"):
        return "html: source pages"
    if name.endswith(".html"):
        return "html: API pages"
    if name.endswith(".js"):
        return "js: sidebar, impls, other"
    return "other"


def file_size(storage, key):
    return os.path.getsize(os.path.join(storage, key))


def cmd_build(data_dir, name, version):
    db = sqlite3.connect(os.path.join(data_dir, "docbuild.db"))
    row = db.execute(
        "SELECT id FROM builds WHERE name = ? AND version = ? AND outcome = 'success' "
        "ORDER BY id DESC LIMIT 1", (name, version)).fetchone()
    if row is None:
        sys.exit(f"no successful build of {name}@{version}")
    print(row[0])


def cmd_record(data_dir, build):
    db = sqlite3.connect(os.path.join(data_dir, "docbuild.db"))
    (record,) = db.execute("SELECT record FROM builds WHERE id = ?", (int(build),)).fetchone()
    print(json.loads(record)["docs_size_bytes"])


def cmd_describe(data_dir, build):
    db = sqlite3.connect(os.path.join(data_dir, "docbuild.db"))
    (record,) = db.execute("SELECT record FROM builds WHERE id = ?", (int(build),)).fetchone()
    record = json.loads(record)
    print(f"toolchain: {record.get('toolchain')}; features: {json.dumps(record.get('features'))}")
    for command in record.get("commands") or []:
        # The cargo command inside the sandbox's `docker run`.
        at = max(command.find("cargo rustdoc"), command.find("cargo doc"))
        if at >= 0:
            print(f"command: {command[at:]}")


def cmd_kinds(storage, build):
    files = manifest(storage, build)
    rows = {}
    seen = set()
    for path, entry in files.items():
        row = rows.setdefault(kind(path), [0, 0, 0, 0])
        row[0] += 1
        row[1] += entry["size"]
        key = blob_key(entry)
        if key not in seen:
            seen.add(key)
            row[2] += 1
            row[3] += file_size(storage, key)
    html = [0, 0, 0, 0]
    total = [0, 0, 0, 0]
    print(f"{'kind':<28} {'files':>7} {'raw_bytes':>12} {'blobs':>7} {'stored_bytes':>12} {'stored/raw':>10}")
    for name, row in sorted(rows.items(), key=lambda kv: -kv[1][1]):
        print(f"{name:<28} {row[0]:>7} {row[1]:>12} {row[2]:>7} {row[3]:>12} {row[3] / max(row[1], 1):>9.1%}")
        for i in range(4):
            total[i] += row[i]
            if name.startswith("html"):
                html[i] += row[i]
    for name, row in (("all html", html), ("whole tree (blobs only)", total)):
        print(f"{name:<28} {row[0]:>7} {row[1]:>12} {row[2]:>7} {row[3]:>12} {row[3] / max(row[1], 1):>9.1%}")


def cmd_alone(storage, build):
    files = manifest(storage, build)
    keys = {blob_key(e) for e in files.values()}
    total = sum(file_size(storage, k) for k in keys)
    build_dir = os.path.join(storage, "builds", str(build))
    total += sum(os.path.getsize(os.path.join(build_dir, f)) for f in os.listdir(build_dir))
    print(total)


def cmd_dedup(storage, *builds):
    alone = {}
    together = {}
    raw = {}
    for build in builds:
        keys = {}
        for path, entry in manifest(storage, build).items():
            raw[kind(path)] = raw.get(kind(path), 0) + entry["size"]
            keys.setdefault(blob_key(entry), kind(path))
        for key, k in keys.items():
            size = file_size(storage, key)
            alone[k] = alone.get(k, 0) + size
            if key not in together.setdefault(k, {}):
                together[k][key] = size
    print(f"{'kind':<28} {'raw_bytes':>12} {'sum_alone':>12} {'together':>12} {'saved':>7}")
    sums = [0, 0, 0]
    for k in sorted(raw, key=lambda k: -alone.get(k, 0)):
        t = sum(together.get(k, {}).values())
        a = alone.get(k, 0)
        sums = [sums[0] + raw[k], sums[1] + a, sums[2] + t]
        saved = f"{1 - t / a:.0%}" if a else "-"
        print(f"{k:<28} {raw[k]:>12} {a:>12} {t:>12} {saved:>6}")
    print(f"{'all blobs':<28} {sums[0]:>12} {sums[1]:>12} {sums[2]:>12} {1 - sums[2] / max(sums[1], 1):>6.0%}")


def cmd_extract(storage, build, out):
    for path, entry in manifest(storage, build).items():
        with open(os.path.join(storage, blob_key(entry)), "rb") as f:
            data = f.read()
        if entry["encoding"] == "gzip":
            data = gzip.decompress(data)
        elif entry["encoding"] == "brotli":
            data = subprocess.run(["brotli", "-d", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["hash"]:
            sys.exit(f"{path}: the blob does not match its manifest entry")
        target = os.path.join(out, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)


def cmd_encodings(root):
    """Each file kept as it is unless the encoding saves a tenth, as the store does."""
    import subprocess
    import zlib

    def gzip9(data):
        # gzip's framing (18 bytes) around raw deflate at level 9, as flate2 writes it.
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return 18 + len(c.compress(data) + c.flush())

    def tool(*command):
        return lambda data: len(subprocess.run(command, input=data, capture_output=True, check=True).stdout)

    encoders = {"gzip -9 (zlib)": gzip9, "brotli -q 11": tool("brotli", "-c", "-q", "11"),
                "zstd -19": tool("zstd", "-19", "-q", "-c")}
    totals = {group: {name: 0 for name in ["raw", *encoders]} for group in ("html", "all")}
    paths = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            paths.append(os.path.relpath(path, root))
            with open(path, "rb") as f:
                data = f.read()
            groups = ("html", "all") if name.endswith(".html") else ("all",)
            sizes = {"raw": len(data)}
            for encoder, size in encoders.items():
                n = size(data) if data else 0
                sizes[encoder] = n if data and n <= len(data) * 9 // 10 else len(data)
            for group in groups:
                for key, n in sizes.items():
                    totals[group][key] += n
    # One solid archive of the whole tree: the most any per-file encoding could hope for.
    paths.sort()
    tar = subprocess.run(["tar", "-C", root, "-cf", "-", "--null", "-T", "-"],
                         input="\0".join(paths).encode(), capture_output=True, check=True).stdout
    solid = {name: tool(*command)(tar) for name, command in
             (("tar | gzip -9", ("gzip", "-9", "-c")), ("tar | zstd -19 --long", ("zstd", "-19", "--long=27", "-q", "-c")))}
    print(f"{'encoding':<30} {'html_bytes':>12} {'html_%raw':>9} {'all_bytes':>12} {'all_%raw':>9}")
    for name in ["raw", *encoders]:
        h, a = totals["html"][name], totals["all"][name]
        print(f"{name + ' per file':<30} {h:>12} {h / totals['html']['raw']:>8.1%} {a:>12} {a / totals['all']['raw']:>8.1%}")
    for name, n in solid.items():
        print(f"{name + ' (solid)':<30} {'-':>12} {'-':>9} {n:>12} {n / totals['all']['raw']:>8.1%}")


def cmd_mirror(base_url, out):
    """docbuild sends pages with its top bar and a build's scripts remade, so the tree as
    stored is not what it serves: make OUT exactly what it serves, URL by URL."""
    import http.client
    import urllib.parse
    url = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    checked = changed = missing = 0
    for directory, _, names in os.walk(out):
        for name in names:
            local = os.path.join(directory, name)
            path = url.path.rstrip("/") + "/" + urllib.parse.quote(os.path.relpath(local, out))
            conn.request("GET", path, headers={"Accept-Encoding": "identity"})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                # Not at that URL on the server (a redirect, say): not on nginx either.
                os.remove(local)
                missing += 1
                continue
            if response.getheader("Content-Encoding"):
                sys.exit(f"{path}: sent as {response.getheader('Content-Encoding')} without gzip asked")
            with open(local, "rb") as f:
                same = f.read() == body
            checked += 1
            if not same:
                changed += 1
                with open(local, "wb") as f:
                    f.write(body)
    print(checked, changed, missing)


if __name__ == "__main__":
    commands = {"build": cmd_build, "dedup": cmd_dedup, "record": cmd_record, "describe": cmd_describe, "mirror": cmd_mirror, "encodings": cmd_encodings, "kinds": cmd_kinds, "alone": cmd_alone, "extract": cmd_extract}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
