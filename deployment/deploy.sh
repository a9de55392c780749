#!/usr/bin/env bash
# Install or upgrade Dantaro Central into /opt/dantaro-central, idempotently, with rollback.
#
#   deployment/deploy.sh [--prefix DIR] [--dry-run] [--source DIR] [--venv DIR] [--python BIN]
#                        [--health-url URL] [--health-timeout-s N] [--keep N] [--force]
#
# Layout (under --prefix, default /):
#   opt/dantaro-central/releases/<id>/   a copy of the source tree; bin/dantaro runs it; owned by root (when run as
#                                        root), no group/other write, whoever owned the source tree
#   opt/dantaro-central/venvs/<hash>/    one virtualenv per requirements.txt content, shared by releases
#   opt/dantaro-central/current          symlink to the live release (flipped atomically)
#   etc/dantaro/dantaro.env              settings; created from deployment/.env.production only if absent (0600)
#   var/lib/dantaro/                     the data directory (the only path the services may write)
#
# Steps: copy release -> virtualenv -> env file -> migrate -> flip `current` -> restart the worker, reload the API
# -> health check; when the reload or the health check fails, `current` flips back to the previous release, which
# is reloaded (the worker restarted). The API reload is graceful (`dantaro api-reload`: new processes serve before
# the old ones stop, no request lost); without a `dantaro api` supervisor to reload, the API is restarted instead.
# With --prefix other than /, systemd is not touched: a supervisor running with the prefix's data directory is
# reloaded, and the health check starts the new release's API on a free local port for the duration of the check
# (this is how the test suite runs it).
set -euo pipefail

PREFIX=/
DRY_RUN=0
FORCE=0
SOURCE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV_OVERRIDE=
PYTHON_BIN=${PYTHON:-python3}
HEALTH_URL=
HEALTH_TIMEOUT_S=60
KEEP=5
SERVICE_USER=dantaro

die() { echo "deploy: $*" >&2; exit 2; }
say() { echo "deploy: $*"; }
run() { if [ "$DRY_RUN" = 1 ]; then echo "would run: $*"; else "$@"; fi; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        --force) FORCE=1; shift ;;
        --source) SOURCE=${2:?--source needs a directory}; shift 2 ;;
        --venv) VENV_OVERRIDE=${2:?--venv needs a directory}; shift 2 ;;
        --python) PYTHON_BIN=${2:?--python needs an interpreter}; shift 2 ;;
        --health-url) HEALTH_URL=${2:?--health-url needs a URL}; shift 2 ;;
        --health-timeout-s) HEALTH_TIMEOUT_S=${2:?}; shift 2 ;;
        --keep) KEEP=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

PREFIX=$(mkdir -p "$PREFIX" && cd "$PREFIX" && pwd)
ROOT=${PREFIX%/}/opt/dantaro-central
ETC=${PREFIX%/}/etc/dantaro
DATA=${PREFIX%/}/var/lib/dantaro
ENV_FILE=$ETC/dantaro.env
SYSTEMD=0
[ "$PREFIX" = / ] && SYSTEMD=1

[ -f "$SOURCE/requirements.txt" ] && [ -d "$SOURCE/backend/app" ] || die "$SOURCE is not a Dantaro Central source tree"
[ -f "$SOURCE/deployment/.env.production" ] || die "missing $SOURCE/deployment/.env.production"
command -v "$PYTHON_BIN" >/dev/null || die "python interpreter '$PYTHON_BIN' not found (use --python)"

