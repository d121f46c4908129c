#!/bin/sh
# The whole test suite: unit tests, the conformance suite on Bun, Node-uWS and Deno (NATS and Redis),
# multi-node, faults, the compiled binary, request/reply and the client SDK (also in
# headless Chromium). Installs what a fresh machine lacks.
# Ends with one line: tests: N passed, M failed[, K skipped]
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/bun ] || [ ! -x node_modules/.bin/deno ] || [ ! -d node_modules/playwright-core ]; then
  echo "test.sh: npm dependencies missing; running npm install"
  npm install --no-audit --no-fund || { echo "tests: 0 passed, 1 failed"; exit 1; }
fi

if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  echo "test.sh: nats-server not found; installing Debian's nats-server package"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y nats-server >/dev/null 2>&1 || { $sudo_cmd apt-get update >/dev/null 2>&1 && $sudo_cmd apt-get install -y nats-server >/dev/null 2>&1; } || {
    echo "test.sh: could not install nats-server (apt-get install -y nats-server failed)"
    echo "tests: 0 passed, 1 failed"
    exit 1
  }
fi
# The Redis backplane's tests start their own redis-server (Debian's package, 7.0 or later).
if ! command -v redis-server >/dev/null 2>&1; then
  echo "test.sh: redis-server not found; installing Debian's redis-server package"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y redis-server >/dev/null 2>&1 || { $sudo_cmd apt-get update >/dev/null 2>&1 && $sudo_cmd apt-get install -y redis-server >/dev/null 2>&1; } || {
    echo "test.sh: could not install redis-server (apt-get install -y redis-server failed)"
    echo "tests: 0 passed, 1 failed"
    exit 1
  }
fi
# The browser test drives Debian's Chromium (playwright-core downloads no browser of its own).
if [ ! -x /usr/bin/chromium ]; then
  echo "test.sh: chromium not found; installing Debian's chromium package for the browser test"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y chromium >/dev/null 2>&1 || { $sudo_cmd apt-get update >/dev/null 2>&1 && $sudo_cmd apt-get install -y chromium >/dev/null 2>&1; } || {
    echo "test.sh: could not install chromium (apt-get install -y chromium failed)"
    echo "tests: 0 passed, 1 failed"
    exit 1
  }
fi
# Debian puts it in /usr/sbin, which is not on every user's PATH.
PATH="$PATH:/usr/sbin"
export PATH

log=$(mktemp)
# sh has no pipefail: the runner's own exit status travels through a file.
{ node_modules/.bin/bun test --timeout 90000 "$@"; echo $? > "$log.rc"; } 2>&1 | tee "$log"
status=$(cat "$log.rc" 2>/dev/null || echo 1)
# The runner's own summary: " N pass", " N fail", " N skip", and load errors.
passed=$(grep -E '^ *[0-9]+ pass$' "$log" | tail -1 | tr -dc '0-9')
failed=$(grep -E '^ *[0-9]+ fail$' "$log" | tail -1 | tr -dc '0-9')
skipped=$(grep -E '^ *[0-9]+ skip$' "$log" | tail -1 | tr -dc '0-9')
errors=$(grep -E '^ *[0-9]+ errors?$' "$log" | tail -1 | tr -dc '0-9')
rm -f "$log" "$log.rc"
passed=${passed:-0}
failed=$(( ${failed:-0} + ${errors:-0} ))
[ "$passed" -eq 0 ] && [ "$failed" -eq 0 ] && failed=1 # no test ran at all is a failure
line="tests: $passed passed, $failed failed"
[ -n "$skipped" ] && [ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
