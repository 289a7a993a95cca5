#!/usr/bin/env bash
# make run: a local Redis with persistence (data in .run/redis, git-ignored)
# and consentd in front of it. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUN_DIR=.run
REDIS_PORT=${RUN_REDIS_PORT:-6381}
HTTP_ADDR=${CONSENTD_HTTP_ADDR:-127.0.0.1:8080}
GRPC_ADDR=${CONSENTD_GRPC_ADDR:-127.0.0.1:9090}
mkdir -p "$RUN_DIR/redis"

# Demo keys, made once (a kind missing from an older file is added). A real
# deployment brings its own (see README).
(
  umask 077
  for kind in hmac encryption token; do
    grep -qs "^${kind}_keys:" "$RUN_DIR/keys.yaml" ||
      printf '%s_keys:\n  - id: demo\n    secret: %s\n' "$kind" "$(head -c 32 /dev/urandom | base64)" >>"$RUN_DIR/keys.yaml"
  done
)

# A demo API key for the privacy console (admin: every screen works), made
# once; the keys file holds only its SHA-256, as in production.
if [ ! -s "$RUN_DIR/console-key" ]; then
  (umask 077; printf 'demo_%s' "$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')" >"$RUN_DIR/console-key")
  printf 'keys:\n  - name: console-demo\n    hash: sha256:%s\n    scopes: [admin]\n' \
    "$(sha256sum <"$RUN_DIR/console-key" | cut -d' ' -f1)" >"$RUN_DIR/api-keys.yaml"
fi
CONSOLE_KEY=$(cat "$RUN_DIR/console-key")

# appendfsync always: no acknowledged write is lost if the machine crashes.
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$PWD/$RUN_DIR/redis" \
  --appendonly yes --appendfsync always --save "" --daemonize no \
  --logfile "$PWD/$RUN_DIR/redis.log" &
redis_pid=$!
consentd_pid=
stop() {
  trap - INT TERM EXIT
  [ -n "$consentd_pid" ] && kill -TERM "$consentd_pid" 2>/dev/null && wait "$consentd_pid" 2>/dev/null || true
  kill -TERM "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
  echo "stopped consentd and Redis (data kept in $RUN_DIR/redis)"
}
trap stop INT TERM EXIT

for _ in $(seq 50); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  kill -0 "$redis_pid" 2>/dev/null || { echo "redis-server failed to start; see $RUN_DIR/redis.log"; exit 1; }
  sleep 0.1
done

# Demo mode: calls without credentials are allowed, so the walk-through in
# the README works with plain curl. Calls that do send credentials are still
# checked. Never use --demo in production.
./consentd --demo --demo-site sdk-js --redis-url "redis://127.0.0.1:$REDIS_PORT/0" --keys-file "$RUN_DIR/keys.yaml" \
  --api-keys-file "$RUN_DIR/api-keys.yaml" --http-addr "$HTTP_ADDR" --grpc-addr "$GRPC_ADDR" --log-format text --drain-delay 0s &
consentd_pid=$!

for _ in $(seq 50); do
  curl -fsS "http://$HTTP_ADDR/readyz" >/dev/null 2>&1 && break
  kill -0 "$consentd_pid" 2>/dev/null || { echo "consentd failed to start"; exit 1; }
  sleep 0.1
done

cat <<MSG

consentd is running in DEMO MODE: calls without credentials are allowed (Ctrl-C stops it and Redis):
  demo page     http://$HTTP_ADDR/demo/   (a shop article using the SDK)
  console       http://$HTTP_ADDR/console/   (sign in with the demo API key $CONSOLE_KEY)
  REST API      http://$HTTP_ADDR/v1/policy
  OpenAPI       http://$HTTP_ADDR/openapi.json
  gRPC          $GRPC_ADDR   (reflection on: grpcurl -plaintext $GRPC_ADDR list)
  health        http://$HTTP_ADDR/healthz   http://$HTTP_ADDR/readyz
  metrics       http://$HTTP_ADDR/metrics
  Redis         redis://127.0.0.1:$REDIS_PORT/0 (AOF in $RUN_DIR/redis)

MSG
wait "$consentd_pid"
