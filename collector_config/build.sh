#!/usr/bin/env bash
# Build the real OpenTelemetry Collector (custom ocb build, otelcol-migration)
# and the real Jaeger v2 binary (jaeger) from source with ordinary Go commands.
#
# Output:  ${OTEL_MIGRATION_CACHE:-$HOME/.cache/otel-migration}/bin/{otelcol-migration,jaeger}
# Stdout:  two lines, OTELCOL_BIN=<path> and JAEGER_BIN=<path>  (progress goes to stderr),
#          so a caller can do:  eval "$(bash collector_config/build.sh)"
#
# Each binary is rebuilt only when its stamp file (a hash of its pins and the
# go version; for Jaeger also the UI assets' sha256) changed or the binary is
# missing. FORCE=1 rebuilds both.
#
# Jaeger UI: embedded as upstream's release build does it, from jaeger-ui's
# release assets.tar.gz, given by JAEGER_UI_ASSETS (a path or an http(s) URL;
# default: the upstream release URL below). Machines that reach only package
# registries point it at a local copy (`make` does so when
# ../shared/vendor/jaeger-ui-<version>/assets.tar.gz exists). A URL is
# downloaded once into the cache and reused.
#
# Needs only Go >= 1.26 and the Go module proxy. First build takes a long
# while on 2 cores (roughly 10-20 min each); later runs return at once.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILDER_CONFIG="${SCRIPT_DIR}/builder-config.yaml"

CACHE="${OTEL_MIGRATION_CACHE:-$HOME/.cache/otel-migration}"
BIN_DIR="${CACHE}/bin"
TOOLS_DIR="${CACHE}/tools"
WORK_DIR="${CACHE}/build"

# ---- pins -------------------------------------------------------------------
# OpenTelemetry Collector Builder; must match the component versions in
# builder-config.yaml.
OCB_MODULE="go.opentelemetry.io/collector/cmd/builder"
OCB_VERSION="v0.161.0"
# Jaeger: the v2 binary lives in the v1 module github.com/jaegertracing/jaeger
# (the v2.x tags do not match the module path). Module version v1.76.0 is the
# same commit as the Jaeger v2.13.0 release (CHANGELOG: "v1.76.0 / v2.13.0").
# Its go.mod has a replace directive, so `go install mod@ver` refuses it; we
# download the module source and `go build` inside a copy instead.
JAEGER_MODULE="github.com/jaegertracing/jaeger"
JAEGER_VERSION="v1.76.0"
JAEGER_RELEASE="v2.13.0"
# jaeger-ui release that goes with this Jaeger (its git submodule pin).
JAEGER_UI_VERSION="v1.76.0"
JAEGER_UI_ASSETS="${JAEGER_UI_ASSETS:-https://github.com/jaegertracing/jaeger-ui/releases/download/${JAEGER_UI_VERSION}/assets.tar.gz}"
MIN_GO="1.26.0" # collector v0.161.0 modules declare `go 1.26.0`

log() { printf '[build.sh] %s\n' "$*" >&2; }
die() { printf '[build.sh] ERROR: %s\n' "$*" >&2; exit 1; }

# ---- go toolchain -----------------------------------------------------------
if ! command -v go >/dev/null 2>&1; then
  if [[ -x /usr/local/go/bin/go ]]; then
    export PATH="/usr/local/go/bin:${PATH}"
  else
    die "go not found in PATH (need Go >= ${MIN_GO})"
  fi
fi
# Use the installed Go; never try to download a toolchain (only the module
# proxy is reachable). A caller may still override GOTOOLCHAIN explicitly.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
# Ignore any GOFLAGS from the caller's environment (e.g. -mod=vendor) and
# keep builds independent of the VCS state of the build directories.
export GOFLAGS="-buildvcs=false"
export CGO_ENABLED=0

GO_VERSION="$(go env GOVERSION)" # e.g. go1.26.8
version_ge() { # version_ge A B  -> A >= B (dotted numeric)
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}
if [[ "${GOTOOLCHAIN}" == local ]] && ! version_ge "${GO_VERSION#go}" "${MIN_GO}"; then
  die "${GO_VERSION} is too old: the pinned modules need Go >= ${MIN_GO}"
fi

mkdir -p "${BIN_DIR}" "${TOOLS_DIR}" "${WORK_DIR}"

# One build at a time per cache directory.
if command -v flock >/dev/null 2>&1; then
  exec 9>"${CACHE}/.build.lock"
  flock 9
fi

