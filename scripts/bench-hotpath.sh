#!/usr/bin/env bash
# The in-kernel cost of every hook, per operation, beside the accept-only bpftrace script a
# user would otherwise run (tests/SockTrace.Benchmarks/load/accept.bt) and beside the floor
# (load/floor.bpf.c: an empty program on each of the agent's attach points), in one run:
#   1. BPF ns per loopback connection (connect, accept, both closes, all its packets), per
#      EAGAIN from accept4(), per close() and per dup2() of a process that never accepts;
#      ns per run of the per-packet program, and of the state program on the state changes
#      of closing alone (connections opened before the measured window). kernel.bpf_stats_enabled
#      is on only while a workload runs (it adds two clock reads to every run) and the
#      programs are told apart by id: those the tracer loaded.
#   2. End to end, interleaved rounds with no tracer, the agent, the script and the floor:
#      nginx (nginx-light, one worker) under wrk with Connection: close; two threads polling
#      accept4() on an empty non-blocking listener; the stload accept loop.
# Run as root. Knobs: ROUNDS (3), SECONDS_OP (4), SECONDS_E2E (5), CLOSES_N (8000 connections),
# SKIP_E2E=1 (part 1 only: in a qemu guest, tests/vm/README.md), SKIP_BUILD=1,
# AGENT_ARGS (e.g. "--attach-mode kprobe"), AGENT_DLL (another build of the agent), BENCH_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
ROUNDS=${ROUNDS:-3}
SECONDS_OP=${SECONDS_OP:-4}
SECONDS_E2E=${SECONDS_E2E:-5}
CLOSES_N=${CLOSES_N:-8000}
out=${BENCH_OUT:-$(mktemp -d /tmp/socktrace-hotpath.XXXXXX)}
mkdir -p "$out"
agent_dll=${AGENT_DLL:-$root/agent/SockTrace.Agent/bin/Release/net10.0/socktrace.dll}
stload=$root/tests/SockTrace.Benchmarks/bin/stload
script=$root/tests/SockTrace.Benchmarks/load/accept.bt
floor=$root/tests/SockTrace.Benchmarks/bin/floor
floor_obj=$root/tests/SockTrace.Benchmarks/bin/floor.bpf.o
port=${AGENT_PORT:-19474}
nginx_port=${NGINX_PORT:-18490}
tracer_pid=

log() { echo "bench-hotpath: $*" >&2; }

scripts/setup.sh bpftrace nginx-light wrk
if [[ -z ${SKIP_BUILD:-} ]]; then
  scripts/build.sh >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
fi
mkdir -p "$(dirname "$stload")"
cc -O2 -Wall -Wextra -pthread tests/SockTrace.Benchmarks/load/stload.c -o "$stload"
clang -O2 -g -target bpf -I"/usr/include/$(gcc -dumpmachine)" -c tests/SockTrace.Benchmarks/load/floor.bpf.c -o "$floor_obj"
cc -O2 -Wall -Wextra tests/SockTrace.Benchmarks/load/floor.c -lbpf -o "$floor"
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing

field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
prog_ids() { bpftool prog show 2>/dev/null | awk -F: '/^[0-9]+:/ {print $1}' | sort; }
prog_stats() { # ID NAME RUN_TIME_NS RUN_CNT
  bpftool prog show 2>/dev/null | awk '/^[0-9]+:/ { id = $1; sub(":", "", id); name = ""; t = 0; c = 0
    for (i = 2; i <= NF; i++) { if ($i == "name") name = $(i+1); if ($i == "run_time_ns") t = $(i+1); if ($i == "run_cnt") c = $(i+1) }
    print id, name, t, c }'
}
stats() { # "median [min..max]"
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END { m = NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
    f = v[NR] >= 100 ? "%.0f" : "%.3g"; printf f " [" f ".." f "]", m, v[1], v[NR] }'
}

start_tracer() { # agent | bpftrace | floor | none; leaves the tracer's program ids in $out/ids.$1
  prog_ids >"$out/ids.before"
  case $1 in
    agent)
      # shellcheck disable=SC2086
      dotnet "$agent_dll" --urls "http://127.0.0.1:$port" ${AGENT_ARGS:-} >>"$out/agent.log" 2>&1 &
      tracer_pid=$!
      # Up to 5 minutes: an emulated guest takes one or two.
      for _ in $(seq 1 3000); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
      curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { log "the agent did not become healthy"; cat "$out/agent.log"; exit 1; } ;;
    bpftrace)
      bpftrace "$script" >"$out/bpftrace.log" 2>&1 &
      tracer_pid=$!
      for _ in $(seq 1 3000); do grep -q '^Attaching' "$out/bpftrace.log" && break; sleep 0.1; done
      sleep 1 ;;
    floor)
      "$floor" "$floor_obj" >"$out/floor.log" 2>&1 &
      tracer_pid=$!
      for _ in $(seq 1 600); do grep -q '^Attached' "$out/floor.log" && break; sleep 0.1; done ;;
    none) tracer_pid= ;;
  esac
  prog_ids | comm -13 "$out/ids.before" - >"$out/ids.$1"
}

