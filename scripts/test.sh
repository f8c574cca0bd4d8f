#!/usr/bin/env bash
# Sets up, builds and runs every test: unit and kernel tests on this machine's kernel,
# then the kernel tests on Debian's 5.10, 6.1 and 6.12 under qemu (tests/vm). Run as root.
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
# The kernel matrix (tests/vm): Debian's 6.1 (close() ends in close_fd(); no
# bpf_rdonly_cast, so the programs' field-by-field reads), 6.12 (file_close_fd(); typed
# loads) and 5.10 (Debian's, with 5.15's io_uring: no task or socket storage for tracing
# programs, no bpf_task_pt_regs). Each guest is one emulated CPU, so two run at once, one
# chain each: each 6.x kernel gets every test in fentry mode (the pod attribution tests, the
# same on every kernel, on 6.12 alone) and the classes whose programs differ in kprobe mode
# (tests/vm/matrix.sh); 5.10 gets what a 5.10 node runs (auto: fentry, kprobe for
# listen_overflow) and kprobe mode for those classes, one in each chain. Each guest's lines
# are prefixed with its name as they come.
guest() {
  local name=$1 kernel=$2 port=$3 passes=$4
  { SOCKTRACE_VM_KERNEL=$kernel SOCKTRACE_VM_NIC_HOST_PORT=$port SOCKTRACE_VM_PASSES=$passes tests/vm/matrix.sh 2>&1 || echo "== guest-$name failed"; } |
    tee "$results/guest-$name.log" | sed -u "s/^/[guest-$name] /"
}
echo "== guest-6.12 then guest-5.10-kprobe, beside guest-6.1 then guest-5.10-auto"
{ guest 6.12 6.12 18481 "fentry=all kprobe=modes"; guest 5.10-kprobe 5.10 18482 "kprobe=modes"; } &
{ guest 6.1 6.1 18480 "fentry=core kprobe=modes"; guest 5.10-auto 5.10 18483 "auto=nodelivery"; } &
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
