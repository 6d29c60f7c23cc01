#!/usr/bin/env bash
# OCI distribution-spec conformance for Berth.
#
# Builds the official conformance suite (github.com/opencontainers/distribution-spec/conformance)
# from the Go module proxy in two versions, starts Berth the way a user would (`npm start`), runs
# both suites with every workflow enabled against a fresh data directory each, prints one summary
# line per suite and exits non-zero if any spec failed in either.
#
#   npm run test:conformance                       # build (cached), start Berth, run both suites
#   BERTH_URL=http://127.0.0.1:5000 npm run test:conformance   # test a registry that is already up
#
# Settings (environment):
#   BERTH_URL                      registry to test instead of starting Berth (http[s]://host:port)
#   BERTH_CACHE                    cache root (default ~/.cache/berth); binaries go to
#                                  $BERTH_CACHE/conformance/<module version>/
#   CONFORMANCE_SUITES             which suites, default "v1.1.1 main"
#   CONFORMANCE_V1_VERSION         module version for the v1.1.1 slot (default: the v1.1.1 commit;
#                                  if the proxy does not serve it, the newest ginkgo-era version it
#                                  does serve, with a warning)
#   CONFORMANCE_MAIN_VERSION       module version for the main slot (default: @latest = main HEAD)
#   CONFORMANCE_MOUNT_WITHOUT_FROM 1 = start Berth with --mount-without-from and expect mounts
#                                  without ?from= to succeed (OCI_AUTOMATIC_CROSSMOUNT=true)
#   CONFORMANCE_RESULTS_DIR        where reports are kept (default: a new /tmp/berth-conformance.*)
#   CONFORMANCE_START_TIMEOUT      seconds to wait for Berth to answer /v2/ (default 90)
#   CONFORMANCE_SUITE_TIMEOUT      seconds one suite may run (default 1200)
#   BERTH_SERVE_ARGS               extra arguments for `berth serve` (word-split)
#   OCI_*                          passed through to the suites (e.g. OCI_FILTER_TEST for main)
set -euo pipefail

readonly MODULE=github.com/opencontainers/distribution-spec/conformance
# Tag v1.1.1 is commit a139cc423184 (2025-01-23T16:05:58Z). The conformance directory is its own
# module without tags of its own, so that release is only reachable as this pseudo-version.
readonly V1_RELEASE_VERSION=v0.0.0-20250123160558-a139cc423184
# The newest pre-redesign (ginkgo, `go test -c`) version the module proxy here serves: commit
# f2182352d4cc of 2023-11-01, between v1.1.0-rc3 and v1.1.0-rc4.
readonly V1_FALLBACK_VERSION=v0.0.0-20231101194043-f2182352d4cc

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE_ROOT="${BERTH_CACHE:-$HOME/.cache/berth}/conformance"
SUITES=${CONFORMANCE_SUITES:-v1.1.1 main}
START_TIMEOUT=${CONFORMANCE_START_TIMEOUT:-90}
SUITE_TIMEOUT=${CONFORMANCE_SUITE_TIMEOUT:-1200}
RUN_ID=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')

log() { printf '[conformance] %s\n' "$*"; }
warn() { printf '[conformance] WARNING: %s\n' "$*" >&2; }
die() {
  printf '[conformance] ERROR: %s\n' "$*" >&2
  exit 2
}

for tool in go node; do
  command -v "$tool" >/dev/null || die "'$tool' is required on PATH"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-conformance-work.XXXXXX")
RESULTS=${CONFORMANCE_RESULTS_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/berth-conformance.XXXXXX")}
mkdir -p "$RESULTS" "$CACHE_ROOT"

SERVER_PID=
SERVER_LOG=
V1_FALLBACK_USED=
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  local rc=$?
  stop_server
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Building the suites
# ---------------------------------------------------------------------------------------------

# go_mod_download MODULE@VERSION -> prints "<version>\t<dir>"; fails, saying why, if the proxy will
# not serve it.
go_mod_download() {
  local json
  json=$(cd "$WORK" && GOWORK=off GOFLAGS='' go mod download -json "$1" 2>"$WORK/go-mod-download.err") || true
  node -e '
    let m;
    try { m = JSON.parse(process.argv[1]); } catch { process.exit(3); }
    if (m.Error || !m.Dir) { console.error(m.Error || "go mod download gave no directory"); process.exit(1); }
    console.log(m.Version + "\t" + m.Dir);
  ' "$json" || {
    local rc=$?
    if [ "$rc" -eq 3 ]; then cat "$WORK/go-mod-download.err" >&2; fi
    return 1
  }
}

