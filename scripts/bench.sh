#!/usr/bin/env bash
# Benchmarks serve against nginx, gunicorn and a bare hyper hello world on the same work (the
# tutorial pipeline: configs/tutorial-pipeline.ini, and bench/python/ for gunicorn), and serve's
# embedded Python against granian and gunicorn on the pipeline in Python, over
# loopback only; prints the results as Markdown and writes them to target/bench/results.md
# (raw numbers in target/bench/results.json). BENCHMARKS.md says what is measured and how.
#
#   scripts/bench.sh                               # the full run: about 18 minutes
#   BENCH_DURATION=3 BENCH_RUNS=1 scripts/bench.sh  # a quick one
#
# Settings (environment): BENCH_DURATION (seconds per wrk run, 10), BENCH_RUNS (3),
# BENCH_WARMUP (1), BENCH_CONNECTIONS (50), BENCH_RELOADS (serve, 100), BENCH_NGINX_RELOADS
# (100), BENCH_GUNICORN_RELOADS (20), BENCH_IDLE_CONNS (10000), BENCH_STARTS (7), BENCH_ONLY
# (phases, comma-separated: throughput,close,reload,idle,startup,python).
#
# Installs what is missing: wrk and nginx (Debian packages; the packaged nginx service is never
# used, every nginx here runs from its own config under a temporary prefix), gunicorn, granian
# and PasteDeploy (pinned, in the venv target/bench/venv). Every process it starts is recorded by
# PID and stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

# No __pycache__ in bench/ from the driver or from gunicorn importing bench/python/benchapp.py.
export PYTHONDONTWRITEBYTECODE=1

GUNICORN_VERSION=23.0.0
GRANIAN_VERSION=2.8.7
PASTEDEPLOY_VERSION=3.1.0
VENV=target/bench/venv

log() { printf '[bench.sh] %s\n' "$*" >&2; }

# --- system packages -------------------------------------------------------------------------
need_wrk=no need_nginx=no
command -v wrk >/dev/null || need_wrk=yes
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_nginx=yes
if [ "$need_wrk" = yes ] || [ "$need_nginx" = yes ]; then
    log "installing what is missing: wrk=$need_wrk nginx=$need_nginx"
    had_pidfile=$([ -e /run/nginx.pid ] && echo yes || echo no)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if [ "$need_wrk" = yes ]; then
        apt-get install -y -qq --no-install-recommends wrk
    fi
    if [ "$need_nginx" = yes ]; then
        apt-get install -y -qq --no-install-recommends nginx-light ||
            apt-get install -y -qq --no-install-recommends nginx
    fi
    # The package may have started its own service (init scripts without systemd): that one
    # was started by this install, so stop it; the benchmark never uses it.
    if [ "$had_pidfile" = no ] && [ -s /run/nginx.pid ]; then
        pkg_pid=$(cat /run/nginx.pid)
        if [ "$(cat "/proc/$pkg_pid/comm" 2>/dev/null)" = nginx ]; then
            log "stopping the nginx service the package started (pid $pkg_pid)"
            kill -QUIT "$pkg_pid" || true
        fi
    fi
fi
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
WRK_BIN=$(command -v wrk)
export BENCH_NGINX="$NGINX_BIN" BENCH_WRK="$WRK_BIN"

# --- Python: gunicorn + PasteDeploy, pinned, in a venv ---------------------------------------
if ! "$VENV/bin/python" -c "
import importlib.metadata as m, sys
sys.exit(not (m.version('gunicorn') == '$GUNICORN_VERSION' and m.version('PasteDeploy') == '$PASTEDEPLOY_VERSION'
              and m.version('granian') == '$GRANIAN_VERSION'))
" 2>/dev/null; then
    log "creating $VENV (gunicorn==$GUNICORN_VERSION granian==$GRANIAN_VERSION PasteDeploy==$PASTEDEPLOY_VERSION)"
    rm -rf "$VENV"
    mkdir -p target/bench
    if ! python3 -m venv "$VENV"; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "gunicorn==$GUNICORN_VERSION" "granian==$GRANIAN_VERSION" "PasteDeploy==$PASTEDEPLOY_VERSION"
