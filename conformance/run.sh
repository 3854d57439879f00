#!/usr/bin/env bash
# make conformance: start the gateway on the embedded store with a fixed dev
# secret, take the coordinator's printed token, run the graphql-http audits.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/gateway" ..
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18473)
APP_ENV=development ADDR="127.0.0.1:$port" DATA_DIR="$work/data" \
  JWT_HS256_SECRET="conformance-secret-conformance-secret" \
  "$work/gateway" >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
token=$(sed -n 's/^  coordinator: *//p' "$work/out")
[ -n "$token" ] || { echo "no dev token printed"; cat "$work/err"; exit 1; }
node audit.mjs "http://127.0.0.1:$port/graphql" "$token"