stop_tracer() {
  [[ -n $tracer_pid ]] || return 0
  # The agent detaches on SIGTERM; bpftrace prints its maps and exits on SIGINT.
  kill -TERM "$tracer_pid" 2>/dev/null || true
  kill -INT "$tracer_pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$tracer_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$tracer_pid" 2>/dev/null || true
  wait "$tracer_pid" 2>/dev/null || true
  tracer_pid=
}
trap 'stop_tracer; nginx -c "$out/nginx.conf" -p "$out" -s stop 2>/dev/null || true' EXIT

# measure TRACER WORKLOAD ARGS...: runs stload under bpf_stats, prints "OPS" then one line per
# program of the tracer: NAME RUNS NS. The closes workload opens its connections before the
# window: stats cover only what it does after "opened".
measure() {
  local tracer=$1; shift
  local was; was=$(sysctl -n kernel.bpf_stats_enabled)
  local line
  if [[ $1 == closes ]]; then
    # Two fifos, not a coproc: a coproc that dies takes its fd variables with it.
    # In a local folder: BENCH_OUT may be a guest's 9p share, which has no fifos.
    local fifos; fifos=$(mktemp -d)
    mkfifo "$fifos/in" "$fifos/out"
    "$stload" "$@" <"$fifos/in" >"$fifos/out" &
    local closes_pid=$!
    exec {to_closes}>"$fifos/in" {from_closes}<"$fifos/out"
    local opened; read -r opened <&"$from_closes" || { log "stload $* failed"; exit 1; }
    sysctl -qw kernel.bpf_stats_enabled=1
    prog_stats >"$out/s0"
    echo go >&"$to_closes"
    read -r line <&"$from_closes" || { log "stload $* failed"; exit 1; }
    exec {to_closes}>&- {from_closes}<&-
    wait "$closes_pid"
    rm -rf "$fifos"
  else
    sysctl -qw kernel.bpf_stats_enabled=1
    prog_stats >"$out/s0"
    line=$("$stload" "$@")
  fi
  prog_stats >"$out/s1"
  sysctl -qw kernel.bpf_stats_enabled="$was"
  echo "$line" >>"$out/workloads.txt"
  local ops; ops=$(field ops "$line"); [[ -n $ops ]] || ops=$(field calls "$line")
  echo "$ops"
  awk 'FILENAME == ARGV[1] { mine[$1] = 1; next } FILENAME == ARGV[2] { t[$1] = $3; c[$1] = $4; next }
    ($1 in mine) && $4 > c[$1] { print $2, $4 - c[$1], $3 - t[$1] }' "$out/ids.$tracer" "$out/s0" "$out/s1"
}

per_op() { # per_op OPS < "NAME RUNS NS" lines: total ns per op
  awk -v n="$1" '{ t += $3 } END { printf "%.0f", t / n }'
}
per_event() { # per_event REGEX < lines: ns per event of the programs whose name matches, all
  # of them together (one event runs each: a build with two programs on one attach point pays both)
  awk -v re="$1" '$1 ~ re { if ($2 > r) r = $2; t += $3 } END { if (r) printf "%.0f", t / r; else printf "-" }'
}

# ---- 1. BPF ns per operation ----
declare -A conn eagain closes dups pkt state
for i in $(seq 1 "$ROUNDS"); do
  for tracer in agent bpftrace floor; do
    log "BPF cost, $tracer, round $i/$ROUNDS"
    start_tracer "$tracer"
    m=$(measure "$tracer" accept "$SECONDS_OP"); n=$(head -1 <<<"$m"); tail -n +2 <<<"$m" >"$out/accept.$tracer.$i"
    conn[$tracer]+=" $(per_op "$n" <"$out/accept.$tracer.$i")"
    pkt[$tracer]+=" $(per_event 'netif_receive' <"$out/accept.$tracer.$i")"
    m=$(measure "$tracer" eagain "$SECONDS_OP" 1); n=$(head -1 <<<"$m"); tail -n +2 <<<"$m" >"$out/eagain.$tracer.$i"
    eagain[$tracer]+=" $(per_op "$n" <"$out/eagain.$tracer.$i")"
    m=$(measure "$tracer" close "$SECONDS_OP"); n=$(head -1 <<<"$m"); tail -n +2 <<<"$m" >"$out/close.$tracer.$i"
    closes[$tracer]+=" $(per_op "$n" <"$out/close.$tracer.$i")"
    m=$(measure "$tracer" dup "$SECONDS_OP"); n=$(head -1 <<<"$m"); tail -n +2 <<<"$m" >"$out/dup.$tracer.$i"
    dups[$tracer]+=" $(per_op "$n" <"$out/dup.$tracer.$i")"
    m=$(measure "$tracer" closes "$CLOSES_N"); tail -n +2 <<<"$m" >"$out/closes.$tracer.$i"
    state[$tracer]+=" $(per_event 'set_state' <"$out/closes.$tracer.$i")"
    stop_tracer
  done
