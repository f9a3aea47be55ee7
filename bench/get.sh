#!/usr/bin/env bash
# Measures authenticated GET /api/v1/sessions/{id} per second on loopback,
# against the built binary on embedded defaults (all five roles in one
# process), with bench/loadgen as the load generator in a separate process.
#   bench/get.sh [connections] [seconds]
# The per-principal and per-address rate limits are switched off for the run
# (they exist to stop exactly this kind of flood).
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-64}
secs=${2:-15}
mkdir -p bin
go build -trimpath -o bin/idvault ./cmd/idvault
go build -trimpath -o bin/loadgen ./bench/loadgen
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$((20000 + RANDOM % 20000))
export IDVAULT_DATADIR="$dir" IDVAULT_API__LISTEN="127.0.0.1:$port" IDVAULT_API__RATELIMIT__ENABLED=false IDVAULT_LOG__LEVEL=warn
init=$(./bin/idvault init --json)
key=$(printf '%s' "$init" | sed -n 's/.*"apiKey":"\([^"]*\)".*/\1/p')
./bin/idvault serve >"$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -ksf "https://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
session=$(curl -ksf -X POST -H "Authorization: ApiKey $key" -H 'Content-Type: application/json' \
  -d '{"workflowId":"document-selfie-review"}' "https://127.0.0.1:$port/api/v1/sessions" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
echo "server pid $pid, session $session, $conns connections, ${secs}s"
./bin/loadgen -insecure -c "$conns" -d "${secs}s" -H "Authorization: ApiKey $key" \
  -url "https://127.0.0.1:$port/api/v1/sessions/$session"
