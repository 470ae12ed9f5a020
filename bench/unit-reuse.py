#!/usr/bin/env python3
"""How much of a queue's dependency compilation could be reused unit by unit.

For each crate of the queue, in order: its published sources, the lockfile it ships
(else one made now, as docs.rs does), and the unit graph cargo would build to document
it with docs.rs's features (`cargo rustdoc --lib --unit-graph`, which builds nothing).
A unit is named by its package, features, mode, target and platform and by the names
of the units it depends on, so two units of the same name compile the same thing from
the same inputs. Prints, per crate, its dependency units (the crate's own are left
out) and how many an earlier crate of the queue already had: the most any reuse of
compiled dependencies, unit by unit, could save, counted in units.

With --timed, each crate is also documented on the host, one unit at a time (`-j1`)
from a clean target directory, and every unit is weighed by the seconds its compiler
took: the same share counted in CPU time, and the time of the crate's own units (the
part no reuse of dependencies can save).

Usage: python3 bench/unit-reuse.py [--timed] NAME@VERSION...   (needs the nightly toolchain)
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


def rustdoc_command(source):
    """docs.rs's `cargo rustdoc` for the crate at SOURCE, its features included."""
    with open(os.path.join(source, "Cargo.toml"), "rb") as manifest:
        package = tomllib.load(manifest).get("package", {})
    docs_rs = package.get("metadata", {}).get("docs", {}).get("rs", {})
    command = ["cargo", "+nightly", "rustdoc", "--lib", "-Zunstable-options",
               "--target", TARGET, "-Zrustdoc-scrape-examples"]
    if docs_rs.get("all-features"):
        command.append("--all-features")
    if docs_rs.get("features"):
        command += ["--features", ",".join(docs_rs["features"])]
    if docs_rs.get("no-default-features"):
        command.append("--no-default-features")
    return command


def unit_graph(source, env):
    if not os.path.exists(os.path.join(source, "Cargo.lock")):
        subprocess.run(["cargo", "+nightly", "generate-lockfile", "--quiet"], cwd=source,
                       env=env, check=True)
    output = subprocess.run(rustdoc_command(source) + ["--unit-graph"], cwd=source, env=env,
                            check=True, capture_output=True)
    return json.loads(output.stdout)


def unit_seconds(source, env, target_dir):
    """Seconds per unit kind (see `kind`), from a one-job build in a clean target dir,
    read from cargo's timing report."""
    subprocess.run(rustdoc_command(source) + ["-j1", "--timings", "--quiet"], cwd=source,
                   check=True, env=dict(env, CARGO_TARGET_DIR=target_dir))
    with open(os.path.join(target_dir, "cargo-timings", "cargo-timing.html")) as report:
        html = report.read()
    start = html.index("const UNIT_DATA = ") + len("const UNIT_DATA = ")
    seconds = {}
    for unit in json.JSONDecoder().raw_decode(html, start)[0]:
        target = unit["target"]
        category = ("run" if "build-script (run)" in target else
                    "script" if "build-script" in target else
                    "doc" if "(doc)" in target else
                    "check" if "(check)" in target else "build")
        key = (unit["name"], unit["version"], tuple(sorted(unit["features"])), category)
        seconds.setdefault(key, []).append(unit["duration"])
    return seconds


def kind(unit):
    """A unit's (name, version, features, category), as cargo's timing report tells it."""
    name, version = unit["pkg_id"].rsplit("#", 1)[1].rsplit("@", 1)
    category = ("run" if unit["mode"] == "run-custom-build" else
                "script" if unit["target"]["kind"] == ["custom-build"] else
                unit["mode"] if unit["mode"] in ("doc", "check") else "build")
    return (name, version, tuple(sorted(unit["features"])), category)


def dependency_units(graph, seconds=None):
    """The names of the units of every package but the documented one, each with its
    seconds in SECONDS (units cargo cannot tell apart share theirs), and the seconds
    of the documented package's own units."""
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

    key = kind
    alike = {}
    for unit in units:
        alike[key(unit)] = alike.get(key(unit), 0) + 1

    def weight(unit):
        times = (seconds or {}).get(key(unit), [0.0])
        return sum(times) / alike[key(unit)]

    missing = set(seconds or {}) - {key(unit) for unit in units}
    if missing:
        print(f"timed units not in the unit graph: {sorted(missing)}", file=sys.stderr)
    dependencies = {name(i): weight(unit) for i, unit in enumerate(units)
                    if unit["pkg_id"] not in roots}
    own = sum(weight(unit) for unit in units if unit["pkg_id"] in roots)
    return dependencies, own


def main(queue, timed):
    built = set()
    total = reusable = 0
    seconds_total = seconds_reusable = seconds_own = 0.0
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, CARGO_HOME=os.path.join(work, "cargo-home"))
        for index, item in enumerate(queue):
            name, version = item.split("@")
            source = unpack(work, name, version)
            graph = unit_graph(source, env)
            seconds = unit_seconds(source, env, os.path.join(work, f"target-{index}")) \
                if timed else None
            units, own = dependency_units(graph, seconds)
            before = units.keys() & built
            line = f"{item:28} {len(units):4} dependency units, {len(before):4} built before"
            if timed:
                spent, saved = sum(units.values()), sum(units[u] for u in before)
                line += f"; {spent:6.1f} s of dependencies, {saved:6.1f} s built before, " \
                        f"own units {own:5.1f} s"
                seconds_total, seconds_reusable = seconds_total + spent, seconds_reusable + saved
                seconds_own += own
            print(line, flush=True)
            total, reusable = total + len(units), reusable + len(before)
            built |= units.keys()
    print(f"queue: {total} dependency units, {reusable} built before "
          f"({100 * reusable / max(total, 1):.0f}%)")
    if timed:
        print(f"queue, one job at a time: dependencies {seconds_total:.1f} s, "
              f"{seconds_reusable:.1f} s of them built before "
              f"({100 * seconds_reusable / max(seconds_total, 1e-9):.0f}%); "
              f"the crates' own units {seconds_own:.1f} s")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    timed = "--timed" in arguments
    queue = [argument for argument in arguments if argument != "--timed"]
    if not queue:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(queue, timed)
