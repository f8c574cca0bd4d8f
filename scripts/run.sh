#!/usr/bin/env bash
# Sets up, builds and runs the agent on this machine. Arguments go to the agent,
# e.g. scripts/run.sh --urls http://127.0.0.1:9464
# The built agent is exec'd itself (its apphost): `dotnet run` would keep a second .NET
# process of its own (about 125 MiB) alive beside the agent for as long as it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec agent/SockTrace.Agent/bin/Release/net10.0/socktrace "$@"
