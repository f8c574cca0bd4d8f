#!/usr/bin/env bash
# Installs the build dependencies and builds everything (BPF objects included) in Release.
# The README, the test script, CI and the Dockerfile all build through this file.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
dotnet build SockTrace.sln -c Release -v quiet -nologo "$@"
