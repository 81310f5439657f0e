#!/usr/bin/env bash
# Every test: installs what the tests need (Debian's Chromium, Firefox ESR, PostgreSQL, Redis and coturn when missing), builds, type-checks, runs;
# then the unit and integration suites again on Node's current LTS (scripts/test-lts.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v firefox-esr >/dev/null 2>&1 || need_apt+=(firefox-esr)
# The store, cluster and TURN tests start these on loopback themselves (never as services).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v turnserver >/dev/null 2>&1 || need_apt+=(coturn)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "Installing ${need_apt[*]} from Debian…"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
[ -d node_modules ] || npm ci

node scripts/start.mjs --build-only --build
npx tsc --noEmit -p .

mapfile -t files < <(find test -name '*.test.ts' | sort)
# --test-force-exit: a test file whose tests have all finished sometimes never exits, held by
# node-datachannel's native callbacks with no JavaScript handle left (seen with media-workers.test.ts,
# group.test.ts and, on Node 24, bot.test.ts; it replaces the process.exit() timers group and budget
# tests kept for this); without it one such file holds up the run for ever.
# --test-timeout: no single test may hang the run either (the longest, the group call, takes up to 7
# minutes; a describe() timeout does not bound the tests inside it).
node --import tsx --test --test-force-exit --test-timeout=600000 "${files[@]}"

# Node 20 left support in April 2026: the unit and integration suites also run on the current LTS.
exec scripts/test-lts.sh
