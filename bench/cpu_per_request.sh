#!/usr/bin/env bash
# CPU time per request of one server process under wrk load, split into user and system:
#
#   bench/cpu_per_request.sh NAME PID PORT
#
# PID is the process that serves (serve's worker: `pgrep -P SUPERVISOR_PID`; nginx's worker:
# `pgrep -P MASTER_PID`), PORT its loopback port. 1 s of warm-up, then 5 s of
# `wrk -t1 -c50`; reads utime and stime from /proc/PID/stat before and after.
set -euo pipefail
name=$1 pid=$2 port=$3
if ! command -v wrk >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
fi
tick=$(getconf CLK_TCK)
wrk -t1 -c50 -d1s "http://127.0.0.1:$port/" >/dev/null
read -r u0 s0 < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
out=$(wrk -t1 -c50 -d5s "http://127.0.0.1:$port/")
read -r u1 s1 < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
n=$(awk '/requests in/ { print $1 }' <<<"$out")
python3 -c "
n, tick = $n, $tick
print('%-12s user %.2f us  system %.2f us per request  (%d req/s)'
      % ('$name', ($u1 - $u0) * 1e6 / tick / n, ($s1 - $s0) * 1e6 / tick / n, n / 5))"
