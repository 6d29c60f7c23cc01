#!/usr/bin/env bash
# OCI conformance through the Lambda path: the built registry bundle behind the local API Gateway
# (`berth serve --lambda`), on a private MinIO (S3 driver), blob GETs redirected to presigned URLs.
#
#   bash test/e2e/conformance-lambda.sh
#
# Same settings as conformance.sh. The final response of a redirected blob GET comes from S3 and
# cannot carry Docker-Content-Digest, hence OCI_API_BLOBS_DIGEST_HEADER=false.
set -euo pipefail
cd "$(dirname "$0")/../.."
npm run build
export BERTH_SERVE_ARGS="--lambda ${BERTH_SERVE_ARGS:-}"
export OCI_API_BLOBS_DIGEST_HEADER="${OCI_API_BLOBS_DIGEST_HEADER:-false}"
exec npx tsx test/e2e/with-s3.ts bash test/e2e/conformance.sh
