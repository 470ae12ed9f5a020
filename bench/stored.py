#!/usr/bin/env python3
"""Reads docbuild's stored builds straight from a storage directory, for the benchmarks.

A build's manifest is `builds/<id>/manifest.json.gz`: gzip JSON
`{"files": {"<path>": {"hash", "size", "stored", "encoding"}}}`; a file's blob is
`blobs/<hash[:2]>/<hash>.gz` when its encoding is gzip, `blobs/<hash[:2]>/<hash>` when
it is stored as it is (store/src/archive.rs, `blob_key`).

    stored.py record DATA_DIR BUILD             docs_size_bytes of the build's record (SQLite)
    stored.py kinds STORAGE BUILD               raw and stored bytes by kind of file
    stored.py alone STORAGE BUILD               bytes the build takes in storage on its own
    stored.py extract STORAGE BUILD OUT         writes the build's docs tree to OUT
"""
import gzip
import hashlib
import json
import os
import sqlite3
import sys


def manifest(storage, build):
    with open(os.path.join(storage, "builds", str(build), "manifest.json.gz"), "rb") as f:
        return json.loads(gzip.decompress(f.read()))["files"]


def blob_key(entry):
    h = entry["hash"]
    suffix = ".gz" if entry["encoding"] == "gzip" else ""
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


def cmd_record(data_dir, build):
    db = sqlite3.connect(os.path.join(data_dir, "docbuild.db"))
    (record,) = db.execute("SELECT record FROM builds WHERE id = ?", (int(build),)).fetchone()
    print(json.loads(record)["docs_size_bytes"])


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


def cmd_extract(storage, build, out):
    for path, entry in manifest(storage, build).items():
        with open(os.path.join(storage, blob_key(entry)), "rb") as f:
            data = f.read()
        if entry["encoding"] == "gzip":
            data = gzip.decompress(data)
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["hash"]:
            sys.exit(f"{path}: the blob does not match its manifest entry")
        target = os.path.join(out, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)


if __name__ == "__main__":
    commands = {"record": cmd_record, "kinds": cmd_kinds, "alone": cmd_alone, "extract": cmd_extract}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
