#!/usr/bin/env bash
# What the agent takes from a node, for the two builds side by side, in interleaved rounds:
#   - first scrape: from exec to the first 200 on /metrics (curl every 5 ms);
#   - steady-state memory: VmRSS (and RssAnon, RssFile) after WARMUP seconds of paced
#     loopback accepts at RATE/s, read while that load goes on, with a scrape of /metrics
#     every SCRAPE_EVERY seconds all along (Prometheus scrapes every 30 s; more often here,
#     so that what scrapes allocate, and the managed heap's budget for it, shows within
#     the run rather than after half an hour);
#   - the agent's CPU time (user and system) over those 10 s;
#   - the size of what ships.
# "native" is out/socktrace (scripts/publish.sh), "managed" is `dotnet socktrace.dll`
# (scripts/build.sh). Run as root. Knobs: ROUNDS (3), WARMUP (60), RATE (10000), SCRAPE_EVERY (1),
# SKIP_BUILD=1, BENCH_OUT (a new temporary folder), BUILDS (the columns: "native managed"),
# BASELINE (another native executable, say an earlier out/socktrace kept aside: adds the
# column "baseline", interleaved with the others, for a before/after on one run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-60}
SCRAPE_EVERY=${SCRAPE_EVERY:-1}
RATE=${RATE:-10000}
out=${BENCH_OUT:-$(mktemp -d /tmp/socktrace-footprint.XXXXXX)}
mkdir -p "$out"
port=${AGENT_PORT:-19470}
native=out/socktrace
managed=agent/SockTrace.Agent/bin/Release/net10.0/socktrace.dll
read -r -a builds <<<"${BUILDS:-native managed}"
[[ -n ${BASELINE:-} ]] && builds=(baseline "${builds[@]}")
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

# run_build BUILD: starts it, prints "FIRST_SCRAPE_MS VMRSS_KIB RSSANON_KIB RSSFILE_KIB CPU_MS".
run_build() {
  local t0 t1
  t0=$(date +%s%N)
  if [[ $1 == baseline ]]; then
    "$BASELINE" --urls "http://127.0.0.1:$port" >>"$out/agent-$1.log" 2>&1 &
  elif [[ $1 == native ]]; then
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
  (while sleep "$SCRAPE_EVERY"; do curl -s -o /dev/null "http://127.0.0.1:$port/metrics" || true; done) &
  local scraper=$!
  "$stload" accept "$WARMUP" "$RATE" >/dev/null
  # Read while the paced load goes on, half-way through a second run of it.
  local cpu0 cpu1
  cpu0=$(cpu_ticks "$agent_pid")
  "$stload" accept 10 "$RATE" >"$out/load-$1.txt" &
  sleep 5
  local mem
  mem=$(awk '/^(VmRSS|RssAnon|RssFile):/ { printf "%d ", $2 }' "/proc/$agent_pid/status")
  # Which mappings hold it, for a look afterwards.
  cp "/proc/$agent_pid/smaps" "$out/smaps-$1-$round" 2>/dev/null || true
  wait $!
  cpu1=$(cpu_ticks "$agent_pid")
  kill "$scraper"
  wait "$scraper" 2>/dev/null || true
  stop_agent
  echo "$(( (t1 - t0) / 1000000 )) $mem$(( (cpu1 - cpu0) * 1000 / $(getconf CLK_TCK) ))"
}

# cpu_ticks PID: user + system time of the process, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

log "results in $out; $ROUNDS rounds, warm-up ${WARMUP} s at $RATE accepts/s, a scrape every $SCRAPE_EVERY s"
uptime >"$out/uptime.before"
for ((r = 1; r <= ROUNDS; r++)); do
  for build in "${builds[@]}"; do
    round=$r
    line=$(run_build "$build")
    echo "$build $line" >>"$out/rounds.txt"
    log "round $r $build: first scrape, VmRSS, RssAnon, RssFile, CPU (ms, KiB, KiB, KiB, ms): $line"
    sleep 2
  done
done

# median [min..max] of column COL for BUILD, divided by DIV.
stat() {
  awk -v b="$1" -v c="$2" -v d="$3" '$1 == b { print $c / d }' "$out/rounds.txt" | sort -n |
    awk '{ v[NR] = $1 } END { printf "%.0f [%.0f..%.0f]", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
# One column per build: LABEL.
header() {
  case $1 in
    native) echo "native (out/socktrace)" ;;
    baseline) echo "baseline ($BASELINE)" ;;
    managed) echo "managed (dotnet socktrace.dll)" ;;
  esac
}
# row TITLE COL DIV: one cell per build.
row() {
  local line="| $1 |" b
  for b in "${builds[@]}"; do line+=" $(stat "$b" "$2" "$3") |"; done
  echo "$line"
}
shipped() {
  case $1 in
    native) echo "$(du -m "$native" | cut -f1) (one file)" ;;
    baseline) echo "$(du -m "$BASELINE" | cut -f1) (one file)" ;;
    managed)
      # The managed build's folder without the native build's intermediate files (linux-x64/).
      local runtimes
      runtimes=$(du -cm /usr/share/dotnet/shared/Microsoft.NETCore.App /usr/share/dotnet/shared/Microsoft.AspNetCore.App 2>/dev/null | tail -1 | cut -f1)
      echo "$(du -cm --exclude=linux-x64 agent/SockTrace.Agent/bin/Release/net10.0 | tail -1 | cut -f1), and $runtimes of .NET and ASP.NET Core runtimes on the node" ;;
  esac
}
echo
line="| measure (median [min..max] of $ROUNDS interleaved rounds) |" sep="|---|"
for b in "${builds[@]}"; do line+=" $(header "$b") |"; sep+="---|"; done
echo "$line"
echo "$sep"
row "first scrape after exec, ms" 2 1
row "VmRSS at $RATE accepts/s after ${WARMUP} s, MiB" 3 1024
row "of which RssAnon, MiB" 4 1024
row "of which RssFile, MiB" 5 1024
row "CPU time over 10 s at $RATE accepts/s (and a scrape a second), ms" 6 1
line="| what ships, MiB |"
for b in "${builds[@]}"; do line+=" $(shipped "$b") |"; done
echo "$line"