sha256() { sha256sum | cut -d' ' -f1; }

OTELCOL_BIN="${BIN_DIR}/otelcol-migration"
JAEGER_BIN="${BIN_DIR}/jaeger"
OTELCOL_STAMP_FILE="${CACHE}/otelcol-migration.stamp"
JAEGER_STAMP_FILE="${CACHE}/jaeger.stamp"

# The local components (builder-config.yaml `path:` entries) are part of the binary: their sources
# (not their tests) go into the stamp, so editing the component rebuilds the collector.
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
local_component_sources() {
  (cd "${REPO_ROOT}" && find collector -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) \
    ! -name '*_test.go' | LC_ALL=C sort | xargs -r sha256sum)
}
OTELCOL_STAMP="$(
  {
    echo "ocb=${OCB_MODULE}@${OCB_VERSION}"
    echo "go=${GO_VERSION}"
    cat "${BUILDER_CONFIG}"
    local_component_sources
  } | sha256
)"
# ---- Jaeger UI assets ---------------------------------------------------------
# Sets UI_TARBALL to a local file holding JAEGER_UI_ASSETS (downloading a URL
# into the cache once) and checks it is a jaeger-ui build.
fetch_ui_assets() {
  local src="${JAEGER_UI_ASSETS}"
  if [[ "${src}" =~ ^https?:// ]]; then
    local dl_dir="${CACHE}/downloads"
    UI_TARBALL="${dl_dir}/jaeger-ui-$(printf '%s' "${src}" | sha256).tar.gz"
    if [[ ! -s "${UI_TARBALL}" ]]; then
      mkdir -p "${dl_dir}"
      log "downloading the Jaeger UI assets from ${src}"
      if command -v curl >/dev/null 2>&1; then
        curl --silent --show-error --fail --location --retry 2 --connect-timeout 20 --max-time 300 \
          --output "${UI_TARBALL}.tmp" "${src}" || {
          rm -f "${UI_TARBALL}.tmp"
          die "could not download the Jaeger UI assets from ${src}. Without internet access, set JAEGER_UI_ASSETS to a local copy of jaeger-ui ${JAEGER_UI_VERSION}'s release assets.tar.gz (this project's machines: ../shared/vendor/jaeger-ui-${JAEGER_UI_VERSION#v}/assets.tar.gz beside the clone; see README)"
        }
      else
        die "curl is needed to download ${src} (or set JAEGER_UI_ASSETS to a local assets.tar.gz)"
      fi
      mv -f "${UI_TARBALL}.tmp" "${UI_TARBALL}"
    fi
  else
    [[ -f "${src}" ]] || die "JAEGER_UI_ASSETS=${src}: no such file (expected jaeger-ui ${JAEGER_UI_VERSION}'s release assets.tar.gz)"
    UI_TARBALL="$(cd "$(dirname "${src}")" && pwd)/$(basename "${src}")"
  fi
  tar -tzf "${UI_TARBALL}" packages/jaeger-ui/build/index.html >/dev/null 2>&1 ||
    die "${JAEGER_UI_ASSETS} is not a jaeger-ui release assets.tar.gz (no packages/jaeger-ui/build/index.html in it)"
}
fetch_ui_assets
UI_SHA256="$(sha256 <"${UI_TARBALL}")"

JAEGER_STAMP="$(
  printf 'jaeger=%s@%s\ngo=%s\nui=%s\n' "${JAEGER_MODULE}" "${JAEGER_VERSION}" "${GO_VERSION}" "${UI_SHA256}" | sha256
)"

up_to_date() { # up_to_date BIN STAMP_FILE STAMP
  [[ "${FORCE:-0}" != 1 && -x "$1" && -f "$2" && "$(cat "$2")" == "$3" ]]
}

# ---- OpenTelemetry Collector ------------------------------------------------
build_otelcol() {
  local start=$SECONDS
  log "installing ${OCB_MODULE}@${OCB_VERSION} into ${TOOLS_DIR}"
  GOBIN="${TOOLS_DIR}" go install "${OCB_MODULE}@${OCB_VERSION}"

  # ocb has no --output-path flag: write a copy of the manifest whose
  # dist.output_path points into the cache.
  local out="${WORK_DIR}/otelcol-migration"
  local cfg="${WORK_DIR}/builder-config.yaml"
  rm -rf "${out}"
  # Local modules' `path:` is relative to the manifest's directory; ocb would resolve it against
  # its own working directory, so make it absolute.
  sed -E -e "s#^([[:space:]]*output_path:).*#\1 ${out}#" \
    -e "s#^([[:space:]]*path:[[:space:]]*)([^/[:space:]].*)\$#\1${SCRIPT_DIR}/\2#" \
    "${BUILDER_CONFIG}" >"${cfg}"
  grep -q "output_path: ${out}\$" "${cfg}" || die "could not set output_path in ${cfg}"
  if grep -Eq '^[[:space:]]*path:[[:space:]]*[^/[:space:]]' "${cfg}"; then
    die "a local module path in ${cfg} is still relative"
  fi

  log "building otelcol-migration with ocb (sources in ${out})"
  "${TOOLS_DIR}/builder" --config "${cfg}"

  install -m 0755 "${out}/otelcol-migration" "${OTELCOL_BIN}.tmp"
  mv -f "${OTELCOL_BIN}.tmp" "${OTELCOL_BIN}"
  echo "${OTELCOL_STAMP}" >"${OTELCOL_STAMP_FILE}"
  log "otelcol-migration built in $((SECONDS - start))s"
}

# ---- Jaeger v2 --------------------------------------------------------------
build_jaeger() {
  local start=$SECONDS
  log "downloading ${JAEGER_MODULE}@${JAEGER_VERSION} (Jaeger ${JAEGER_RELEASE})"
  local json dir
  json="$(cd "${WORK_DIR}" && go mod download -json "${JAEGER_MODULE}@${JAEGER_VERSION}")"
  dir="$(printf '%s\n' "${json}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -n "${dir}" && -f "${dir}/go.mod" ]] || die "go mod download gave no source dir: ${json}"

  # The module cache is read-only and `go build` of a module's own main
  # package (with its replace directives honoured) needs it as the main
  # module: build from a private copy.
  local src="${WORK_DIR}/jaeger-${JAEGER_VERSION}"
  rm -rf "${src}"
  cp -R "${dir}" "${src}"
  chmod -R u+w "${src}"

  # The Jaeger UI assets are not in the module zip (without them the binary
  # serves a placeholder page at /). Embed them as upstream's `make build-ui`
  # does: jaeger-ui's packages/jaeger-ui/build/* copied into
  # cmd/query/app/ui/actual/ and every file gzipped; ui/assets.go embeds
  # actual/* and serves it when actual/index.html.gz exists.
  local actual="${src}/cmd/query/app/ui/actual" ui_tmp="${WORK_DIR}/jaeger-ui-assets"
  rm -rf "${ui_tmp}"
  mkdir -p "${ui_tmp}"
  tar -xzf "${UI_TARBALL}" -C "${ui_tmp}" packages/jaeger-ui/build/
  find "${actual}" -mindepth 1 ! -name .gitignore -exec rm -rf {} +
  cp -R "${ui_tmp}/packages/jaeger-ui/build/." "${actual}/"
  find "${actual}" -type f ! -name .gitignore -exec gzip --no-name {} +
  rm -rf "${ui_tmp}"
  [[ -f "${actual}/index.html.gz" ]] || die "no index.html.gz in ${actual} after unpacking the UI assets"
  log "embedding the Jaeger UI (${JAEGER_UI_ASSETS}, sha256 ${UI_SHA256}): $(find "${actual}" -name '*.gz' | wc -l) files"

  local pkg="github.com/jaegertracing/jaeger/internal/version"
  log "building jaeger (cmd/jaeger) in ${src}"
  (
    cd "${src}"
    go build -trimpath \
      -ldflags "-s -w -X ${pkg}.latestVersion=${JAEGER_RELEASE} -X ${pkg}.date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
      -o "${JAEGER_BIN}.tmp" ./cmd/jaeger
  )
  mv -f "${JAEGER_BIN}.tmp" "${JAEGER_BIN}"
  rm -rf "${src}"
  echo "${JAEGER_STAMP}" >"${JAEGER_STAMP_FILE}"
  log "jaeger built in $((SECONDS - start))s"
}

if up_to_date "${OTELCOL_BIN}" "${OTELCOL_STAMP_FILE}" "${OTELCOL_STAMP}"; then
  log "otelcol-migration is up to date"
else
  build_otelcol
fi

if up_to_date "${JAEGER_BIN}" "${JAEGER_STAMP_FILE}" "${JAEGER_STAMP}"; then
  log "jaeger is up to date"
else
  build_jaeger
fi

echo "OTELCOL_BIN=${OTELCOL_BIN}"
echo "JAEGER_BIN=${JAEGER_BIN}"
