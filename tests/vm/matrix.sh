#!/usr/bin/env bash
# The kernel tests on another kernel, in the attach modes this machine's kernel lacks:
# one boot of a Debian kernel under qemu (run-in-vm.sh; SOCKTRACE_VM_KERNEL picks 6.1,
# the default, 6.12 or 5.10) and the passes of SOCKTRACE_VM_PASSES in it, each one
# `dotnet test` of the kernel tests (with the NIC tests, whose bytes this script sends from
# the host into the guest's e1000 NIC) and the differential scenarios
# (tests/SockTrace.Reference.Tests) in one attach mode. A pass is MODE=SET, MODE an
# --attach-mode (auto, kprobe, fentry, tracepoint) and SET one of:
#   all         every kernel test and scenario
#   modes       the classes whose programs differ between kprobe and fentry (the accept, dup,
#               close and fd_install hooks: the other hooks have no kprobe programs, or the same
#               ones in both modes), the io_uring accepts (which the accept hook's kprobe or
#               fentry programs must not count twice) and the scenarios
#   core        all but the pod attribution tests (ContainerCgroupTests: user space, the
#               same on every kernel, run on the host and on one guest)
#   nodelivery  core but the delivery hook's tests (a kernel without socket storage for
#               tracing programs, 5.10, leaves the hook out, as AttachPlanTests checks)
# Default: "kprobe=all fentry=all". Category=Kernel holds the in-process kernel tests; the
# agent-process ones (Category=Agent) start a whole agent per test, minutes each under
# software emulation, and run on the host.
# Expects the solution built in Release (scripts/build.sh). Run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."

host_port=${SOCKTRACE_VM_NIC_HOST_PORT:-18480}
guest_port=8480
bytes=1000000

# One connection a second, each sending exactly $bytes, until the VM is gone. Before
# the guest test listens, qemu's forward resets each connection at once; the test
# accepts one and reads it to the end.
send_forever() {
  while sleep 1; do
    { exec 3<>"/dev/tcp/127.0.0.1/$host_port" && head -c "$bytes" /dev/zero >&3; exec 3>&-; } 2>/dev/null || true
  done
}
send_forever &
sender=$!
trap 'kill $sender 2>/dev/null || true' EXIT

# The built test assemblies, run by path: no MSBuild evaluation of the projects, which
# costs half a minute per run under emulation.
kernel_tests=tests/SockTrace.Tests/bin/Release/net10.0/SockTrace.Tests.dll
# The differential scenarios: each scenario on the model and on this kernel, compared.
differential=tests/SockTrace.Reference.Tests/bin/Release/net10.0/SockTrace.Reference.Tests.dll
# One test class at a time: one emulated CPU gains nothing from parallel classes, and
# each class then sees only its own programs attached.
serial='-- xUnit.ParallelizeTestCollections=false'
# VSTEST_CONNECTION_TIMEOUT: under emulation on a busy host the test host can take more
# than vstest's default 90 s to start, which aborts the run without running a test.
# SOCKTRACE_DIFFERENTIAL_SLACK_MS: a step's thread on the one emulated CPU can wait
# 200 ms to run (Differential.cs); the scenarios' counts stay exact.
passes=${SOCKTRACE_VM_PASSES:-kprobe=all fentry=all}
modes_classes='AcceptPathTests|IoUringAcceptTests|FdRaceTests|UntrackedCallsTests|BoundedStateTests|HookSelfTestTests|AttachPlanTests|DifferentialTests'
filter_of() {
  case $1 in
    all) echo 'Category=Kernel|Category=Nic' ;;
    modes) echo "Category=Kernel&($(sed -E 's/([A-Za-z]+)/FullyQualifiedName~\1/g' <<<"$modes_classes"))" ;;
    core) echo '(Category=Kernel|Category=Nic)&FullyQualifiedName!~ContainerCgroupTests' ;;
    nodelivery) echo '(Category=Kernel|Category=Nic)&FullyQualifiedName!~ContainerCgroupTests&FullyQualifiedName!~DeliveryPathTests&FullyQualifiedName!~AreDeliveredOnceAsNic' ;;
    *) echo "matrix.sh: no test set '$1' (all, modes, core, nodelivery)" >&2; exit 2 ;;
  esac
}
guest_tests="
  rc=0
  export VSTEST_CONNECTION_TIMEOUT=600 SOCKTRACE_DIFFERENTIAL_SLACK_MS=400"
for pass in $passes; do
  mode=${pass%%=*} set=${pass#*=}
  guest_tests+="
  echo '== guest: $mode, $set'
  SOCKTRACE_ATTACH_MODE=$mode dotnet test $kernel_tests $differential --filter '$(filter_of "$set")' $serial || rc=1"
done
guest_tests+="
  exit \$rc"

# A failing test fails the run at once. A guest kernel that crashed or hung (a soft
# lockup panics it: guest-init.sh) is booted once more, and a second crash fails the run.
# Under software emulation one such hang was seen in many runs, with two emulated CPUs
# (now one, run-in-vm.sh): both stuck for good in the .NET runtime's own threads (".NET
# Timer", ".NET Tiered Com"), none of them a thread whose syscalls the programs under test
# trace. scripts/test.sh counts only the last attempt's test results, and reports each
# crashed or hung attempt in its summary line as a failed attempt.
for attempt in 1 2; do
  echo "== guest attempt $attempt"
  rc=0
  SOCKTRACE_TEST_NIC_PORT=$guest_port SOCKTRACE_TEST_NIC_BYTES=$bytes \
  tests/vm/run-in-vm.sh --nic "$host_port:$guest_port" --timeout "${SOCKTRACE_VM_TIMEOUT:-1500}" \
    -- sh -c "$guest_tests" || rc=$?
  case $rc in
    124 | 125) echo "matrix.sh: the guest kernel crashed or hung (run-in-vm.sh exit $rc)" >&2 ;;
    *) exit "$rc" ;;
  esac
done
exit "$rc"
