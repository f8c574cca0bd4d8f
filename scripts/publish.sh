#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and publishes the agent as one native executable (NativeAOT)
# into a folder, with the helper library beside it: OUTPUT_DIR/socktrace is the agent.
# scripts/run.sh, scripts/test.sh and the Dockerfile use this.
# Usage: scripts/publish.sh [OUTPUT_DIR]   (default: out/)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out}"
scripts/setup.sh
case "$(uname -m)" in
  x86_64) rid=linux-x64 ;;
  aarch64) rid=linux-arm64 ;;
  *) echo "publish.sh: no native build for $(uname -m)" >&2; exit 1 ;;
esac
# The native compiler (ILCompiler) comes from the package registry with the first restore.
dotnet publish agent/SockTrace.Agent -c Release -r "$rid" -nologo -v quiet -o "$out"
