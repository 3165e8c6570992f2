#!/usr/bin/env bash
# Build the container images with podman and test them as the manifests run them (part of the test
# command; see docs/deploy.md "Images, tested").
#
#   bash scripts/images.sh            prerequisites, base image, build, then tests/images (pytest)
#   bash scripts/images.sh --build    prerequisites, base image and build only
#
# Builds localhost/audioguard-{transformer,predictor}:test and the predictor's Ray variant :test-ray
# (Dockerfile.*, docker format so the HEALTHCHECK is kept) and localhost/sifis-dht-broker:test
# (Dockerfile.dht-broker), on a Debian bookworm
# base made locally with mmdebstrap where Docker Hub is unreachable (IMAGES_BASE=registry uses the
# Dockerfiles' default python:3.11-slim-bookworm instead). Cached between runs on one machine: the base
# tarball (.cache/images/) and podman's layers (the pip cache mount helps under BuildKit; podman 4.3
# here did not keep it).
# Skips, with a message saying why, only where podman cannot run containers at all.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CACHE="$REPO/.cache/images"
mkdir -p "$CACHE"
log() { printf '[images] %s\n' "$*" >&2; }
skip() { log "SKIPPED: $*"; exit 0; }

# --- podman, configured for this kind of sandbox ---------------------------------------------------------
if ! command -v podman >/dev/null || ! command -v mmdebstrap >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing podman, runc, mmdebstrap with apt-get"
        { apt-get update -qq && apt-get install -y -qq podman runc mmdebstrap; } >&2 \
            || skip "apt-get could not install podman (no container engine, images not tested)"
    else
        skip "podman is not installed and cannot be (not root or no apt-get)"
    fi
fi
# shellcheck source=scripts/images-base.sh
source scripts/images-base.sh
configure_podman
podman info >/dev/null 2>&1 || skip "podman cannot run here: $(podman info 2>&1 | tail -1)"

# --- the base image ---------------------------------------------------------------------------------------
BASE=python:3.11-slim-bookworm
if [ "${IMAGES_BASE:-local}" = local ]; then
    make_base "$(dpkg --print-architecture)"
fi

# --- build ------------------------------------------------------------------------------------------------
build() {  # build <tag> <dockerfile> [build args...]
    local tag=$1 file=$2 started
    shift 2
    started=$(date +%s)
    log "building $tag from $file"
    podman build --format docker --build-arg "PYTHON_IMAGE=$BASE" "$@" -f "$file" -t "$tag" . >&2
    printf '%s %s\n' "$tag" $(( $(date +%s) - started )) >> "$CACHE/build-seconds"
}
: > "$CACHE/build-seconds"
build localhost/audioguard-predictor:test Dockerfile.predictor
build localhost/audioguard-predictor:test-ray Dockerfile.predictor --build-arg RAY=true
build localhost/audioguard-transformer:test Dockerfile.transformer
build localhost/audioguard-transformer:test-listen Dockerfile.transformer --build-arg LISTEN=true
# The broker image: its binary comes from scripts/install-dht-broker.sh (the vendored source).
broker=$(bash scripts/install-dht-broker.sh)
mkdir -p "$CACHE/dht-broker-context"
cp "$broker" "$CACHE/dht-broker-context/sifis-dht-broker"
started=$(date +%s)
podman build --format docker --build-arg "BASE_IMAGE=$BASE" -f Dockerfile.dht-broker \
    -t localhost/sifis-dht-broker:test "$CACHE/dht-broker-context" >&2
printf '%s %s\n' localhost/sifis-dht-broker:test $(( $(date +%s) - started )) >> "$CACHE/build-seconds"
[ "${1:-}" = --build ] && exit 0

# --- run them -------------------------------------------------------------------------------------------
# podman-compose, pinned, in a venv of its own (the compose test brings docker-compose.yml up with it).
compose_venv="$CACHE/compose-venv"
if ! "$compose_venv/bin/podman-compose" --version 2>/dev/null | grep -q "1.6.0"; then
    log "installing podman-compose 1.6.0"
    .venv/bin/uv venv -q --python "$(command -v python3)" "$compose_venv"
    .venv/bin/uv pip install -q --python "$compose_venv/bin/python" "podman-compose==1.6.0"
fi
export AUDIOGUARD_PODMAN_COMPOSE="$compose_venv/bin/podman-compose"
export AUDIOGUARD_IMAGES_TAG=test AUDIOGUARD_IMAGES_REPORT="$CACHE/report.json"
.venv/bin/pytest -p no:cacheprovider -ra tests/images
.venv/bin/python -m tests.images.report "$AUDIOGUARD_IMAGES_REPORT" "$CACHE/build-seconds"
