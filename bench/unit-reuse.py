#!/usr/bin/env python3
"""How much of a queue's dependency compilation could be reused unit by unit.

For each crate of the queue, in order: its published sources, the lockfile it ships
(else one made now, as docs.rs does), and the unit graph cargo would build to document
it with docs.rs's features (`cargo rustdoc --lib --unit-graph`, which builds nothing).
A unit is named by its package, features, mode, target and platform and by the names
of the units it depends on, so two units of the same name compile the same thing from
the same inputs. Prints, per crate, its dependency units (the crate's own are left
out) and how many an earlier crate of the queue already had: the most any reuse of
compiled dependencies, unit by unit, could save, counted in units rather than time.

Usage: python3 bench/unit-reuse.py NAME@VERSION...   (needs the nightly toolchain)
"""
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import urllib.request

TARGET = "x86_64-unknown-linux-gnu"


def unpack(work, name, version):
    url = f"https://static.crates.io/crates/{name}/{name}-{version}.crate"
    archive = os.path.join(work, f"{name}-{version}.crate")
    with urllib.request.urlopen(url) as response, open(archive, "wb") as out:
        out.write(response.read())
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    return os.path.join(work, f"{name}-{version}")


def unit_graph(source, env):
    with open(os.path.join(source, "Cargo.toml"), "rb") as manifest:
        package = tomllib.load(manifest).get("package", {})
    docs_rs = package.get("metadata", {}).get("docs", {}).get("rs", {})
    command = ["cargo", "+nightly", "rustdoc", "--lib", "-Zunstable-options", "--unit-graph",
               "--target", TARGET, "-Zrustdoc-scrape-examples"]
    if docs_rs.get("all-features"):
        command.append("--all-features")
    if docs_rs.get("features"):
        command += ["--features", ",".join(docs_rs["features"])]
    if docs_rs.get("no-default-features"):
        command.append("--no-default-features")
    if not os.path.exists(os.path.join(source, "Cargo.lock")):
        subprocess.run(["cargo", "+nightly", "generate-lockfile", "--quiet"], cwd=source,
                       env=env, check=True)
    output = subprocess.run(command, cwd=source, env=env, check=True, capture_output=True)
    return json.loads(output.stdout)


def dependency_units(graph):
    """The names of the units of every package but the documented one."""
    units = graph["units"]
    roots = {units[index]["pkg_id"] for index in graph["roots"]}
    names = {}

    def name(index):
        if index not in names:
            unit = units[index]
            key = [unit["pkg_id"], sorted(unit["features"]), unit["mode"],
                   unit["target"]["kind"], unit["target"]["name"], unit["platform"],
                   sorted(name(dep["index"]) for dep in unit["dependencies"])]
            names[index] = hashlib.sha256(json.dumps(key).encode()).hexdigest()
        return names[index]

    return {name(i) for i, unit in enumerate(units) if unit["pkg_id"] not in roots}


def main(queue):
    built, total, reusable = set(), 0, 0
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, CARGO_HOME=os.path.join(work, "cargo-home"))
        for item in queue:
            name, version = item.split("@")
            units = dependency_units(unit_graph(unpack(work, name, version), env))
            before = len(units & built)
            print(f"{item:28} {len(units):4} dependency units, {before:4} built before")
            total, reusable = total + len(units), reusable + before
            built |= units
    print(f"queue: {total} dependency units, {reusable} built before "
          f"({100 * reusable / max(total, 1):.0f}%)")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(sys.argv[1:])
