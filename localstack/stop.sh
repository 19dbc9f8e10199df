#!/usr/bin/env bash
# Stops the LocalStack that start.sh started: by PID (SIGTERM, 20 s grace, then SIGKILL) or compose down.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${PIPELINE_STATE_DIR:-.state}
MODE=$(cat "$STATE/localstack.mode" 2>/dev/null || echo none)
if [[ $MODE == docker ]]; then
  docker compose -f localstack/docker-compose.yml down
elif [[ -f $STATE/localstack.pid ]]; then
  PID=$(cat "$STATE/localstack.pid")
  # setsid made it a process group leader: signal the group so its children stop too.
  kill -TERM -- "-$PID" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$PID" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$PID" 2>/dev/null || true
  rm -f "$STATE/localstack.pid"
fi
rm -f "$STATE/localstack.mode"