content_hash() {  # hash of the files a release is made of, so an unchanged source deploys nothing
    (cd "$SOURCE" && find backend deployment docs monitoring migrate.py requirements.txt pyproject.toml \
        -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-12
}

previous_release() { [ -L "$ROOT/current" ] && basename "$(readlink "$ROOT/current")" || true; }

copy_release() {  # $1 = release dir
    run mkdir -p "$1"
    if [ "$DRY_RUN" = 1 ]; then echo "would copy $SOURCE -> $1"; return; fi
    tar -C "$SOURCE" --exclude=.git --exclude=.venv --exclude=var --exclude='__pycache__' --exclude='*.pyc' \
        --exclude=.mypy_cache --exclude=.ruff_cache --exclude=.pytest_cache --exclude=.cache --exclude=.env -cf - . \
        | tar -C "$1" --no-same-owner -xf -
    mkdir -p "$1/bin"
    cat > "$1/bin/dantaro" <<'WRAPPER'
#!/bin/sh
# Runs this release's code with its virtualenv. DANTARO_LAUNCHER, the path this script was started by (through
# `current` in the units), is what `dantaro api --workers N` starts new API processes with: a reload runs the
# release `current` points to by then.
HERE=$(cd "$(dirname "$0")/.." && pwd -P)
DANTARO_LAUNCHER="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
export DANTARO_LAUNCHER
PYTHONPATH="$HERE/backend${PYTHONPATH:+:$PYTHONPATH}" exec "$HERE/.venv/bin/python" -m app.cli "$@"
WRAPPER
    chmod 0755 "$1/bin/dantaro"
    harden "$1"
}

harden() {  # $1 = a release or virtualenv: owned by root (when we are root), writable by its owner only
    [ "$(id -u)" = 0 ] && chown -R root:root "$1"
    chmod -R go-w "$1"
}

ensure_venv() {  # $1 = release dir; links $1/.venv to a virtualenv with the pinned requirements
    local venv
    if [ -n "$VENV_OVERRIDE" ]; then
        venv=$VENV_OVERRIDE
    else
        venv=$ROOT/venvs/$(sha256sum "$SOURCE/requirements.txt" | cut -c1-12)
        if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
            say "creating virtualenv $venv"
            run rm -rf "$venv"
            run "$PYTHON_BIN" -m venv "$venv"
            run "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
                -r "$SOURCE/requirements.txt"  # pip writes the packages' bytecode (no --no-compile)
            run harden "$venv"
            run touch "$venv/.complete" "$venv/.bytecode"
        else
            say "reusing virtualenv $venv"
        fi
        if [ ! -f "$venv/.bytecode" ]; then  # made before deploy.sh compiled (pip --no-compile): compile it once
            say "compiling the bytecode of virtualenv $venv"
            run "$venv/bin/python" -m compileall -q "$venv/lib"
            run harden "$venv"
            run touch "$venv/.bytecode"
        fi
    fi
    run ln -sfn "$venv" "$1/.venv"
    # Bytecode up front: the service user cannot write __pycache__ in the hardened release or virtualenv, so without
    # it every start of every process compiled the whole application again (2.5x the CPU of a start from bytecode).
    run "$1/.venv/bin/python" -m compileall -q "$1/backend/app"
    run harden "$1"
}

ensure_env_file() {
    run mkdir -p "$ETC" "$DATA"
    if [ -f "$ENV_FILE" ]; then
        say "keeping existing $ENV_FILE"
    else
        say "creating $ENV_FILE from deployment/.env.production (edit it, then deploy again)"
        run install -m 0600 "$SOURCE/deployment/.env.production" "$ENV_FILE"
    fi
    if [ "$SYSTEMD" = 1 ]; then
        id -u "$SERVICE_USER" >/dev/null 2>&1 || run useradd --system --home-dir "$DATA" \
            --shell /usr/sbin/nologin "$SERVICE_USER"
        run chown "$SERVICE_USER:$SERVICE_USER" "$DATA"
        run chown "root:$SERVICE_USER" "$ENV_FILE"
        run chmod 0640 "$ENV_FILE"
    fi
}

dantaro() {  # run a dantaro command of release $1 with the deployment's settings
    local release=$1; shift
    DANTARO_ENV_FILE=$ENV_FILE DANTARO_DATA_DIR=${DANTARO_DATA_DIR:-$DATA} run "$release/bin/dantaro" "$@"
}

flip_current() {  # atomically point `current` at release $1
    run ln -sfn "releases/$1" "$ROOT/current.new"
    run mv -T "$ROOT/current.new" "$ROOT/current"
}

restart_services() {  # fails when the API reload failed (the previous API processes still serve)
    if [ "$SYSTEMD" = 1 ]; then
        run install -m 0644 "$ROOT/current/deployment/systemd/"*.service /etc/systemd/system/
        run systemctl daemon-reload
        run systemctl enable dantaro-migrate.service dantaro-api.service dantaro-worker.service
        run systemctl restart dantaro-worker.service
    else
        say "no systemd under --prefix: the worker is not restarted"
    fi
    reload_api
}

reload_api() {  # graceful: `dantaro api-reload` exits 0 reloaded, 1 failed, 3 when no supervisor runs (then restart)
    local status=0
    dantaro "$ROOT/current" api-reload || status=$?
    [ "$status" = 3 ] || return "$status"
    if [ "$SYSTEMD" = 1 ]; then
        run systemctl restart dantaro-api.service
    else
        say "no API supervisor runs with $DATA: nothing to reload"
    fi
}

probe() {  # $1 = URL, $2 = optional pid; succeeds when the URL answers 200 before the timeout or the pid exits
    "$PYTHON_BIN" - "$1" "$HEALTH_TIMEOUT_S" "${2:-0}" <<'PY'
import os, sys, time, urllib.request
url, deadline, pid = sys.argv[1], time.monotonic() + float(sys.argv[2]), int(sys.argv[3])
def alive() -> bool:
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return not open(f"/proc/{pid}/stat").read().split()[2] == "Z"
while time.monotonic() < deadline and alive():
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.3)
sys.exit(1)
PY
}