# is_cached VERSION: a complete build of VERSION is in the cache.
is_cached() { [ -x "$CACHE_ROOT/$1/conformance" ] && [ -f "$CACHE_ROOT/$1/build-info.txt" ]; }

# version_lt A B: true if Go version A (e.g. 1.24.0) is older than B.
version_lt() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$1" ]; }

# build_suite VERSION SRC_DIR -> prints the path of the cached binary.
build_suite() {
  local version=$1 src=$2
  local dest="$CACHE_ROOT/$version"
  local bin="$dest/conformance"
  if is_cached "$version"; then
    log "using cached build $bin" >&2
    printf '%s\n' "$bin"
    return 0
  fi
  if [ -z "$src" ] || [ ! -f "$src/go.mod" ]; then die "no module source for $MODULE@$version"; fi
  local tmp="$WORK/build-$version"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  cp -R "$src/." "$tmp/"
  chmod -R u+w "$tmp"

  # The redesigned suite is a `package main` program built with `go build`; the older one is a
  # ginkgo test package compiled with `go test -c`.
  local kind=ginkgo
  if grep -qs '^package main$' "$tmp"/main.go; then kind=program; fi

  local need have
  need=$(awk '$1 == "go" { print $2; exit }' "$tmp/go.mod")
  have=$(go env GOVERSION | sed 's/^go//')
  local toolchain_env=()
  if [ -n "$need" ] && version_lt "$have" "$need"; then
    # The Go module proxy serves approved toolchains; +auto still honours a newer go.mod line.
    toolchain_env=(GOTOOLCHAIN="${CONFORMANCE_GOTOOLCHAIN:-go1.27.3+auto}")
    warn "$MODULE@$version needs Go $need, this machine has $have: using ${toolchain_env[0]}"
  fi

  log "building $MODULE@$version ($kind) ..." >&2
  local start=$SECONDS
  (
    cd "$tmp"
    export GOWORK=off
    if [ "$kind" = program ]; then
      env "${toolchain_env[@]}" go build -mod=mod \
        -ldflags "-X main.Version=$version" -o "$tmp/conformance.bin" .
    else
      env "${toolchain_env[@]}" go test -c -mod=mod \
        -ldflags "-X $MODULE.Version=$version" -o "$tmp/conformance.bin" .
    fi
  ) >&2 || die "building $MODULE@$version failed"
  mkdir -p "$dest"
  mv "$tmp/conformance.bin" "$bin.partial"
  mv "$bin.partial" "$bin"
  printf 'module=%s\nversion=%s\nkind=%s\ngo=%s\nbuilt=%s\nbuild_seconds=%s\n' \
    "$MODULE" "$version" "$kind" "$(go env GOVERSION)" "$(date -u +%FT%TZ)" "$((SECONDS - start))" \
    >"$dest/build-info.txt"
  log "built $bin in $((SECONDS - start))s" >&2
  printf '%s\n' "$bin"
}

