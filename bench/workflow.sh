#!/usr/bin/env bash
# Measures verification sessions per second through the platform and the
# platform's CPU time per session: BenchmarkWorkflowPlatform in
# internal/e2e builds the binary, starts it on embedded defaults (rate limits
# off) with the DocReader and FaceAPI stand-ins and a webhook receiver in the
# test process, and runs the sessions of a stored four-step workflow from 16
# clients over HTTPS (create, upload the document's front and a selfie, wait
# for the decision's webhook).
#   bench/workflow.sh [sessions] [count] [variant]
# sessions per measurement (default 1000; the clients keep 16 sessions in
# flight, so a few hundred at least make the figure a steady state), count
# measurements of each variant (default 3), variant a regexp over
# roles=all|split / img=small|id1 (default: every variant).
set -euo pipefail
cd "$(dirname "$0")/.."
sessions=${1:-1000}
count=${2:-3}
variant=${3:-}
nproc=$(nproc 2>/dev/null || echo '?')
# The data directories (and the binary) go to bench/.tmp unless TMPDIR is
# given: the system's temporary directory is where every build and test
# creates and removes files, and on a filesystem without a journal ext4 makes
# each new file skip, one by one, the inodes freed in the last 35 seconds,
# which the platform's file creations would pay for (see the benchmark).
export TMPDIR=${TMPDIR:-$PWD/bench/.tmp}
mkdir -p "$TMPDIR"
echo "$nproc CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
go test -run '^$' -bench "BenchmarkWorkflowPlatform/${variant}" -benchtime "${sessions}x" -count "$count" \
  -timeout 60m ./internal/e2e
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
