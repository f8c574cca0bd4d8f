#!/usr/bin/env bash
# Installs what building and running SockTrace needs on a Debian machine with the
# .NET SDK: the BPF toolchain (clang, llvm-strip, bpftool), libbpf, make, what the
# native agent's link needs (clang again, zlib; scripts/publish.sh), and liburing for the
# io_uring workload the kernel tests build.
# Idempotent and quick when everything is present. Run as root.
set -euo pipefail

packages=(clang llvm libbpf-dev libbpf1 bpftool make zlib1g-dev liburing-dev "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v dotnet >/dev/null || { echo "setup: dotnet (the .NET 10 SDK) is not on PATH" >&2; exit 1; }
