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
case "$runtime" in
  bun) exec "$bin/bun" adapters/bun.ts ;;
  node)
    # Node 20 cannot run TypeScript: bundle the adapter with Bun once, keep the native addon external.
    if [ ! -f dist/node-uws.mjs ] || [ -n "$(find app adapters -newer dist/node-uws.mjs -name '*.ts' | head -1)" ]; then
      "$bin/bun" build adapters/node-uws.ts --target=node --format=esm --external @trufflesuite/uws-js-unofficial \
        --outfile dist/node-uws.mjs >/dev/null
    fi
    exec node dist/node-uws.mjs ;;
  deno)
    # Read access to exactly the key and certificate files the configuration names, nothing else.
    reads=""
    for f in "$WSGATE_JWT_PUBLIC_KEY" "$WSGATE_TLS_CERT" "$WSGATE_TLS_KEY"; do
      [ -n "$f" ] && reads="${reads:+$reads,}$f"
    done
    exec "$bin/deno" run --quiet --allow-net --allow-env --allow-ffi ${reads:+"--allow-read=$reads"} adapters/deno.ts ;;
  *) echo "usage: scripts/start.sh [bun|node|deno]" >&2; exit 2 ;;
esac
