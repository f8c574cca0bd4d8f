#!/usr/bin/env bash
# Sets up, builds and runs the agent on this machine. Arguments go to the agent,
# e.g. scripts/run.sh --urls http://127.0.0.1:9464
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec dotnet run --no-build -c Release --project agent/SockTrace.Agent -- "$@"
