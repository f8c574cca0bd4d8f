#!/usr/bin/env bash
# Sets up, publishes and runs the agent on this machine: the native executable that ships
# (scripts/publish.sh), exec'd itself. Arguments go to the agent,
# e.g. scripts/run.sh --urls http://127.0.0.1:9464
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/publish.sh out >&2
exec out/socktrace "$@"
