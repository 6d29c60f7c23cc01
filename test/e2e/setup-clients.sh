#!/usr/bin/env bash
# Installs the real registry clients that the end-to-end client harness (test/e2e/clients/) drives.
# Idempotent: run it on a fresh machine or again on one that already has everything.
#
#   apt (Debian 12): docker.io (dockerd + docker CLI), podman, buildah, skopeo, containerd (ctr),
#                    uidmap, fuse-overlayfs, and docker-registry (the reference registry the harness
#                    was validated against; never started as a service) with apache2-utils
#                    (htpasswd, for running the reference with credentials); runc (BuildKit's OCI
#                    worker) and chromium (the CORS test drives it headless with playwright-core).
#   go install:      crane, oras, regctl, cosign, buildkitd + buildctl, helm and ko at pinned versions
#                    into $BERTH_CACHE/bin (default ~/.cache/berth/bin), each skipped when that
#                    version is already built.
#
# Environment:
#   BERTH_CACHE        cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/berth)
#   BERTH_SKIP_APT=1   do not touch apt (for machines where the packages come from elsewhere)
#   BERTH_SKIP_GO=1    do not build the Go clients
#
# Prints the binaries' versions at the end. Measured on the 2-core dev machine: apt ~30 s; a fresh
# `go install` (empty module and build caches) of crane 25 s, oras 25 s, regctl 22 s, cosign 270 s;
# about 5 min for all four in one go (they share some modules), then 0.4 s for a re-run;
# buildkitd + buildctl (one go install) 400 s, helm 436 s, ko 182 s more (measured while other builds
# shared the CPU).
set -euo pipefail

CRANE_VERSION="${CRANE_VERSION:-v0.22.1}"   # github.com/google/go-containerregistry
ORAS_VERSION="${ORAS_VERSION:-v1.3.6}"      # oras.land/oras
REGCTL_VERSION="${REGCTL_VERSION:-v0.11.7}" # github.com/regclient/regclient
COSIGN_VERSION="${COSIGN_VERSION:-v2.6.5}"  # github.com/sigstore/cosign/v2
BUILDKIT_VERSION="${BUILDKIT_VERSION:-v0.18.2}" # github.com/moby/buildkit (buildkitd, buildctl)
HELM_VERSION="${HELM_VERSION:-v3.21.4}"     # helm.sh/helm/v3
KO_VERSION="${KO_VERSION:-v0.19.1}"         # github.com/google/ko

BERTH_CACHE="${BERTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}"
BIN="$BERTH_CACHE/bin"
mkdir -p "$BIN"

log() { printf '[setup-clients] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# ---------------------------------------------------------------- apt
APT_PACKAGES=(docker.io podman buildah skopeo containerd uidmap fuse-overlayfs docker-registry apache2-utils runc chromium)
APT_BINARIES=(dockerd podman buildah skopeo ctr containerd newuidmap fuse-overlayfs docker-registry htpasswd runc chromium)

apt_needed() {
  local b
  for b in "${APT_BINARIES[@]}"; do
    if [ ! -x "/usr/bin/$b" ] && [ ! -x "/usr/sbin/$b" ]; then return 0; fi
  done
  return 1
}

if [ "${BERTH_SKIP_APT:-}" != 1 ] && apt_needed; then
  log "installing ${APT_PACKAGES[*]} from apt"
  # Keep package scripts from starting dockerd/containerd/docker-registry as system services:
  # the harness starts private instances and must be the only one using them.
  policy_created=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    policy_created=1
  fi
  trap '[ -n "${policy_created:-}" ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q \
    "${APT_PACKAGES[@]}" iptables ca-certificates
  if [ -n "$policy_created" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; policy_created=""; fi
else
  log "apt packages already present (or BERTH_SKIP_APT=1)"
fi

# ---------------------------------------------------------------- go install
go_tool() { # name module@version [more packages@version of the same module, built in one go]
  local name="$1" modver="$2" stamp="$BIN/.$1.version" t0 t1 p
  local built=1
  for p in "${@:2}"; do
    p="${p%@*}"
    [ -x "$BIN/${p##*/}" ] || built=0
  done
  if [ "$built" = 1 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$modver" ]; then
    log "$name already built ($modver)"
    return
  fi
  log "go install ${*:2}"
  t0=$(date +%s)
  GOBIN="$BIN" GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0 go install "${@:2}"
  t1=$(date +%s)
  printf '%s\n' "$modver" >"$stamp"
  log "$name built in $((t1 - t0)) s"
}

if [ "${BERTH_SKIP_GO:-}" != 1 ]; then
  command -v go >/dev/null || { log "go not found on PATH"; exit 1; }
  go_tool crane "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
  go_tool oras "oras.land/oras/cmd/oras@$ORAS_VERSION"
  go_tool regctl "github.com/regclient/regclient/cmd/regctl@$REGCTL_VERSION"
  go_tool cosign "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION"
  # BuildKit's OCI worker runs runc (apt); without cgo it builds without seccomp, which FROM scratch
  # builds and the registry cache do not need.
  go_tool buildkit "github.com/moby/buildkit/cmd/buildkitd@$BUILDKIT_VERSION" \
    "github.com/moby/buildkit/cmd/buildctl@$BUILDKIT_VERSION"
  go_tool helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  go_tool ko "github.com/google/ko@$KO_VERSION"
fi

# ---------------------------------------------------------------- versions
ver() { # label command...
  local out line
  if out=$("${@:2}" 2>&1); then
    line=$(printf '%s\n' "$out" | grep -m1 -iE 'version|v[0-9]|[0-9]+\.[0-9]+\.[0-9]' | sed 's/^[[:space:]]*//')
    printf '  %-16s %s\n' "$1" "${line:-$(printf '%s\n' "$out" | head -1)}"
  else
    printf '  %-16s %s\n' "$1" "NOT AVAILABLE"
  fi
}
echo "client versions (Go tools in $BIN):"
ver dockerd dockerd --version
ver docker /usr/bin/docker --version
ver podman podman --version
ver buildah buildah --version
ver skopeo skopeo --version
ver containerd containerd --version
ver ctr ctr --version
ver docker-registry docker-registry --version
ver crane "$BIN/crane" version
ver oras "$BIN/oras" version
ver regctl "$BIN/regctl" version --format '{{.VCSTag}}'
ver cosign "$BIN/cosign" version
# go install stamps no version into buildkit and helm: the version built is the one recorded.
ver buildkitd cat "$BIN/.buildkit.version"
ver helm cat "$BIN/.helm.version"
ver ko "$BIN/ko" version
ver runc runc --version
ver chromium chromium --version
echo "add to PATH: export PATH=\"$BIN:\$PATH\""