done

# ---- 2. end to end ----
declare -A rps polls accepts
if [[ -z ${SKIP_E2E:-} ]]; then
cat >"$out/nginx.conf" <<NGX
worker_processes 1;
pid $out/nginx.pid;
error_log $out/nginx.error.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$nginx_port; location / { return 200 "ok\n"; } } }
NGX
nginx -c "$out/nginx.conf" -p "$out"
sleep 0.5
for i in $(seq 1 "$ROUNDS"); do
  for tracer in none agent bpftrace floor; do
    log "end to end, $tracer, round $i/$ROUNDS"
    start_tracer "$tracer"
    r=$(wrk -t1 -c16 -d"${SECONDS_E2E}s" -H 'Connection: close' "http://127.0.0.1:$nginx_port/" | awk '/^Requests\/sec/ {print $2}')
    rps[$tracer]+=" $r"
    l=$("$stload" eagain "$SECONDS_E2E" 2); polls[$tracer]+=" $(awk -v c="$(field calls "$l")" -v s="$(field seconds "$l")" 'BEGIN { printf "%.0f", c / s }')"
    l=$("$stload" accept "$SECONDS_E2E"); accepts[$tracer]+=" $(field rate "$l")"
    stop_tracer
  done
done
fi

ratios() { # ratios "A1 A2 .." "B1 B2 ..": B_i / A_i, per interleaved round
  paste -d' ' <(tr ' ' '\n' <<<"${1# }") <(tr ' ' '\n' <<<"${2# }") | awk '{ printf "%.3f ", $2 / $1 }'
}
# shellcheck disable=SC2086
{
  echo "## Hot path ($(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), load before: $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "| measure (median [min..max] of $ROUNDS rounds) | agent | accept-only bpftrace | floor: empty programs on the agent's attach points |"
  echo "|---|---|---|---|"
  echo "| BPF ns per loopback connection | $(stats ${conn[agent]}) | $(stats ${conn[bpftrace]}) | $(stats ${conn[floor]}) |"
  echo "| BPF ns per EAGAIN accept4() | $(stats ${eagain[agent]}) | $(stats ${eagain[bpftrace]}) | $(stats ${eagain[floor]}) |"
  echo "| BPF ns per close() of a process that never accepts | $(stats ${closes[agent]}) | $(stats ${closes[bpftrace]}) | $(stats ${closes[floor]}) |"
  echo "| BPF ns per dup2() of a process that never accepts | $(stats ${dups[agent]}) | $(stats ${dups[bpftrace]}) | $(stats ${dups[floor]}) |"
  echo "| BPF ns per received packet | $(stats ${pkt[agent]}) | - | $(stats ${pkt[floor]}) |"
  echo "| BPF ns per TCP state change of closing (no open) | $(stats ${state[agent]}) | - | $(stats ${state[floor]}) |"
  if [[ -z ${SKIP_E2E:-} ]]; then
    echo "| nginx + wrk requests/s, ratio to no tracer | $(stats $(ratios "${rps[none]}" "${rps[agent]}")) | $(stats $(ratios "${rps[none]}" "${rps[bpftrace]}")) | $(stats $(ratios "${rps[none]}" "${rps[floor]}")) |"
    echo "| 2 EAGAIN pollers, calls/s ratio to no tracer | $(stats $(ratios "${polls[none]}" "${polls[agent]}")) | $(stats $(ratios "${polls[none]}" "${polls[bpftrace]}")) | $(stats $(ratios "${polls[none]}" "${polls[floor]}")) |"
    echo "| stload accept, connections/s ratio to no tracer | $(stats $(ratios "${accepts[none]}" "${accepts[agent]}")) | $(stats $(ratios "${accepts[none]}" "${accepts[bpftrace]}")) | $(stats $(ratios "${accepts[none]}" "${accepts[floor]}")) |"
  fi
  echo
  echo "Per program, last round (runs per operation, ns per run):"
  for w in accept eagain close dup closes; do
    for t in agent floor; do
      awk -v w="$w" '{ printf "  %s %s: %d runs, %.0f ns/run\n", w, $1, $2, $2 ? $3 / $2 : 0 }' "$out/$w.$t.$ROUNDS"
    done
  done
} | tee "$out/summary.md"
log "details in $out"
