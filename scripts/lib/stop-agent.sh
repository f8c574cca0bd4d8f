# Sourced by the benchmark scripts. stop_agent: TERM the agent the script started
# ($agent_pid) and wait for it to exit; does nothing when none runs.
stop_agent() {
  if [[ -n $agent_pid ]]; then
    kill -TERM "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
    agent_pid=
  fi
}
