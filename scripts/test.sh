#!/usr/bin/env bash
# Sets up, builds and runs every test: unit and kernel tests on this machine's kernel,
# then the same kernel tests on Debian's 6.1 and 6.12 under qemu (tests/vm). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0

# Runs one dotnet test invocation, keeping its summary line for the total at the end.
run() {
  local name=$1; shift
  echo "== $name"
  if ! "$@" 2>&1 | tee "$results/$name.log"; then status=1; fi
}

# The native agent that ships, for the tests that run it (AgentBuild.Native).
echo "== publish"
scripts/publish.sh out
# Category=Nic needs a real NIC driver: it runs in the guest, below.
run host dotnet test SockTrace.sln -c Release --no-build -nologo --filter 'Category!=Nic'
# 6.1: close() ends in close_fd(); 6.12: in file_close_fd() (bpf/fdrace.bpf.c).
# Both kernels at once: each guest is one emulated CPU, and this machine has nothing else
# to run meanwhile. Each guest's lines are prefixed with its name as they come.
guest() {
  local kernel=$1 port=$2
  { SOCKTRACE_VM_KERNEL=$kernel SOCKTRACE_VM_NIC_HOST_PORT=$port tests/vm/matrix.sh 2>&1 || echo "== guest-$kernel failed"; } |
    tee "$results/guest-$kernel.log" | sed -u "s/^/[guest-$kernel] /"
}
echo "== guest-6.1 and guest-6.12"
guest 6.1 18480 &
guest 6.12 18481 &
wait
if grep -q '^== guest-.* failed$' "$results"/guest-*.log; then status=1; fi

passed=0 failed=0 attempts=0 lost=0
for log in "$results"/*.log; do
  # A guest that crashed or hung and was booted again is a failed attempt, never hidden.
  attempts=$((attempts + $(grep -c '^== guest attempt' "$log" || true)))
  lost=$((lost + $(grep -c '^matrix.sh: the guest kernel crashed or hung' "$log" || true)))
  while read -r f p; do passed=$((passed + p)); failed=$((failed + f)); done < <(
    # tests/vm/matrix.sh may boot the guest twice: only its last attempt counts.
    awk '/^== guest attempt/ { n = 0 } { line[n++] = $0 } END { for (i = 0; i < n; i++) print line[i] }' "$log" |
      sed -nE 's/.*Failed:[[:space:]]+([0-9]+), Passed:[[:space:]]+([0-9]+),.*/\1 \2/p')
done
echo "tests: $passed passed, $failed failed; guest boots: $attempts, $lost failed (crashed or hung)"
if ((failed > 0 || passed == 0)); then status=1; fi
exit $status
