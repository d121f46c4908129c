#!/bin/sh
# Starts the gateway on one runtime: bun (default), node (uWebSockets.js) or deno.
# Every socket is a file descriptor: raise the soft open-files limit to the hard
# limit first, since Node and Deno have no API for it (Bun also raises it itself).
set -e
cd "$(dirname "$0")/.."
runtime="${1:-bun}"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bin=node_modules/.bin
if [ ! -x "$bin/bun" ]; then
  echo "wsgate: dependencies are missing; run 'npm install' first" >&2
  exit 1
fi
run() {
  case "$runtime" in
    bun) exec "$bin/bun" adapters/bun.ts ;;
    # A 2 MB young generation: V8's default lets it grow to tens of MB that an idle
    # gateway then keeps; measured at 10k connections: 4,292 -> 1,618 B/conn after GC.
    node) exec node --max-semi-space-size=2 dist/node-uws.mjs ;;
    deno)
      # Read access to exactly the key and certificate files the configuration names, nothing else.
      reads=""
      for f in "$WSGATE_JWT_PUBLIC_KEY" "$WSGATE_TLS_CERT" "$WSGATE_TLS_KEY" \
        "$NATS_NKEY_SEED_FILE" "$NATS_CREDS_FILE" "$NATS_TLS_CA" "$NATS_TLS_CERT" "$NATS_TLS_KEY"; do
        [ -n "$f" ] && reads="${reads:+$reads,}$f"
      done
      # Sharing the port between workers (reusePort) is still behind --unstable-net on Deno 2.
      exec "$bin/deno" run --quiet --allow-net --allow-env --allow-ffi ${reads:+"--allow-read=$reads"} \
        ${WSGATE_WORKER:+--unstable-net} adapters/deno.ts ;;
  esac
}

case "$runtime" in
  bun|node|deno) ;;
  *) echo "usage: scripts/start.sh [bun|node|deno]" >&2; exit 2 ;;
esac
if [ "$runtime" = node ]; then
  # Node 20 cannot run TypeScript: bundle the adapter with Bun once, keep the native addon external.
  if [ ! -f dist/node-uws.mjs ] || [ -n "$(find app adapters -newer dist/node-uws.mjs -name '*.ts' | head -1)" ]; then
    "$bin/bun" build adapters/node-uws.ts --target=node --format=esm --external @trufflesuite/uws-js-unofficial \
      --outfile dist/node-uws.mjs >/dev/null
  fi
fi

# WSGATE_WORKERS=N: N gateway processes share the port (SO_REUSEPORT), each a node of its
# own on NATS, so one host holds more sockets than one process's open-files limit allows.
# The gateway itself validates the value; anything that is not a number above 1 runs one process.
workers="${WSGATE_WORKERS:-1}"
if [ -z "$WSGATE_WORKER" ] && [ "$workers" -gt 1 ] 2>/dev/null; then
  pids=""
  i=1
  while [ "$i" -le "$workers" ]; do
    (WSGATE_WORKER=$i; export WSGATE_WORKER; run) &
    pids="$pids $!"
    i=$((i + 1))
  done
  trap 'kill -TERM $pids 2>/dev/null' TERM INT
  status=0
  for pid in $pids; do
    # A trapped signal interrupts wait (status > 128): wait again until the worker has
    # really gone (a zombie still answers kill -0), then its own status counts.
    while :; do
      rc=0
      wait "$pid" || rc=$?
      kill -0 "$pid" 2>/dev/null || break
    done
    [ "$rc" -eq 0 ] || status=$rc
  done
  exit "$status"
fi
run
