#!/usr/bin/env bash
# What the agent takes from a node, for the two builds side by side, in interleaved rounds:
#   - first scrape: from exec to the first 200 on /metrics (curl every 5 ms);
#   - steady-state memory: VmRSS (and RssAnon, RssFile) after WARMUP seconds of paced
#     loopback accepts at RATE/s, read while that load goes on;
#   - the size of what ships.
# "native" is out/socktrace (scripts/publish.sh), "managed" is `dotnet socktrace.dll`
# (scripts/build.sh). Run as root. Knobs: ROUNDS (3), WARMUP (20), RATE (10000),
# SKIP_BUILD=1, BENCH_OUT (a new temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-20}
RATE=${RATE:-10000}
out=${BENCH_OUT:-$(mktemp -d /tmp/socktrace-footprint.XXXXXX)}
mkdir -p "$out"
port=${AGENT_PORT:-19470}
native=out/socktrace
managed=agent/SockTrace.Agent/bin/Release/net10.0/socktrace.dll
stload=tests/SockTrace.Benchmarks/bin/stload
agent_pid=

log() { echo "footprint: $*" >&2; }

if [[ -z ${SKIP_BUILD:-} ]]; then
  scripts/build.sh
  scripts/publish.sh out
fi
mkdir -p "$(dirname "$stload")"
cc -O2 -Wall -Wextra -pthread tests/SockTrace.Benchmarks/load/stload.c -o "$stload"

# shellcheck source=lib/stop-agent.sh
source scripts/lib/stop-agent.sh
trap stop_agent EXIT

# run_build BUILD: starts it, prints "FIRST_SCRAPE_MS VMRSS_KIB RSSANON_KIB RSSFILE_KIB".
run_build() {
  local t0 t1
  t0=$(date +%s%N)
  if [[ $1 == native ]]; then
    "$native" --urls "http://127.0.0.1:$port" >>"$out/agent-$1.log" 2>&1 &
  else
    dotnet "$managed" --urls "http://127.0.0.1:$port" >>"$out/agent-$1.log" 2>&1 &
  fi
  agent_pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$port/metrics"; do
    kill -0 "$agent_pid" 2>/dev/null || { cat "$out/agent-$1.log"; log "the $1 agent exited"; exit 1; }
    sleep 0.005
  done
  t1=$(date +%s%N)
  "$stload" accept "$WARMUP" "$RATE" >/dev/null
  # Read while the paced load goes on, half-way through a second run of it.
  "$stload" accept 10 "$RATE" >"$out/load-$1.txt" &
  sleep 5
  local mem
  mem=$(awk '/^(VmRSS|RssAnon|RssFile):/ { printf "%d ", $2 }' "/proc/$agent_pid/status")
  wait $!
  stop_agent
  echo "$(( (t1 - t0) / 1000000 )) $mem"
}

log "results in $out; $ROUNDS rounds, warm-up ${WARMUP} s at $RATE accepts/s"
uptime >"$out/uptime.before"
for ((r = 1; r <= ROUNDS; r++)); do
  for build in native managed; do
    line=$(run_build "$build")
    echo "$build $line" >>"$out/rounds.txt"
    log "round $r $build: first scrape, VmRSS, RssAnon, RssFile (ms, KiB): $line"
    sleep 2
  done
done

# median [min..max] of column COL for BUILD, divided by DIV.
stat() {
  awk -v b="$1" -v c="$2" -v d="$3" '$1 == b { print $c / d }' "$out/rounds.txt" | sort -n |
    awk '{ v[NR] = $1 } END { printf "%.0f [%.0f..%.0f]", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
echo
echo "| measure (median [min..max] of $ROUNDS interleaved rounds) | native (out/socktrace) | managed (dotnet socktrace.dll) |"
echo "|---|---|---|"
echo "| first scrape after exec, ms | $(stat native 2 1) | $(stat managed 2 1) |"
echo "| VmRSS at $RATE accepts/s after ${WARMUP} s, MiB | $(stat native 3 1024) | $(stat managed 3 1024) |"
echo "| of which RssAnon, MiB | $(stat native 4 1024) | $(stat managed 4 1024) |"
echo "| of which RssFile, MiB | $(stat native 5 1024) | $(stat managed 5 1024) |"
# The managed build's folder without the native build's intermediate files (linux-x64/).
runtimes=$(du -cm /usr/share/dotnet/shared/Microsoft.NETCore.App /usr/share/dotnet/shared/Microsoft.AspNetCore.App 2>/dev/null | tail -1 | cut -f1)
echo "| what ships, MiB | $(du -m "$native" | cut -f1) (one file) | $(du -cm --exclude=linux-x64 agent/SockTrace.Agent/bin/Release/net10.0 | tail -1 | cut -f1), and $runtimes of .NET and ASP.NET Core runtimes on the node |"
