#!/usr/bin/env bash
# Starts LocalStack on 127.0.0.1:4566: in Docker when a daemon answers, on the host otherwise.
# Writes the PID (host mode) or container name (Docker) under .state/ and returns once healthy.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${PIPELINE_STATE_DIR:-.state}
mkdir -p "$STATE"
PORT=${LOCALSTACK_PORT:-4566}
HEALTH="http://127.0.0.1:$PORT/_localstack/health"
if curl -fsS "$HEALTH" >/dev/null 2>&1; then
  echo "LocalStack already answers on $HEALTH" >&2
  exit 0
fi
if docker info >/dev/null 2>&1; then
  echo "==> starting LocalStack in Docker"
  docker compose -f localstack/docker-compose.yml up -d
  echo docker > "$STATE/localstack.mode"
else
  localstack/install.sh
  echo "==> starting LocalStack in host mode (no Docker daemon)"
  GATEWAY_LISTEN=127.0.0.1:$PORT GATEWAY_SERVER=hypercorn LOCALSTACK_HOST=127.0.0.1:$PORT DNS_ADDRESS=0 \
  DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 KINESIS_PERSISTENCE=0 SERVICES=${SERVICES:-s3,sqs,kinesis,cloudformation,cloudwatch,firehose,iam,sts,logs} \
  LOCALSTACK_VOLUME_DIR="$(cd "$STATE" && pwd)/localstack" \
    setsid .venv-localstack/bin/python -m localstack.runtime.main > "$STATE/localstack.log" 2>&1 &
  echo $! > "$STATE/localstack.pid"
  echo host > "$STATE/localstack.mode"
fi
for _ in $(seq 1 120); do
  if curl -fsS "$HEALTH" >/dev/null 2>&1; then echo "LocalStack healthy on 127.0.0.1:$PORT"; exit 0; fi
  if [[ -f $STATE/localstack.pid ]] && ! kill -0 "$(cat "$STATE/localstack.pid")" 2>/dev/null; then
    echo "LocalStack exited during startup; see $STATE/localstack.log" >&2; tail -20 "$STATE/localstack.log" >&2; exit 1
  fi
  sleep 0.5
done
echo "LocalStack not healthy after 60 s; see $STATE/localstack.log" >&2
exit 1