api_address() {  # host:port of the API as the units start it: DANTARO_API_HOST/PORT of the env file
    local host port
    host=$(sed -n 's/^DANTARO_API_HOST=//p' "$ENV_FILE" | tail -n 1 | tr -d "\"'")
    port=$(sed -n 's/^DANTARO_API_PORT=//p' "$ENV_FILE" | tail -n 1 | tr -d "\"'")
    case "$host" in ""|0.0.0.0) host=127.0.0.1 ;; ::) host='[::1]' ;; esac
    echo "$host:${port:-8000}"
}

free_port() { "$PYTHON_BIN" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

health_check() {  # $1 = release dir
    if [ "$DRY_RUN" = 1 ]; then echo "would check health"; return 0; fi
    if [ "$SYSTEMD" = 1 ]; then
        probe "${HEALTH_URL:-http://$(api_address)/health/ready}"
        return
    fi
    local port pid status=0
    port=$(free_port)
    DANTARO_ENV_FILE=$ENV_FILE DANTARO_DATA_DIR=$DATA "$1/bin/dantaro" api --workers 1 --host 127.0.0.1 --port "$port" \
        >"$DATA/deploy-health.log" 2>&1 &
    pid=$!
    probe "${HEALTH_URL:-http://127.0.0.1:$port/health}" "$pid" || status=1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return $status
}

prune_releases() {
    [ "$DRY_RUN" = 1 ] && return 0
    local live
    live=$(previous_release)
    # newest first; keep $KEEP, never the live one
    ls -1t "$ROOT/releases" | tail -n +"$((KEEP + 1))" | while read -r old; do
        [ "$old" = "$live" ] || run rm -rf "$ROOT/releases/$old"
    done
}

main() {
    local hash release previous
    hash=$(content_hash)
    previous=$(previous_release)
    if [ -n "$previous" ] && [ "${previous##*-}" = "$hash" ] && [ "$FORCE" = 0 ]; then
        say "release $previous is live and the source is unchanged: nothing to do"
        exit 0
    fi
    release=$(date -u +%Y%m%d%H%M%S)-$hash
    say "deploying $release into $ROOT${previous:+ (previous: $previous)}"
    copy_release "$ROOT/releases/$release"
    ensure_venv "$ROOT/releases/$release"
    ensure_env_file
    dantaro "$ROOT/releases/$release" migrate upgrade
    flip_current "$release"
    if restart_services && health_check "$ROOT/releases/$release"; then
        say "release $release is live"
        prune_releases
        exit 0
    fi
    if [ -z "$previous" ]; then
        say "reload or health check failed and there is no previous release to roll back to" >&2
        exit 1
    fi
    say "reload or health check failed: rolling back to $previous" >&2
    flip_current "$previous"
    restart_services || say "the rollback's API reload failed too: see journalctl -u dantaro-api" >&2
    exit 1
}

main
