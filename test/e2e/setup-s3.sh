#!/usr/bin/env bash
# Installs the S3-compatible server that the S3 storage tests start (test/storage/s3-server.ts):
# MinIO, built from source with `go install` into $BERTH_CACHE/bin/minio (MinIO publishes no module
# releases, so the version is the pseudo-version of a pinned commit). Idempotent: skipped when that
# version is already built. Needs Go >= 1.24 on PATH.
#
# On the 2-core dev machine a fresh build (empty module and build caches) took ~4.5 min; the S3 tests
# start the server in about a second.
#
# Environment:
#   BERTH_CACHE     cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/berth)
#   MINIO_VERSION   module version to build (default below)
set -euo pipefail

MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}" # github.com/minio/minio, 2026-02-12

BERTH_CACHE="${BERTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}"
BIN="$BERTH_CACHE/bin"
STAMP="$BIN/.minio.version"
MODVER="github.com/minio/minio@$MINIO_VERSION"
mkdir -p "$BIN"

log() { printf '[setup-s3] %s\n' "$*" >&2; }

if [ -x "$BIN/minio" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$MODVER" ]; then
  log "minio already built ($MODVER)"
else
  command -v go >/dev/null || { log "go not found on PATH"; exit 1; }
  log "go install $MODVER"
  t0=$(date +%s)
  GOBIN="$BIN" GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0 go install "$MODVER"
  printf '%s\n' "$MODVER" >"$STAMP"
  log "minio built in $(($(date +%s) - t0)) s"
fi

"$BIN/minio" --version | head -n 2
