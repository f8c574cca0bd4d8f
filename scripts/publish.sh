#!/usr/bin/env bash
# Builds (through scripts/build.sh) and publishes the agent into one folder, ready for
# `dotnet socktrace.dll`: the Dockerfile and the systemd install use this.
# Usage: scripts/publish.sh [OUTPUT_DIR]   (default: out/)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out}"
scripts/build.sh
dotnet publish agent/SockTrace.Agent -c Release --no-build -nologo -v quiet -o "$out"
