#!/usr/bin/env bash
# Level 2 systemd test: boots a real Debian trixie systemd 257 in systemd-nspawn, installs the
# serve binary and the shipped units (scripts/serve.service, serve.socket, serve-notify.service)
# into it, and
# checks with systemctl what the service does (start, reload under load, a broken reload, stop
# with a request in flight, socket activation, the FD store, the watchdog, and the Type=notify
# variant for systemd < 253).
#
#   scripts/systemd/level2.sh [PATH_TO_SERVE_BINARY]     # default target/debug/serve
#
# Needs root and a machine whose PID 1 need not be systemd (the recipe is
# ../../../shared/spec/systemd-testing.md): the container gets a cgroup of its own in both
# hierarchies and runs in a private mount namespace, so no systemd ever runs in the machine's
# own cgroup. Installs systemd-container and debootstrap if missing; the root filesystem is
# built once (about a minute) and cached in /var/tmp/serve-systemd-rootfs-trixie. Each boot
# uses --volatile=overlay, so nothing a run writes (units, the serve user) reaches the cache.
# test#sleep for check 4 comes from examples/fault_eggs (built by `cargo build --examples`
# or `cargo test`), looked up beside the binary in examples/ (or $LEVEL2_FAULT_EGGS).
#
# Environment: LEVEL2_SKIP=socket,fdstore skips checks 5 (socket activation) and 6 (FD store).
# Exit status 0 only if every check that ran passed; one `ok - ...`/`not ok - ...` line each.
# shellcheck disable=SC2317 # functions that wait_for calls look unreachable
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$PWD
HERE=$REPO/scripts/systemd
T_START=$EPOCHREALTIME

SERVE_BIN=$(realpath -e "${1:-target/debug/serve}") || {
    echo "level2: no serve binary at ${1:-target/debug/serve} (cargo build -p serve --bin serve --examples)" >&2
    exit 2
}
FAULT_BIN=${LEVEL2_FAULT_EGGS:-$(dirname "$SERVE_BIN")/examples/fault_eggs}
ROOTFS=/var/tmp/serve-systemd-rootfs-trixie
NAME=serve-level2-$$
CG2=/sys/fs/cgroup/unified/$NAME
CG1=/sys/fs/cgroup/systemd/$NAME
SKIP=",${LEVEL2_SKIP:-},"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
CLIENT=$HERE/client.py
HOST_PID_NS=$(readlink /proc/self/ns/pid)
INSIDE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

STAGE=
BUILD_TMP=
NSPAWN_PID=
LEADER=
FAILED=0
PASSED=0
SKIPPED=0

log() { echo "# $*"; }
die() {
    echo "level2: $*" >&2
    exit 2
}
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || die "must run as root"
if [ ! -d /sys/fs/cgroup/unified ] || [ ! -d /sys/fs/cgroup/systemd ]; then
    die "expected hybrid cgroups (/sys/fs/cgroup/unified and /sys/fs/cgroup/systemd)"
fi
command -v "$PY" >/dev/null || die "python3 is needed on the host (the load client)"

# ---------------------------------------------------------------------------------------------
# Cleanup: always stop the container, end the background clients we started and remove the
# cgroups, also on failure and Ctrl-C.

kill_background() {
    [ -n "$STAGE" ] && [ -f "$STAGE/bg.pids" ] || return 0
    local p
    while read -r p; do
        kill "$p" 2>/dev/null || true
    done <"$STAGE/bg.pids"
    : >"$STAGE/bg.pids"
}

