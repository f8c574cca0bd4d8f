# Shared by scripts/soak.sh and scripts/soak-churn.sh (sourced): starting the built agent on
# a port of its own and reading what it exports. Expects $work (a scratch directory),
# $agent_dll and log() from the script that sources it; sets $metrics_port and $agent_pid.

free_port() { # a port in 20000-29999 that nothing listens on
  local p
  while p=$(shuf -i 20000-29999 -n 1); ss -Htln "sport = :$p" | grep -q .; do :; done
  echo "$p"
}

# start_agent [ARG]...: the agent with these flags and $AGENT_ARGS, in the background,
# its output in $work/agent.log; returns once /healthz answers (exits if it never does).
start_agent() {
  metrics_port=$(free_port)
  # shellcheck disable=SC2086
  dotnet "$agent_dll" --urls "http://127.0.0.1:$metrics_port" "$@" ${AGENT_ARGS:-} >"$work/agent.log" 2>&1 &
  agent_pid=$!
  for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$metrics_port/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$agent_pid" 2>/dev/null || { cat "$work/agent.log" >&2; exit 1; }
    sleep 0.1
  done
  log "agent not healthy"
  cat "$work/agent.log" >&2
  exit 1
}

scrape() { curl -fs "http://127.0.0.1:$metrics_port/metrics"; }

# metric_sum METRIC [LABEL_MATCH] < EXPOSITION: the sum of a metric's samples whose labels
# contain LABEL_MATCH.
metric_sum() {
  awk -v m="$1" -v l="${2:-}" '$0 !~ /^#/ { n = $1; sub(/\{.*/, "", n); if (n == m && index($0, l)) s += $NF } END { printf "%.0f", s }'
}

# rss_kb [FIELD]: a /proc/PID/status field of the agent (VmRSS by default), in KiB.
rss_kb() { awk -v f="${1:-VmRSS}:" '$1 == f { print $2 }' "/proc/$agent_pid/status"; }
