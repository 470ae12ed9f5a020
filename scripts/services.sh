#!/usr/bin/env bash
# Installs and starts the services docbuild's tests talk to: Debian's PostgreSQL
# and moto's S3 server (from PyPI, as no container registry can be reached).
# Idempotent: whatever is installed is kept, whatever is stopped (after a reboot,
# or because CI ended every process) is started again, and the role, database and
# bucket are made if missing. Called by setup.sh; safe to run on its own.
set -euo pipefail

PG_URL=postgres://docbuild:docbuild@127.0.0.1:5432/docbuild
S3_URL=http://127.0.0.1:9000
BUCKET=docbuild-test
MOTO_VENV=/opt/docbuild-moto
MOTO_LOG=/var/log/docbuild-moto.log
MOTO_PID=/run/docbuild-moto.pid

# Debian's own python3, not whatever python3 comes first in PATH (pyenv and the
# like), so the virtualenv does not depend on a user's interpreter.
PY=/usr/bin/python3

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -x "$MOTO_VENV/bin/moto_server" ] || "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# wait_for SECONDS WHAT COMMAND...: retries COMMAND once a second; fails loudly.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq 1 "$seconds"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    echo "setup: $what did not come up within ${seconds}s" >&2
    return 1
}

# --- PostgreSQL ---------------------------------------------------------------
# The newest installed server version; the package normally makes its "main"
# cluster on port 5432, but make one if it is missing.
pg_ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk -v v="$pg_ver" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
    echo "setup: creating PostgreSQL $pg_ver cluster main" >&2
    pg_createcluster --port 5432 "$pg_ver" main >/dev/null
fi
pg_port=$(pg_lsclusters -h | awk -v v="$pg_ver" '$1 == v && $2 == "main" { print $3 }')
if [ "$pg_port" != 5432 ]; then
    echo "setup: PostgreSQL $pg_ver/main is on port $pg_port, tests expect 5432" >&2
    exit 1
fi
# Without systemd as PID 1, pg_ctlcluster runs the server itself; its default
# listen_addresses ('localhost') includes 127.0.0.1.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "setup: starting PostgreSQL $pg_ver/main" >&2
    pg_ctlcluster "$pg_ver" main start || true   # "already running" is fine; the wait decides
    if ! wait_for 30 "PostgreSQL on 127.0.0.1:5432" pg_isready -q -h 127.0.0.1 -p 5432; then
        tail -n 20 "/var/log/postgresql/postgresql-$pg_ver-main.log" >&2 || true
        exit 1
    fi
fi

as_postgres() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -tA "$@"; }
# The role is (re)set each run so a changed password or lost CREATEDB is
# repaired; tests create and drop a database each, hence CREATEDB.
if [ "$(as_postgres -c "SELECT 1 FROM pg_roles WHERE rolname = 'docbuild'")" != 1 ]; then
    echo "setup: creating PostgreSQL role docbuild" >&2
    as_postgres -c "CREATE ROLE docbuild LOGIN CREATEDB PASSWORD 'docbuild'"
else
    as_postgres -c "ALTER ROLE docbuild LOGIN CREATEDB PASSWORD 'docbuild'"
fi
if [ "$(as_postgres -c "SELECT 1 FROM pg_database WHERE datname = 'docbuild'")" != 1 ]; then
    echo "setup: creating PostgreSQL database docbuild" >&2
    as_postgres -c "CREATE DATABASE docbuild OWNER docbuild"
fi
# Prove the URL the tests use works: password login over TCP.
if ! psql -X -q "$PG_URL" -tAc 'SELECT 1' >/dev/null; then
    echo "setup: cannot log in with $PG_URL" >&2
    exit 1
fi

# --- S3 (moto) ----------------------------------------------------------------
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
    echo "setup: installing moto's S3 server into $MOTO_VENV" >&2
    "$PY" -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install -q 'moto[server]>=5,<6'
fi

# An S3 answer to "list buckets", not just anything listening on the port.
s3_answers() { curl -fs --max-time 2 "$S3_URL/" | grep -q ListAllMyBucketsResult; }
if ! s3_answers; then
    # A moto from an earlier run that is alive but stuck is replaced; the pid is
    # checked to still be moto's, as a stale pid file may name another process.
    old_pid=$(cat "$MOTO_PID" 2>/dev/null || true)
    if [ -n "$old_pid" ] && grep -qs moto_server "/proc/$old_pid/cmdline"; then
        kill "$old_pid" 2>/dev/null || true
        sleep 1
    fi
    echo "setup: starting moto S3 server on 127.0.0.1:9000" >&2
    # setsid + nohup: it outlives this script and its terminal.
    setsid nohup "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p 9000 \
        >>"$MOTO_LOG" 2>&1 </dev/null &
    echo $! >"$MOTO_PID"
    if ! wait_for 30 "moto S3 server on 127.0.0.1:9000" s3_answers; then
        tail -n 20 "$MOTO_LOG" >&2
        exit 1
    fi
fi

# moto keeps everything in memory, so the bucket is gone whenever moto restarted.
if ! curl -fs --max-time 5 -o /dev/null -I "$S3_URL/$BUCKET"; then
    echo "setup: creating S3 bucket $BUCKET" >&2
    curl -fsS --max-time 5 -o /dev/null -X PUT "$S3_URL/$BUCKET"
fi
# Tests sign their requests (moto takes any credentials, but refuses an unsigned
# GET of an object), so prove a signed list, put, get and delete. The explicit
# Content-Type keeps moto from reading the body as a form (it would store 0 bytes).
sig=(--aws-sigv4 aws:amz:us-east-1:s3 --user test:test --max-time 5 -fs)
probe="$S3_URL/$BUCKET/setup-probe"
if ! curl "${sig[@]}" "$S3_URL/$BUCKET" | grep -q ListBucketResult ||
    ! curl "${sig[@]}" -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary ok "$probe" ||
    [ "$(curl "${sig[@]}" "$probe")" != ok ] ||
    ! curl "${sig[@]}" -o /dev/null -X DELETE "$probe"; then
    echo "setup: S3 round trip through bucket $BUCKET at $S3_URL failed" >&2
    exit 1
fi

echo "setup: services up; tests reach them with" >&2
echo "setup:   DOCBUILD_TEST_POSTGRES=$PG_URL" >&2
echo "setup:   DOCBUILD_TEST_S3=$S3_URL (bucket $BUCKET)" >&2