cgroup_pids() {
    local cg
    for cg in "$CG2" "$CG1"; do
        [ -d "$cg" ] && find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null
    done | sort -u
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    ((rc == 130 || rc == 143)) && echo "level2: interrupted; cleaning up" >&2
    kill_background
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        # SIGTERM makes nspawn power the container off cleanly (under a second).
        kill -TERM "$NSPAWN_PID"
        local deadline=$((SECONDS + 20))
        while kill -0 "$NSPAWN_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        if kill -0 "$NSPAWN_PID" 2>/dev/null; then
            echo "level2: nspawn did not stop in 20 s; killing it" >&2
            kill -KILL "$NSPAWN_PID"
        fi
        wait "$NSPAWN_PID" 2>/dev/null
    fi
    # Whatever is left in the container's cgroups is the container's (only it runs there).
    local i pids
    for ((i = 0; i < 50; i++)); do
        pids=$(cgroup_pids)
        [ -z "$pids" ] && break
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null
        sleep 0.1
    done
    local cg
    for cg in "$CG2" "$CG1"; do
        for ((i = 0; i < 50; i++)); do
            [ -d "$cg" ] || break
            find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
            [ -d "$cg" ] && sleep 0.1
        done
        [ -d "$cg" ] && echo "level2: could not remove the cgroup $cg" >&2
    done
    [ -n "$BUILD_TMP" ] && rm -rf --one-file-system "$BUILD_TMP" "$BUILD_TMP.log"
    [ -n "$STAGE" ] && rm -rf --one-file-system "$STAGE"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Host packages and the cached root filesystem.

install_packages() {
    local need=()
    command -v systemd-nspawn >/dev/null || need+=(systemd-container)
    command -v debootstrap >/dev/null || need+=(debootstrap)
    ((${#need[@]})) || return 0
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local apt_log=/var/tmp/serve-level2-apt.log
    if ! apt-get install -y --no-install-recommends "${need[@]}" >"$apt_log" 2>&1; then
        log "apt-get install failed; apt-get update and again"
        if ! { apt-get update && apt-get install -y --no-install-recommends "${need[@]}"; } >>"$apt_log" 2>&1; then
            tail -20 "$apt_log" >&2
            die "apt-get install ${need[*]} failed (log: $apt_log)"
        fi
    fi
}

build_rootfs() {
    [ -x "$ROOTFS/usr/lib/systemd/systemd" ] && return 0
    exec 9>"$ROOTFS.lock"
    flock 9 # another run may be building it
    if [ ! -x "$ROOTFS/usr/lib/systemd/systemd" ]; then
        local t0
        t0=$(now)
        # Leftovers of interrupted builds (never used: the cache is only ever a complete rename).
        find /var/tmp -maxdepth 1 -name "$(basename "$ROOTFS").tmp.*" -exec rm -rf --one-file-system {} +
        BUILD_TMP=$(mktemp -d "$ROOTFS.tmp.XXXXXX")
        log "building the trixie root filesystem in $BUILD_TMP (about a minute)"
        # In a mount namespace of its own: no mount debootstrap makes can outlive it.
        if ! unshare --mount --propagation private -- debootstrap --variant=minbase \
            --include=systemd,systemd-sysv,dbus,procps,python3-minimal \
            trixie "$BUILD_TMP" >"$BUILD_TMP.log" 2>&1; then
            tail -20 "$BUILD_TMP.log" >&2
            die "debootstrap failed"
        fi
        mv -T "$BUILD_TMP" "$ROOTFS"
        rm -f "$BUILD_TMP.log"
        BUILD_TMP=
        log "root filesystem built in $(since "$t0") s"
    fi
    flock -u 9
    exec 9>&-
}

# ---------------------------------------------------------------------------------------------
# Per-run staging: binaries (a copy, so a concurrent cargo build cannot swap them mid-run),
# deployment files and units, bind-mounted into the container.

write_file() { # PATH CONTENT: atomically (readers never see half a file)
    printf '%s' "$2" >"$1.tmp"
    chmod 644 "$1.tmp"
    mv -f "$1.tmp" "$1"
}

deploy_ini() { # HEADER_VALUE [PORT]
    cat <<EOF
[pipeline:main]
pipeline = level2 echo

[filter:level2]
use = egg:serve#headers
set.X-Level2 = $1

[app:echo]
use = egg:serve#echo

[server:main]
use = egg:serve#http
host = 127.0.0.1
port = ${2:-8080}
workers = 2
EOF
}

SLOW_INI='[app:main]
use = egg:test#sleep

[server:main]
use = egg:serve#http
host = 127.0.0.1
port = 8080
workers = 2
'

stage() {
    STAGE=$(mktemp -d /var/tmp/serve-level2.XXXXXX)
    mkdir -p "$STAGE/bin/examples" "$STAGE/conf" "$STAGE/units"
    : >"$STAGE/bg.pids"
    cp "$SERVE_BIN" "$STAGE/bin/serve"
    if [ -x "$FAULT_BIN" ]; then
        cp "$FAULT_BIN" "$STAGE/bin/examples/fault_eggs"
    else
        log "no $FAULT_BIN (cargo build --examples): check 4's slow request will fail"
    fi
    chmod 755 "$STAGE/bin" "$STAGE/bin/examples" "$STAGE/conf" "$STAGE/units"

    write_file "$STAGE/conf/deploy.ini" "$(deploy_ini reload-0)"
    write_file "$STAGE/conf/activated.ini" "$(deploy_ini activated 8081)"
    write_file "$STAGE/conf/slow.ini" "$SLOW_INI"
    "$STAGE/bin/serve" check "$STAGE/conf/deploy.ini" >/dev/null ||
        die "serve check rejects the test's deploy.ini"
    "$STAGE/bin/serve" check "$STAGE/conf/activated.ini" >/dev/null ||
        die "serve check rejects the test's activated.ini"
    if [ -x "$STAGE/bin/examples/fault_eggs" ]; then
        "$STAGE/bin/examples/fault_eggs" check "$STAGE/conf/slow.ini" >/dev/null ||
            die "fault_eggs check rejects the test's slow.ini"
    fi

    # The shipped unit, with only ExecStart pointing at the test's binary and deployment file
    # (2 workers on these 2-core machines). Every hardening line is kept: all of them work in
    # nspawn under systemd 257 (check 1 looks at some of them in /proc).
    local unit=$REPO/scripts/serve.service
    sed -e 's|^ExecStart=/usr/local/bin/serve --workers 4 |ExecStart=/opt/serve/bin/serve --workers 2 |' \
        -e 's|^ExecReload=/usr/local/bin/serve |ExecReload=/opt/serve/bin/serve |' \
        "$unit" >"$STAGE/units/serve.service"
    grep -qx 'ExecStart=/opt/serve/bin/serve --workers 2 --user serve /etc/serve/deploy.ini' \
        "$STAGE/units/serve.service" ||
        die "scripts/serve.service's ExecStart changed; update the sed in $0"
    grep -qx 'ExecReload=/opt/serve/bin/serve reload --no-signal $MAINPID' "$STAGE/units/serve.service" ||
        die "scripts/serve.service's ExecReload changed; update the sed in $0"
    grep -qx 'Type=notify-reload' "$STAGE/units/serve.service" ||
        die "scripts/serve.service is no longer Type=notify-reload; update $0"

    # The variant for systemd < 253 (Type=notify, ExecReload=serve reload), run here too.
    sed -e 's|^ExecStart=/usr/local/bin/serve --workers 4 |ExecStart=/opt/serve/bin/serve --workers 2 |' \
        -e 's|^ExecReload=/usr/local/bin/serve |ExecReload=/opt/serve/bin/serve |' \
        "$REPO/scripts/serve-notify.service" >"$STAGE/units/serve-notify.service"
    grep -qx 'ExecReload=/opt/serve/bin/serve reload $MAINPID' "$STAGE/units/serve-notify.service" ||
        die "scripts/serve-notify.service's ExecReload changed; update the sed in $0"

    # Socket activation: the same unit, activated by serve.socket, serving activated.ini.
    sed -e 's|/etc/serve/deploy.ini|/etc/serve/activated.ini|' \
        -e 's|^Description=.*|Description=serve (socket-activated): %N\nRequires=serve.socket\nAfter=serve.socket|' \
        "$STAGE/units/serve.service" >"$STAGE/units/serve-activated.service"
    # The shipped socket unit, on 127.0.0.1:8081 and activating serve-activated.service.
    sed -e 's|^ListenStream=80$|ListenStream=127.0.0.1:8081|' \
        -e 's|^\[Socket\]$|[Socket]\nService=serve-activated.service|' \
        "$REPO/scripts/serve.socket" >"$STAGE/units/serve.socket"
    if ! grep -qx 'ListenStream=127.0.0.1:8081' "$STAGE/units/serve.socket" ||
        ! grep -qx 'FileDescriptorName=http' "$STAGE/units/serve.socket"; then
        die "scripts/serve.socket changed (ListenStream=80, FileDescriptorName=http); update $0"
    fi
    # Drop-ins the checks install and remove.
    cat >"$STAGE/units/slow.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/opt/serve/bin/examples/fault_eggs --workers 2 --user serve /etc/serve/slow.ini
EOF
    cat >"$STAGE/units/fdstore.conf" <<'EOF'
[Service]
FileDescriptorStoreMax=8
EOF
    cat >"$STAGE/units/nofdstore.conf" <<'EOF'
[Service]
FileDescriptorStoreMax=0
EOF
    # LimitCORE=0: the watchdog's SIGABRT must not write a core of the debug binary.
    cat >"$STAGE/units/watchdog.conf" <<'EOF'
[Service]
WatchdogSec=3
LimitCORE=0
EOF
    chmod 644 "$STAGE"/units/*
}

# ---------------------------------------------------------------------------------------------
# The container.

inside() { # COMMAND...: run in all of the container's namespaces, with a clean environment
    timeout -k 5 "${INSIDE_TIMEOUT:-60}" nsenter -t "$LEADER" -a \
        /usr/bin/env -i PATH="$INSIDE_PATH" LANG=C.UTF-8 SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 "$@"
}
sc() { inside systemctl --no-pager --no-ask-password "$@"; }
prop() { sc show -P "$2" "$1"; } # UNIT PROPERTY
http() { nsenter -t "$LEADER" -n "$PY" "$CLIENT" get "$@"; } # PORT [PATH] [--header NAME]

find_leader() {
    local p children=()
    LEADER=
    read -ra children 2>/dev/null <"/proc/$NSPAWN_PID/task/$NSPAWN_PID/children" || true
    for p in "${children[@]}"; do
        if [ "$(readlink "/proc/$p/ns/pid")" != "$HOST_PID_NS" ]; then
            LEADER=$p
            return 0
        fi
    done
    return 1
}

boot() {
    mkdir -p "$CG2" "$CG1"
    local t0
    t0=$(now)
    (
        echo "$BASHPID" >"$CG2/cgroup.procs"
        echo "$BASHPID" >"$CG1/cgroup.procs"
        export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
        exec unshare --mount --propagation private -- \
            sh -c 'mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && exec "$@"' sh \
            systemd-nspawn --quiet --register=no --keep-unit --private-network --console=pipe \
            --volatile=overlay -D "$ROOTFS" -M "$NAME" \
            --bind-ro="$STAGE/bin:/opt/serve/bin" \
            --bind-ro="$STAGE/units:/opt/serve/units" \
            --bind="$STAGE/conf:/etc/serve" \
            --boot
    ) </dev/null >"$STAGE/nspawn.log" 2>&1 &
    NSPAWN_PID=$!
    # The container's PID 1 is the child of nspawn in a PID namespace of its own (nspawn's
    # short-lived intermediate child is not).
    local deadline=$((SECONDS + 60)) state=''
    until find_leader && state=$(INSIDE_TIMEOUT=5 sc is-system-running 2>/dev/null) &&
        [[ $state == running || $state == degraded ]]; do
        if ! kill -0 "$NSPAWN_PID" 2>/dev/null || ((SECONDS > deadline)); then
            tail -30 "$STAGE/nspawn.log" >&2
            die "the container's systemd did not reach running (leader: ${LEADER:-none}, state: ${state:-none})"
        fi
        sleep 0.1
    done
    log "container $NAME up in $(since "$t0") s ($(INSIDE_TIMEOUT=5 inside systemctl --version | head -1); $state)"
    if [ "$state" = degraded ]; then
        log "failed units in the container: $(sc --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
    fi
    # The unit's user, and the units.
    inside sh -c 'id serve >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin serve'
    inside sh -c 'cp /opt/serve/units/*.service /opt/serve/units/*.socket /etc/systemd/system/ && systemctl daemon-reload'
}

# ---------------------------------------------------------------------------------------------
# Checks: each runs in a subshell with errexit; `fail` ends it with a message.

fail() {
    echo "  # FAIL: $*" >&2
    exit 1
}
note() { echo "  # $*"; }

wait_for() { # DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds
    local what=$1 end
    end=$(awk -v a="$EPOCHREALTIME" -v s="$2" 'BEGIN { printf "%.3f", a + s }')
    shift 2
    until "$@" >/dev/null 2>&1; do
        if awk -v a="$EPOCHREALTIME" -v e="$end" 'BEGIN { exit !(a > e) }'; then
            echo "  # timed out waiting for $what" >&2
            return 1
        fi
        sleep 0.05
    done
}

systemd_version() { INSIDE_TIMEOUT=5 inside systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p'; }
is_active() { [ "$(prop "$1" ActiveState)" = active ]; }
is_inactive() { [ "$(prop "$1" ActiveState)" = inactive ]; }
file_exists() { [ -e "$1" ]; }
pid_gone() { ! kill -0 "$1" 2>/dev/null || [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = Z ]; }

dropin() { # add|remove NAME [UNIT]: a drop-in of /opt/serve/units, then daemon-reload
    local unit=${3:-serve.service}
    if [ "$1" = add ]; then
        inside sh -c "mkdir -p /etc/systemd/system/$unit.d && cp /opt/serve/units/$2 /etc/systemd/system/$unit.d/$2"
    else
        inside rm -f "/etc/systemd/system/$unit.d/$2"
    fi
    sc daemon-reload
}

background() { # OUTFILE COMMAND...: an external command in the background (BG_PID), recorded for cleanup
    local out=$1
    shift
    "$@" </dev/null >"$out" 2>&1 &
    BG_PID=$!
    echo "$BG_PID" >>"$STAGE/bg.pids"
}

load_start() { # TAG PORT CLIENT_ARGS...: a bounded load client; waits for its first answer
    local tag=$1 port=$2
    shift 2
    rm -f "$STAGE/$tag".{stop,ready,json}
    background "$STAGE/$tag.log" nsenter -t "$LEADER" -n "$PY" "$CLIENT" load "$port" \
        --stop-file "$STAGE/$tag.stop" --ready-file "$STAGE/$tag.ready" --out "$STAGE/$tag.json" \
        --max-seconds 90 "$@"
    LOAD_PID=$BG_PID
    wait_for "the load client's first answer" 15 file_exists "$STAGE/$tag.ready" ||
        fail "the load client got no answer: $(cat "$STAGE/$tag.log")"
}

load_stop() { # TAG: stops the load client; sets L_OK L_FAILED L_CONN L_WHY L_ERRORS
    local tag=$1
    touch "$STAGE/$tag.stop"
    wait_for "the load client to stop" 30 pid_gone "$LOAD_PID" || fail "the load client did not stop"
    wait "$LOAD_PID" 2>/dev/null || true
    [ -f "$STAGE/$tag.json" ] || fail "the load client wrote no summary: $(cat "$STAGE/$tag.log")"
    read -r L_OK L_FAILED L_CONN L_WHY L_ERRORS <<<"$("$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d["ok"], d["failed"], d["connect_errors"], d["stopped_by"], json.dumps(d["errors"]).replace(" ", ""), "|", "; ".join(d["first_errors"]))' \
        "$STAGE/$tag.json")"
}

journal_says() { # WHAT UNIT TEXT: TEXT appears in the journal of UNIT's current invocation
    local what=$1 unit=$2 text=$3 id
    id=$(prop "$unit" InvocationID)
    journal_has() {
        local j
        j=$(inside journalctl -o cat --no-pager "_SYSTEMD_INVOCATION_ID=$id")
        grep -qF -- "$text" <<<"$j"
    }
    wait_for "$what" 5 journal_has || fail "no '$text' in the journal of $unit (invocation $id)"
}

generation() { # UNIT: the generation in StatusText ("generation N: ...")
    prop "$1" StatusText | sed -n 's/^generation \([0-9]*\):.*/\1/p'
}

reset_units() { # stopped, no drop-ins, no failed state
    sc stop serve.service serve-activated.service serve-notify.service serve.socket 2>/dev/null || true
    inside sh -c 'rm -rf /etc/systemd/system/serve.service.d /etc/systemd/system/serve-activated.service.d'
    write_file "$STAGE/conf/deploy.ini" "$(deploy_ini reload-0)"
    sc daemon-reload
    reset_failed
}

reset_failed() { sc reset-failed "$@" 2>/dev/null || true; } # [UNIT]: "not loaded" is fine

ensure_started() {
    is_active serve || sc start serve || fail "systemctl start serve failed"
}

# 1. `systemctl start` blocks until READY=1.
check_start() {
    is_inactive serve || fail "serve is already $(prop serve ActiveState)"
    local t0 got
    t0=$(now)
    sc start serve || fail "systemctl start serve exited non-zero"
    local took
    took=$(since "$t0")
    # Right after `start` returns: no polling.
    [ "$(prop serve ActiveState)" = active ] || fail "ActiveState=$(prop serve ActiveState) right after start"
    got=$(http 8080 / --header X-Level2) || fail "GET right after start: $got"
    [ "$got" = "200 reload-0" ] || fail "GET right after start: $got"
    # The hardening is in effect (the supervisor's /proc/PID/status, its mount namespace) and
    # the workers run as --user serve.
    local pid status users
    pid=$(prop serve MainPID)
    status=$(inside cat "/proc/$pid/status")
    grep -q '^NoNewPrivs:[[:space:]]*1$' <<<"$status" || fail "NoNewPrivs is not set for MainPID $pid"
    grep -q '^Seccomp:[[:space:]]*2$' <<<"$status" || fail "no seccomp filter on MainPID $pid"
    [[ $(inside nsenter -t "$pid" -m findmnt -n -o OPTIONS -T /usr) == ro,* ]] ||
        fail "/usr is writable for the service (ProtectSystem=strict)"
    [[ $(inside nsenter -t "$pid" -m findmnt -n -o OPTIONS -T /run/serve) == rw,* ]] ||
        fail "/run/serve is not writable for the service (ReadWritePaths=)"
    users=$(inside ps -o user= --ppid "$pid" | sort -u | tr -d ' ')
    [ "$users" = serve ] || fail "the workers run as '$users', not serve"
    note "start returned in ${took} s; hardening in effect (NoNewPrivs, seccomp, / read-only); workers run as serve; StatusText=$(prop serve StatusText)"
}

# 2. `systemctl reload` returns once the new generation serves; no failed request under load.
check_reload() {
    ensure_started
    local pid0 gen0 gen i got t0 took times=() st
    pid0=$(prop serve MainPID)
    gen0=$(generation serve)
    [ -n "$gen0" ] || fail "no generation in StatusText: $(prop serve StatusText)"
    load_start reload 8080 --keepalive 4 --fresh 4
    for i in $(seq 1 10); do
        write_file "$STAGE/conf/deploy.ini" "$(deploy_ini "reload-$i")"
        t0=$(now)
        sc reload serve || fail "systemctl reload serve (#$i) exited non-zero"
        took=$(since "$t0")
        times+=("$took")
        # Right after `reload` returns, the new config serves (Type=notify-reload waited for
        # READY=1): no polling.
        got=$(http 8080 / --header X-Level2) || fail "GET after reload #$i: $got"
        [ "$got" = "200 reload-$i" ] || fail "after reload #$i returned, GET gave '$got', not '200 reload-$i'"
        st=$(prop serve StatusText)
        [[ $st == *"last reload ok"* ]] || fail "StatusText after reload #$i: $st"
        gen=$(generation serve)
        ((gen > gen0)) || fail "generation did not advance on reload #$i ($gen0 -> $gen): $st"
        gen0=$gen
        [ "$(prop serve MainPID)" = "$pid0" ] || fail "MainPID changed on reload #$i ($pid0 -> $(prop serve MainPID))"
        [ "$(prop serve ActiveState)" = active ] || fail "ActiveState=$(prop serve ActiveState) after reload #$i"
    done
    load_stop reload
    [ "$L_WHY" = stop-file ] || fail "the load client stopped early ($L_WHY)"
    ((L_FAILED == 0)) || fail "$L_FAILED of $((L_OK + L_FAILED)) requests failed during the reloads: $L_ERRORS"
    ((L_OK > 100)) || fail "only $L_OK requests during the reloads"
    note "10 reloads (took ${times[*]} s), $L_OK requests, 0 failed; MainPID $pid0 kept; StatusText=$(prop serve StatusText)"
}

# 3. A broken config: the reload fails, the old generation serves on.
check_broken() {
    ensure_started
    local pid0 before got rc st
    pid0=$(prop serve MainPID)
    before=$(http 8080 / --header X-Level2) || fail "GET before: $before"
    write_file "$STAGE/conf/deploy.ini" $'[app:main\nuse = egg:serve#echo\n'
    if sc reload serve 2>/dev/null; then rc=0; else rc=$?; fi
    st=$(prop serve StatusText)
    [[ $st == *"last reload failed"* ]] || fail "StatusText does not report the failed reload: $st"
    # READY=1 alone ends every notify-reload job as done on systemd 257 (RELOADING_ERRNO= is
    # only proposed, systemd PR #39745): the unit's ExecReload=serve reload --no-signal waits
    # for the outcome and fails the job.
    ((rc != 0)) || fail "systemctl reload exited 0 for a config that does not load"
    note "systemctl reload exited $rc; StatusText=$st"
    [ "$(prop serve ActiveState)" = active ] || fail "ActiveState=$(prop serve ActiveState) after the failed reload"
    [ "$(prop serve MainPID)" = "$pid0" ] || fail "MainPID changed"
    got=$(http 8080 / --header X-Level2) || fail "GET after the failed reload: $got"
    [ "$got" = "$before" ] || fail "after the failed reload GET gave '$got', before '$before'"
    write_file "$STAGE/conf/deploy.ini" "$(deploy_ini restored)"
    sc reload serve || fail "reload of the restored config exited non-zero"
    got=$(http 8080 / --header X-Level2) || fail "GET after restoring: $got"
    [ "$got" = "200 restored" ] || fail "after the restoring reload GET gave '$got'"
    [[ $(prop serve StatusText) == *"last reload ok"* ]] || fail "StatusText after restoring: $(prop serve StatusText)"
}

# 8. The unit for systemd < 253: Type=notify with ExecReload=serve reload, just as synchronous.
check_notify_variant() {
    reset_units
    local got rc
    sc start serve-notify || fail "systemctl start serve-notify exited non-zero"
    got=$(http 8080 / --header X-Level2) || fail "GET after start: $got"
    [ "$got" = "200 reload-0" ] || fail "GET after start: $got"
    write_file "$STAGE/conf/deploy.ini" "$(deploy_ini notify-1)"
    sc reload serve-notify || fail "systemctl reload serve-notify exited non-zero"
    # Right after `reload` returns: no polling.
    got=$(http 8080 / --header X-Level2) || fail "GET right after reload: $got"
    [ "$got" = "200 notify-1" ] || fail "right after reload GET gave '$got'"
    write_file "$STAGE/conf/deploy.ini" $'[app:main\nuse = egg:serve#echo\n'
    if sc reload serve-notify 2>/dev/null; then rc=0; else rc=$?; fi
    ((rc != 0)) || fail "systemctl reload serve-notify exited 0 for a config that does not load"
    got=$(http 8080 / --header X-Level2) || fail "GET after the failed reload: $got"
    [ "$got" = "200 notify-1" ] || fail "after the failed reload GET gave '$got'"
    is_active serve-notify || fail "ActiveState=$(prop serve-notify ActiveState) after the failed reload"
    sc stop serve-notify || fail "systemctl stop serve-notify exited non-zero"
    [ "$(prop serve-notify Result)" = success ] || fail "Result=$(prop serve-notify Result)"
    note "reload returned with the new config serving; a broken one made it exit $rc; Result=success"
    reset_units
}

# 4. `systemctl stop` drains: Result=success, an in-flight request completes.
check_stop() {
    ensure_started
    local t0 took
    sc stop serve || fail "systemctl stop serve exited non-zero"
    [ "$(prop serve ActiveState)" = inactive ] || fail "ActiveState=$(prop serve ActiveState) after stop"
    [ "$(prop serve Result)" = success ] || fail "Result=$(prop serve Result) after stop"

    [ -x "$STAGE/bin/examples/fault_eggs" ] || fail "no fault_eggs binary for the slow request ($FAULT_BIN)"
    dropin add slow.conf
    sc start serve || fail "systemctl start serve (fault_eggs, test#sleep) failed"
    local got ms=$((3000 + RANDOM % 500)) pid
    got=$(http 8080 "/?0") || fail "GET /?0 from test#sleep: $got"
    background "$STAGE/slow.out" nsenter -t "$LEADER" -n "$PY" "$CLIENT" get 8080 "/?$ms" --timeout 30
    pid=$BG_PID
    in_flight() {
        local j
        j=$(inside journalctl -u serve -o cat --no-pager)
        grep -qF "sleeping $ms ms" <<<"$j"
    }
    wait_for "the slow request to reach the app" 10 in_flight || fail "the slow request never reached test#sleep"
    t0=$(now)
    sc stop serve || fail "systemctl stop serve (request in flight) exited non-zero"
    took=$(since "$t0")
    wait_for "the slow request to end" 20 pid_gone "$pid" || fail "the slow request did not end"
    got=$(cat "$STAGE/slow.out")
    [ "$got" = 200 ] || fail "the request in flight during stop got '$got'"
    [ "$(prop serve Result)" = success ] || fail "Result=$(prop serve Result) after the draining stop"
    [ "$(prop serve ActiveState)" = inactive ] || fail "ActiveState=$(prop serve ActiveState)"
    dropin remove slow.conf
    note "stop with a ${ms} ms request in flight returned after $took s; the request got 200; Result=success"
}

# 5. Socket activation through serve.socket.
check_socket() {
    reset_units
    sc start serve.socket || fail "systemctl start serve.socket failed"
    is_inactive serve-activated || fail "serve-activated is $(prop serve-activated ActiveState) before any connection"
    local got main workers w env
    got=$(http 8081 / --header X-Level2) || fail "first connection: $got"
    [ "$got" = "200 activated" ] || fail "first connection got '$got'"
    is_active serve-activated || fail "serve-activated is $(prop serve-activated ActiveState) after the first connection"
    main=$(prop serve-activated MainPID)
    workers=$(inside ps -o pid= --ppid "$main" | tr -s ' \n' ' ')
    [ -n "${workers// /}" ] || fail "no worker processes under MainPID $main"
    for w in $workers; do
        env=$(inside cat "/proc/$w/environ" | tr '\0' '\n')
        ! grep -q '^LISTEN_' <<<"$env" || fail "worker $w has $(grep '^LISTEN_' <<<"$env" | tr '\n' ' ')"
        ! grep -q '^NOTIFY_SOCKET=' <<<"$env" || fail "worker $w has NOTIFY_SOCKET"
    done
    journal_says "the socket unit's socket taken" serve-activated "listening on http://127.0.0.1:8081 (from systemd: socket activation, 'http')"
    sc reload serve-activated || fail "systemctl reload serve-activated exited non-zero"
    got=$(http 8081 / --header X-Level2) || fail "GET after reload: $got"
    [ "$got" = "200 activated" ] || fail "GET after reload got '$got'"
    is_active serve.socket || fail "serve.socket is $(prop serve.socket ActiveState) after the reload"
    [ "$(prop serve-activated MainPID)" = "$main" ] || fail "MainPID changed on reload"
    sc stop serve-activated.service serve.socket
    note "activated on the first connection; workers ($workers) have no LISTEN_*; reload kept the socket"
}

# 6. The FD store keeps the listening socket across `systemctl restart`.
restarts_under_load() { # TAG: 3 restarts while a client opens a new connection per request
    local tag=$1 i old new got
    load_start "$tag" 8080 --keepalive 0 --fresh 6
    for i in 1 2 3; do
        old=$(prop serve MainPID)
        reset_failed serve # restarts count against StartLimitBurst= (5 in 10 s)
        sc restart serve || fail "systemctl restart serve (#$i) failed"
        new=$(prop serve MainPID)
        [ "$new" != "$old" ] || fail "MainPID unchanged by restart #$i"
        got=$(http 8080 /) || fail "GET after restart #$i: $got"
        if [ "$tag" = fdstore ]; then
            journal_says "the stored socket taken back on restart #$i" serve \
                "listening on http://127.0.0.1:8080 (from systemd: the FD store)"
        fi
    done
    load_stop "$tag"
    [ "$L_WHY" = stop-file ] || fail "the load client stopped early ($L_WHY)"
}
check_fdstore() {
    reset_units
    # Control, for the record: without an FD store a restart has a gap with no listener.
    dropin add nofdstore.conf
    sc start serve || fail "systemctl start serve (FileDescriptorStoreMax=0) failed"
    restarts_under_load control
    local control="without an FD store: $L_CONN of $((L_OK + L_FAILED)) connections refused"
    sc stop serve
    dropin remove nofdstore.conf

    dropin add fdstore.conf
    reset_failed serve
    sc start serve || fail "systemctl start serve (FileDescriptorStoreMax=8) failed"
    local n
    n=$(prop serve NFileDescriptorStore)
    ((n >= 1)) || fail "NFileDescriptorStore=$n: serve stored no socket"
    restarts_under_load fdstore
    ((L_CONN == 0)) || fail "$L_CONN connections refused/failed across the restarts: $L_ERRORS"
    ((L_FAILED == 0)) || fail "$L_FAILED requests failed across the restarts: $L_ERRORS"
    note "3 restarts: $L_OK requests on new connections, 0 refused, NFileDescriptorStore=$n ($control)"
    sc stop serve
    dropin remove fdstore.conf
}

# 7. The watchdog restarts a stopped supervisor.
no_stopped_process() {
    local p s
    for p in $(cgroup_pids); do
        s=$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) || continue
        [ "$s" != T ] || return 1
    done
}
restarted() { # OLD_PID OLD_NRESTARTS
    local pid n
    pid=$(prop serve MainPID)
    n=$(prop serve NRestarts)
    [ "$(prop serve ActiveState)" = active ] && ((pid != 0 && pid != $1 && n > $2))
}
check_watchdog() {
    reset_units
    dropin add watchdog.conf
    sc start serve || fail "systemctl start serve (WatchdogSec=3) failed"
    [ "$(prop serve WatchdogUSec)" = 3s ] || fail "WatchdogUSec=$(prop serve WatchdogUSec)"
    local pid0 n0 t0 took got journal
    pid0=$(prop serve MainPID)
    n0=$(prop serve NRestarts)
    t0=$(now)
    inside kill -STOP "$pid0"
    wait_for "systemd to restart the stopped serve" 20 restarted "$pid0" "$n0" ||
        fail "no restart within 20 s (MainPID=$(prop serve MainPID), NRestarts=$(prop serve NRestarts), $(prop serve ActiveState))"
    took=$(since "$t0")
    local pid1
    pid1=$(prop serve MainPID)
    got=$(http 8080 /) || fail "GET after the watchdog restart: $got"
    journal=$(inside journalctl -u serve -o cat --no-pager)
    grep -q "Watchdog timeout" <<<"$journal" || fail "no 'Watchdog timeout' in the journal"
    grep -q "Failed with result 'watchdog'" <<<"$journal" || fail "no \"Failed with result 'watchdog'\" in the journal"
    inside sh -c "! kill -0 $pid0 2>/dev/null" || fail "the stopped supervisor $pid0 still exists"
    wait_for "no stopped process in the container" 10 no_stopped_process ||
        fail "stopped processes left: $(for p in $(cgroup_pids); do awk '$3 == "T"' "/proc/$p/stat" 2>/dev/null; done)"
    sc stop serve
    [ "$(prop serve Result)" = success ] || fail "Result=$(prop serve Result) after stopping the restarted serve"
    dropin remove watchdog.conf
    note "SIGSTOP'd supervisor $pid0 replaced by $pid1 after $took s (journal: Watchdog timeout, result 'watchdog'); no stopped process left"
}

run_check() { # NUMBER SKIP_TAG DESCRIPTION FUNCTION
    local num=$1 tag=$2 desc=$3 fn=$4 t0 rc
    if [ -n "$tag" ] && [[ $SKIP == *",$tag,"* ]]; then
        echo "ok - $num $desc # SKIP (LEVEL2_SKIP=$tag)"
        SKIPPED=$((SKIPPED + 1))
        return 0
    fi
    kill -0 "$NSPAWN_PID" 2>/dev/null || die "the container is gone (see above)"
    t0=$(now)
    set +e
    (
        set -eE
        trap 'echo "  # FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR
        trap 'exit 130' INT
        trap 'exit 143' TERM
        "$fn"
    )
    rc=$?
    set -e
    kill_background
    if ((rc == 130 || rc == 143)); then
        echo "not ok - $num $desc (interrupted)"
        exit "$rc"
    fi
    if ((rc == 0)); then
        echo "ok - $num $desc ($(since "$t0") s)"
        PASSED=$((PASSED + 1))
    else
        echo "not ok - $num $desc ($(since "$t0") s)"
        FAILED=$((FAILED + 1))
    fi
}

# ---------------------------------------------------------------------------------------------

install_packages
build_rootfs
stage
boot

run_check 1 "" "systemctl start serve blocks until ready (active, GET 200 right away)" check_start
run_check 2 "" "10 reloads under load: each returns once the new config serves, 0 failed requests, same MainPID" check_reload
run_check 3 "" "a broken config: systemctl reload fails, the old generation serves on, the fixed config reloads" check_broken
run_check 4 "" "systemctl stop drains: Result=success, a request in flight gets 200" check_stop
run_check 5 socket "socket activation: started by the first connection, no LISTEN_* in workers, reload keeps the socket" check_socket
run_check 6 fdstore "FD store: systemctl restart refuses no connection" check_fdstore
run_check 7 "" "watchdog: a SIGSTOP'd supervisor is killed and restarted (Result watchdog), nothing left stopped" check_watchdog
run_check 8 "" "Type=notify variant (systemd < 253): reload is synchronous and fails for a broken config" check_notify_variant

if ((FAILED > 0)); then
    echo "# ---- journalctl -u serve -u serve-activated -u serve.socket (inside the container) ----"
    inside journalctl -u serve -u serve-activated -u serve-notify -u serve.socket -o short-monotonic --no-pager -n 400 || true
    echo "# ---- end of journal ----"
fi
echo "# $PASSED passed, $FAILED failed, $SKIPPED skipped; $(since "$T_START") s in all"
((FAILED == 0))
