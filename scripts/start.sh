#!/bin/sh
# Starts the gateway on one runtime: bun (default), node (uWebSockets.js) or deno; further
# arguments go to the gateway's command line (`npm start -- --help`). Every path ends in
# `exec`, so a SIGTERM to this process reaches the gateway (or its supervisor) itself.
# Every socket is a file descriptor: raise the soft open-files limit to the hard
# limit first, since Node and Deno have no API for it (Bun also raises it itself).
set -e
cd "$(dirname "$0")/.."
runtime="${1:-bun}"
[ $# -gt 0 ] && shift
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bin=node_modules/.bin
if [ ! -x "$bin/bun" ]; then
  echo "wsgate: dependencies are missing; run 'npm install' first" >&2
  exit 1
fi
run() {
  case "$runtime" in
    # No implicit .env from the working directory: every runtime reads only the environment
    # (the gateway's --env-file option reads a file when asked).
    bun) exec "$bin/bun" --no-env-file adapters/bun.ts "$@" ;;
    # A 2 MB young generation: V8's default lets it grow to tens of MB that an idle
    # gateway then keeps; measured at 10k connections: 4,292 -> 1,618 B/conn after GC.
    # NODE_BIN picks the Node binary (the tests run Node 20, 22 and 24 side by side).
    node) exec "${NODE_BIN:-node}" --max-semi-space-size=2 dist/node-uws.mjs "$@" ;;
    deno)
      # Read access to exactly the key and certificate files the configuration names, nothing else.
      reads=""
      for f in "$WSGATE_JWT_PUBLIC_KEY" "$WSGATE_TLS_CERT" "$WSGATE_TLS_KEY" \
        "$NATS_NKEY_SEED_FILE" "$NATS_CREDS_FILE" "$NATS_TLS_CA" "$NATS_TLS_CERT" "$NATS_TLS_KEY"; do
        [ -n "$f" ] && reads="${reads:+$reads,}$f"
      done
      # No FFI (it would grant everything) and no /proc (Deno reads /proc/self only under
      # --allow-all): the open-files limit raised above is handed over instead.
      # Sharing the port between workers (reusePort) is still behind --unstable-net on Deno 2.
      WSGATE_OPEN_FILES_LIMIT="$(ulimit -n)" exec "$bin/deno" run --quiet --allow-net --allow-env ${reads:+"--allow-read=$reads"} \
        ${WSGATE_WORKER:+--unstable-net} adapters/deno.ts "$@" ;;
  esac
}

case "$runtime" in
  bun|node|deno) ;;
  *) echo "usage: scripts/start.sh [bun|node|deno] [gateway arguments, see --help]" >&2; exit 2 ;;
esac
if [ "$runtime" = node ]; then
  # Node 20 cannot run TypeScript: bundle the adapter with Bun once, keep the native addon external.
  if [ ! -f dist/node-uws.mjs ] || [ -n "$(find app adapters protocol -newer dist/node-uws.mjs -name '*.ts' | head -1)" ]; then
    "$bin/bun" build adapters/node-uws.ts --target=node --format=esm --external @btc-vision/uwebsockets.js --external uws-pack \
      --outfile dist/node-uws.mjs >/dev/null
  fi
fi

# WSGATE_WORKERS=N: N gateway processes share the port (SO_REUSEPORT), each a node of its
# own on NATS, so one host holds more sockets than one process's open-files limit allows.
# The supervisor restarts a crashed worker with backoff and forwards SIGTERM to all of them;
# each worker comes back through this script with WSGATE_WORKER set. The gateway itself
# validates the value; anything that is not a number above 1 runs one process.
workers="${WSGATE_WORKERS:-1}"
if [ -z "$WSGATE_WORKER" ] && [ "$workers" -gt 1 ] 2>/dev/null; then
  exec "$bin/bun" --no-env-file scripts/supervise.ts sh scripts/start.sh "$runtime" "$@"
fi
run "$@"