fi

# --- build -----------------------------------------------------------------------------------
# hello_hyper is examples/hello_hyper.rs, built by its own small package (bench/hello_hyper/):
# the serve package has no hyper dependency to build it as one of its examples.
log "building serve (without and with the python feature) and hello_hyper (release)"
cargo build --release --quiet -p serve --bin serve
# Against the venv's Python (the embedded interpreter must be its minor version).
PYO3_PYTHON="$PWD/$VENV/bin/python" cargo build --release --quiet -p serve --bin serve --features python \
    --target-dir target/bench/python-build
cargo build --release --quiet --locked --manifest-path bench/hello_hyper/Cargo.toml \
    --target-dir target/bench/hello_hyper

# --- limits, temporary directory, cleanup ----------------------------------------------------
# 10,000 idle connections: the client and the servers each need that many descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((${BENCH_IDLE_CONNS:-10000} + 1000)) ]; then
    log "ulimit -n is $(ulimit -n): too low for ${BENCH_IDLE_CONNS:-10000} connections; set BENCH_IDLE_CONNS lower"
    exit 1
fi

BENCH_TMP=$(mktemp -d /tmp/serve-bench.XXXXXX)
export BENCH_TMP
mkdir "$BENCH_TMP/pids"

# PID and start time of a process (field 22 of /proc/PID/stat); empty if gone.
starttime() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo "${20}"
}

# Whether process $1 still runs with start time $2 (not a later process with its PID).
still_runs() {
    [ -n "$2" ] && [ "$(starttime "$1")" = "$2" ]
}

# The PIDs recorded in $BENCH_TMP/pids/ whose processes still run, one a line.
recorded_running() {
    local f pid start
    for f in "$BENCH_TMP"/pids/*; do
        [ -e "$f" ] || continue
        read -r pid start <"$f" || continue
        if still_runs "$pid" "$start"; then echo "$pid"; fi
    done
}

# Stops every process bench.py recorded and has not stopped itself (it writes `PID STARTTIME`
# to $BENCH_TMP/pids/PID while the process runs): TERM to it, then KILL to it and its children.
cleanup() {
    local status=$? pid start k kids=()
    trap - EXIT INT TERM
    # The driver first: on TERM it stops its own servers the normal way (up to a minute).
    if [ -e "$BENCH_TMP/pids/driver" ]; then
        read -r pid start <"$BENCH_TMP/pids/driver" || true
        if still_runs "$pid" "${start:-}"; then
            log "stopping bench/bench.py (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 600); do
                still_runs "$pid" "$start" || break
                sleep 0.1
            done
        fi
    fi
    for pid in $(recorded_running); do
        log "stopping leftover process $pid"
        for k in $(pgrep -P "$pid" || true); do kids+=("$k:$(starttime "$k")"); done
        kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in $(seq 50); do
        [ -z "$(recorded_running)" ] && break
        sleep 0.1
    done
    for pid in $(recorded_running); do
        log "killing $pid"
        kill -KILL "$pid" 2>/dev/null || true
    done
    for k in "${kids[@]}"; do
        pid=${k%%:*} start=${k#*:}
        if still_runs "$pid" "$start"; then
            log "killing leftover child $pid"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$BENCH_TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if pgrep -a systemd-nspawn >/dev/null; then
    log "note: a systemd-nspawn container is running; the numbers will be noisy"
fi

log "running bench/bench.py (server logs in $BENCH_TMP while it runs)"
started=$(date +%s)
# In the background, so that a signal to this script runs the trap at once; the driver is
# recorded like the servers (it stops its own servers when it gets TERM).
python3 bench/bench.py &
driver=$!
echo "$driver $(starttime "$driver")" >"$BENCH_TMP/pids/driver"
wait "$driver"
rm -f "$BENCH_TMP/pids/driver"
log "done in $(($(date +%s) - started))s; results in target/bench/results.md"
