#!/usr/bin/env bash
# OCI conformance with token authentication on: an auth file made with the CLI in a temp dir (one
# user with pull, push and delete on every repository), Berth started with --auth-file, and both
# suites given the credentials (OCI_USERNAME/OCI_PASSWORD), so every request goes through the
# 401 -> /token -> Bearer dance.
#
#   bash test/e2e/conformance-auth.sh            # local server (npm start), filesystem storage
#   bash test/e2e/conformance-auth.sh --lambda   # Lambda bundle behind the local gateway, on MinIO
#                                                # (conformance-lambda.sh: builds, starts MinIO)
#
# Other settings as in conformance.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-local}
case "$mode" in
  local | --lambda) ;;
  *)
    echo "usage: $0 [--lambda]" >&2
    exit 2
    ;;
esac

dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-conformance-auth.XXXXXX")
trap 'rm -rf "$dir"' EXIT
auth="$dir/auth.json"
user=conformance
password=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$password" |
  npx tsx bin/berth.ts users add "$user" --password-stdin --grant '*:pull,push,delete' --auth-file "$auth"

export OCI_USERNAME=$user OCI_PASSWORD=$password
export BERTH_SERVE_ARGS="--auth-file $auth ${BERTH_SERVE_ARGS:-}"
if [ "$mode" = --lambda ]; then
  # Blob GETs are redirected to presigned MinIO URLs. Go clients (the suites) keep the Authorization
  # header on a redirect to the same host name, whatever the port, and S3 refuses a presigned URL
  # that also carries one (400 "multiple authentication types"). On AWS the bucket's host differs
  # from the API's; here the presigned URLs name MinIO as localhost for the same effect.
  npm run build
  export BERTH_SERVE_ARGS="--lambda $BERTH_SERVE_ARGS"
  export OCI_API_BLOBS_DIGEST_HEADER="${OCI_API_BLOBS_DIGEST_HEADER:-false}"
  # shellcheck disable=SC2016 # expanded by the inner shell, inside with-s3.ts
  npx tsx test/e2e/with-s3.ts bash -c \
    'BERTH_S3_ENDPOINT=${BERTH_S3_ENDPOINT/127.0.0.1/localhost} exec bash test/e2e/conformance.sh'
else
  bash test/e2e/conformance.sh
fi