# resolve_suite SLOT -> sets SUITE_VERSION, SUITE_BIN, SUITE_KIND, SUITE_LABEL
resolve_suite() {
  local slot=$1 want out
  case "$slot" in
    v1.1.1)
      want=${CONFORMANCE_V1_VERSION:-$V1_RELEASE_VERSION}
      if is_cached "$want"; then
        out="$want"$'\t'
      elif ! out=$(go_mod_download "$MODULE@$want" 2>"$WORK/download.err"); then
        if [ -n "${CONFORMANCE_V1_VERSION:-}" ]; then
          cat "$WORK/download.err" >&2
          die "the module proxy does not serve $MODULE@$want"
        fi
        warn "the module proxy does not serve the v1.1.1 release ($MODULE@$want):"
        sed 's/^/    /' "$WORK/download.err" >&2
        warn "falling back to $V1_FALLBACK_VERSION (ginkgo suite of 2023-11-01, before v1.1.0-rc4)"
        want=$V1_FALLBACK_VERSION
        V1_FALLBACK_USED=1
        out=
      fi
      ;;
    main)
      want=${CONFORMANCE_MAIN_VERSION:-latest}
      out=
      ;;
    *) die "unknown suite '$slot' (known: v1.1.1 main)" ;;
  esac
  if [ -z "$out" ]; then
    if ! out=$(go_mod_download "$MODULE@$want" 2>"$WORK/download.err"); then
      # Offline and asked for @latest: use the newest main build already in the cache.
      local cached=
      if [ "$want" = latest ]; then
        cached=$(grep -ls '^kind=program$' "$CACHE_ROOT"/*/build-info.txt 2>/dev/null | xargs -r ls -t | head -n1)
      fi
      if [ -n "$cached" ]; then
        warn "cannot resolve $MODULE@latest; using the cached $(dirname "$cached")"
        out="$(basename "$(dirname "$cached")")"$'\t'
      else
        cat "$WORK/download.err" >&2
        die "cannot download $MODULE@$want from the Go module proxy"
      fi
    fi
  fi
  SUITE_VERSION=${out%%$'\t'*}
  local dir=${out#*$'\t'}
  SUITE_BIN=$(build_suite "$SUITE_VERSION" "$dir")
  SUITE_KIND=$(sed -n 's/^kind=//p' "$CACHE_ROOT/$SUITE_VERSION/build-info.txt")
  SUITE_LABEL=$slot
  if [ "$slot" = v1.1.1 ] && [ "$SUITE_VERSION" != "$V1_RELEASE_VERSION" ]; then
    SUITE_LABEL="legacy-${SUITE_VERSION##*-}"
  fi
}

# ---------------------------------------------------------------------------------------------
# The registry under test
# ---------------------------------------------------------------------------------------------

free_port() {
  node -e 'const s = require("node:net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

http_status() {
  if command -v curl >/dev/null; then
    curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$1" 2>/dev/null || true
  else
    node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(3000) }).then((r) => console.log(r.status), () => console.log(0));' "$1"
  fi
}

print_server_log() {
  if [ -n "$SERVER_LOG" ] && [ -f "$SERVER_LOG" ]; then
    printf '[conformance] ---- last 60 lines of the Berth log (%s) ----\n' "$SERVER_LOG" >&2
    tail -n 60 "$SERVER_LOG" >&2 || true
    printf '[conformance] ---- end of Berth log ----\n' >&2
  fi
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  local pid=$SERVER_PID
  SERVER_PID=
  # SERVER_PID leads its own process group (setsid): signal the whole group, npm, tsx and node.
  if kill -0 -- "-$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 -- "-$pid" 2>/dev/null; then
      warn "Berth (process group $pid) did not stop within 10s of SIGTERM; sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

# start_server NAME -> sets REGISTRY_URL; Berth runs in its own process group led by SERVER_PID.
start_server() {
  local name=$1 attempt port data
  [ -x "$ROOT/node_modules/.bin/tsx" ] || die "node_modules is missing: run 'npm ci' in $ROOT first"
  local args=()
  if [ "${CONFORMANCE_MOUNT_WITHOUT_FROM:-0}" = 1 ]; then args+=(--mount-without-from); fi
  # shellcheck disable=SC2206 # word splitting is the documented behaviour of BERTH_SERVE_ARGS
  args+=(${BERTH_SERVE_ARGS:-})
  for attempt in 1 2 3; do
    port=$(free_port)
    data=$(mktemp -d "$WORK/data-$name.XXXXXX")
    SERVER_LOG="$RESULTS/$name/berth.log"
    log "starting Berth: npm start -- --port $port --data-dir $data ${args[*]}"
    # setsid makes npm the leader of a new process group, so stopping it reaches tsx and node too.
    (
      cd "$ROOT"
      if [ "${CONFORMANCE_MOUNT_WITHOUT_FROM:-0}" != 1 ]; then unset BERTH_MOUNT_WITHOUT_FROM; fi
      exec setsid npm start -- --port "$port" --data-dir "$data" "${args[@]}"
    ) >"$SERVER_LOG" 2>&1 </dev/null &
    SERVER_PID=$!
    local deadline=$((SECONDS + START_TIMEOUT)) status=000
    while [ "$SECONDS" -lt "$deadline" ]; do
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
      status=$(http_status "http://127.0.0.1:$port/v2/")
      if [ "$status" = 200 ] || [ "$status" = 401 ]; then
        REGISTRY_URL="http://127.0.0.1:$port"
        log "Berth answers GET /v2/ with $status at $REGISTRY_URL (log: $SERVER_LOG)"
        return 0
      fi
      sleep 0.5
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      print_server_log
      stop_server
      die "Berth did not answer GET http://127.0.0.1:$port/v2/ with 200 or 401 within ${START_TIMEOUT}s (last status: $status)"
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    if grep -q EADDRINUSE "$SERVER_LOG" && [ "$attempt" -lt 3 ]; then
      warn "port $port was taken meanwhile; retrying"
      continue
    fi
    print_server_log
    die "Berth exited before answering GET /v2/"
  done
}

# ---------------------------------------------------------------------------------------------
# Running and summarising
# ---------------------------------------------------------------------------------------------

# junit_problems FILE: prints "FAILED|SKIPPED <name> :: <reason>" for each non-passing test case.
junit_problems() {
  node - "$1" <<'NODE'
const fs = require('node:fs');
const xml = fs.readFileSync(process.argv[2], 'utf8');
const decode = (s) =>
  s.replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
const strip = (s) => decode(s.replace(/^<!\[CDATA\[|\]\]>$/g, ''));
const short = (s) => s.replace(/\b(sha256|sha512):([0-9a-f]{12})[0-9a-f]+/g, '$1:$2…');
const oneLine = (s) => short(s.split('\n').map((l) => l.trim()).filter(Boolean).join(' | ')).slice(0, 300);
const re = /<testcase\b([^>]*?)(?:\/>|>([\s\S]*?)<\/testcase>)/g;
for (const m of xml.matchAll(re)) {
  const attrs = Object.fromEntries([...m[1].matchAll(/([\w:-]+)="([^"]*)"/g)].map((a) => [a[1], decode(a[2])]));
  const body = m[2] || '';
  let status = attrs.status;
  if (!status) status = /<(failure|error)\b/.test(body) ? 'failed' : /<skipped\b/.test(body) ? 'skipped' : 'passed';
  if (status === 'passed') continue;
  const kind = status === 'skipped' || status === 'pending' ? 'SKIPPED' : 'FAILED';
  let reason = '';
  const msg = body.match(/<(?:failure|error|skipped)\b[^>]*\bmessage="([^"]*)"/);
  if (msg) reason = decode(msg[1]);
  const out = body.match(/<system-out>([\s\S]*?)<\/system-out>/);
  if (!reason && out) reason = strip(out[1]);
  const err = body.match(/<system-err>([\s\S]*?)<\/system-err>/);
  if (!reason && err) {
    const skip = strip(err[1]).match(/skipping test:\s*\n\s*(.*)/);
    if (skip) reason = skip[1];
  }
  console.log(`${kind} ${attrs.name} :: ${oneLine(reason)}`);
}
NODE
}

# collapse: folds repeated lines (same test name and reason) into one with a count, keeping order.
collapse() {
  awk '{ if (!($0 in n)) order[++k] = $0; n[$0]++ } END { for (i = 1; i <= k; i++) print (n[order[i]] > 1 ? "(x" n[order[i]] ") " : "") order[i] }'
}

TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0
SUMMARY_LINES=()
FAILED_SUITES=()

# run_suite SLOT
run_suite() {
  local slot=$1
  resolve_suite "$slot"
  local name=$SUITE_LABEL
  local dir="$RESULTS/$name"
  mkdir -p "$dir"
  cp "$CACHE_ROOT/$SUITE_VERSION/build-info.txt" "$dir/"
  log "== suite $name: $MODULE@$SUITE_VERSION ($SUITE_KIND) =="

  if [ -n "${BERTH_URL:-}" ]; then
    REGISTRY_URL=${BERTH_URL%/}
    SERVER_LOG=
    log "testing the registry at $REGISTRY_URL (BERTH_URL; not restarted between suites)"
  else
    start_server "$name"
  fi

  local scheme=${REGISTRY_URL%%://*} hostport=${REGISTRY_URL#*://}
  hostport=${hostport%%/*}
  # Fresh, unique repositories per run, so a reused BERTH_URL registry starts from empty ones.
  local repo1="berth-conformance/$name-$RUN_ID/repo1" repo2="berth-conformance/$name-$RUN_ID/repo2"
  repo1=${repo1//./-}
  repo2=${repo2//./-}
  local crossmount
  if [ "${CONFORMANCE_MOUNT_WITHOUT_FROM:-0}" = 1 ]; then crossmount=true; else crossmount=false; fi
  crossmount=${OCI_AUTOMATIC_CROSSMOUNT:-$crossmount}

  local suite_env=()
  if [ "$SUITE_KIND" = ginkgo ]; then
    suite_env=(
      OCI_ROOT_URL="$REGISTRY_URL"
      OCI_NAMESPACE="$repo1"
      OCI_CROSSMOUNT_NAMESPACE="$repo2"
      OCI_TEST_PULL=1
      OCI_TEST_PUSH=1
      OCI_TEST_CONTENT_DISCOVERY=1
      OCI_TEST_CONTENT_MANAGEMENT=1
      OCI_AUTOMATIC_CROSSMOUNT="$crossmount"
      OCI_DEBUG=0
      OCI_HIDE_SKIPPED_WORKFLOWS=0
      OCI_REPORT_DIR="$dir"
    )
    log "OCI_AUTOMATIC_CROSSMOUNT=$crossmount"
  else
    local tls=disabled
    if [ "$scheme" = https ]; then tls=${OCI_TLS:-enabled}; fi
    suite_env=(
      OCI_CONFIGURATION=/dev/null
      OCI_REGISTRY="$hostport"
      OCI_TLS="$tls"
      OCI_REPO1="$repo1"
      OCI_REPO2="$repo2"
      OCI_RESULTS_DIR="$dir"
      OCI_VERSION="${OCI_VERSION:-1.1}"
      OCI_LOG="${OCI_LOG:-warn}"
      OCI_API_PULL=true
      OCI_API_PUSH=true
      OCI_API_BLOBS_DELETE=true
      OCI_API_MANIFESTS_DELETE=true
      OCI_API_TAGS_DELETE=true
      OCI_API_TAGS_LIST=true
      OCI_API_REFERRER=true
      # Beyond the 1.1 defaults: clients depend on these (podman cancels uploads, docker and
      # containerd read Docker-Content-Digest).
      OCI_API_BLOBS_UPLOAD_CANCEL="${OCI_API_BLOBS_UPLOAD_CANCEL:-true}"
      OCI_API_BLOBS_DIGEST_HEADER="${OCI_API_BLOBS_DIGEST_HEADER:-true}"
      OCI_API_MANIFESTS_DIGEST_HEADER="${OCI_API_MANIFESTS_DIGEST_HEADER:-true}"
      OCI_API_BLOBS_MOUNT_ANONYMOUS="${OCI_API_BLOBS_MOUNT_ANONYMOUS:-true}"
    )
  fi

  local out="$dir/output.log" rc=0 start=$SECONDS
  local cmd=("$SUITE_BIN")
  if [ "$SUITE_KIND" = ginkgo ]; then cmd+=(-ginkgo.no-color -test.timeout="${SUITE_TIMEOUT}s"); fi
  (cd "$dir" && env "${suite_env[@]}" timeout --foreground --kill-after=15 "$SUITE_TIMEOUT" "${cmd[@]}") >"$out" 2>&1 || rc=$?
  local elapsed=$((SECONDS - start))
  if [ -z "${BERTH_URL:-}" ]; then stop_server; fi

  local passed='' failed='' skipped='' disabled=0 note=''
  if [ "$SUITE_KIND" = ginkgo ]; then
    local line
    line=$(grep -Eo '[0-9]+ Passed \| [0-9]+ Failed \| [0-9]+ Pending \| [0-9]+ Skipped' "$out" | tail -n1 || true)
    if [ -n "$line" ]; then
      read -r passed failed skipped < <(awk '{ print $1, $4, $7 + $10 }' <<<"$line")
    fi
  else
    if grep -q '^OCI Conformance Result:' "$out"; then
      count() { awk -v k="$1" '$1 ~ "^"k"\\.*:$" { n = $2 } END { print n + 0 }' "$out"; }
      passed=$(count Pass)
      failed=$(($(count FAIL) + $(count Error)))
      disabled=$(count Disabled)
      skipped=$(($(count Skip) + disabled))
      if [ "$disabled" -gt 0 ]; then note=" (of which $disabled disabled by configuration)"; fi
      # The per-API verdicts say which optional features the registry lacks (Skip) or breaks (FAIL).
      sed -n '/^API conformance:/,/^$/p' "$out" | sed 's/^/    /'
    fi
  fi

  local junit="$dir/junit.xml"
  if [ -z "$passed" ]; then
    warn "suite $name produced no result summary (exit status $rc); last lines of its output:"
    tail -n 40 "$out" >&2 || true
    passed=0 failed=1 skipped=0
    note=" (suite did not complete)"
  elif [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    warn "suite $name exited with status $rc although it reported no failed spec"
    tail -n 20 "$out" >&2 || true
    failed=1
    note="$note (exit status $rc)"
  fi

  if [ -f "$junit" ]; then
    junit_problems "$junit" >"$dir/problems.txt" || warn "could not parse $junit"
    local nfail nskip
    nfail=$(grep -c '^FAILED ' "$dir/problems.txt" || true)
    nskip=$(grep -c '^SKIPPED ' "$dir/problems.txt" || true)
    local kind shown
    for kind in FAILED SKIPPED; do
      grep "^$kind " "$dir/problems.txt" | collapse >"$dir/$kind.txt" || true
      shown=$(wc -l <"$dir/$kind.txt")
      [ "$shown" -gt 0 ] || continue
      if [ "$kind" = FAILED ]; then log "failed in $name ($nfail test cases):"; else log "skipped in $name ($nskip test cases):"; fi
      sed -n '1,60s/^/    /p' "$dir/$kind.txt"
      if [ "$shown" -gt 60 ]; then log "    ... $((shown - 60)) more lines"; fi
    done
    if [ "$nfail" -gt 0 ] || [ "$nskip" -gt 0 ]; then log "(all of them: $dir/problems.txt)"; fi
  else
    warn "no junit report at $junit"
  fi
  if [ "$failed" -gt 0 ] && [ -n "$SERVER_LOG" ] && [ -f "$SERVER_LOG" ]; then print_server_log; fi

  local line="$name: $passed passed, $failed failed, $skipped skipped$note  [$MODULE@$SUITE_VERSION, ${elapsed}s, reports in $dir]"
  log "$line"
  SUMMARY_LINES+=("$line")
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + skipped))
  if [ "$failed" -gt 0 ]; then FAILED_SUITES+=("$name"); fi
}

log "Go $(go env GOVERSION), cache $CACHE_ROOT, results $RESULTS"
if [ "${CONFORMANCE_MOUNT_WITHOUT_FROM:-0}" = 1 ] && [ -n "${BERTH_URL:-}" ]; then
  warn "CONFORMANCE_MOUNT_WITHOUT_FROM=1 only sets the expectation; the registry at BERTH_URL must be configured to match"
fi
for suite in $SUITES; do
  run_suite "$suite"
done

echo
log "summary (reports kept in $RESULTS):"
for line in "${SUMMARY_LINES[@]}"; do log "  $line"; done
if [ -n "$V1_FALLBACK_USED" ]; then
  warn "the v1.1.1 slot ran $MODULE@$V1_FALLBACK_VERSION: the module proxy does not serve $V1_RELEASE_VERSION (tag v1.1.1)"
fi
if [ "${#FAILED_SUITES[@]}" -gt 0 ]; then log "FAILED suites: ${FAILED_SUITES[*]}"; fi
echo "conformance: $TOTAL_PASSED passed, $TOTAL_FAILED failed, $TOTAL_SKIPPED skipped"
if [ "${#FAILED_SUITES[@]}" -gt 0 ]; then exit 1; fi
exit 0
