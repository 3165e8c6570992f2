#!/usr/bin/env bash
# The arm64 leg (issue 29): both services' images for arm64 from the same Dockerfiles, built and run
# under qemu-user emulation, beside the amd64 ones. Not in the default test command (it takes longer
# than the 60-min CI has left; README "Tests" gives the measured time): run it when asked,
#
#   AUDIOGUARD_ARM64=1 bash scripts/test.sh   the test command, then this leg
#   bash scripts/images-arm64.sh              this leg alone: the amd64 images (scripts/images.sh --build),
#                                             the arm64 base and images, the multi-arch manifests, then
#                                             tests/images/test_arm64.py (the arm64 pair against the amd64 one)
#   bash scripts/images-arm64.sh --build      everything but the test
#   ARM64_LISTEN=false bash scripts/images-arm64.sh   without the transformer's LISTEN variant
#
# Builds localhost/audioguard-{transformer,predictor}:test-arm64 (and :test-listen-arm64) with
# `podman build --platform linux/arm64` on a bookworm arm64 base made with mmdebstrap under qemu-user,
# and the manifest lists localhost/audioguard-{transformer,predictor}:multiarch (amd64 + arm64),
# pushed with `podman manifest push --all`. Each step's wall time goes to .cache/images/arm64-seconds.
# Asked for explicitly, so it fails (rather than skips) where it cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CACHE="$REPO/.cache/images"
mkdir -p "$CACHE"
SECONDS_FILE="$CACHE/arm64-seconds"
log() { printf '[images-arm64] %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
timed() {  # timed <step> <command...>: run it, append "<step> <seconds>" to $SECONDS_FILE
    local step=$1 started status=0
    shift
    started=$(date +%s)
    "$@" || status=$?
    printf '%s %s\n' "$step" $(( $(date +%s) - started )) >> "$SECONDS_FILE"
    return "$status"
}

# --- qemu-user for arm64 binaries, registered with binfmt_misc's F flag (usable inside containers) -----
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e /usr/bin/qemu-aarch64-static ] || ! command -v update-binfmts >/dev/null; then
    [ "$(id -u)" = 0 ] || fail "qemu-user-static and binfmt-support are not installed (as root: apt-get install)"
    log "installing qemu-user-static, binfmt-support with apt-get"
    { apt-get update -qq && apt-get install -y -qq qemu-user-static binfmt-support; } >&2
fi
if [ ! -e "$binfmt/register" ]; then
    [ "$(id -u)" = 0 ] || fail "binfmt_misc is not mounted at $binfmt and mounting it needs root"
    mount -t binfmt_misc binfmt_misc "$binfmt" || fail "cannot mount binfmt_misc at $binfmt"
fi
if [ ! -e "$binfmt/qemu-aarch64" ]; then
    update-binfmts --enable qemu-aarch64 2>/dev/null || systemctl restart systemd-binfmt 2>/dev/null || true
fi
[ -e "$binfmt/qemu-aarch64" ] || fail "qemu-aarch64 is not registered in $binfmt (update-binfmts --enable qemu-aarch64)"
grep -q '^flags:.*F' "$binfmt/qemu-aarch64" \
    || fail "qemu-aarch64 is registered without the F flag: containers could not find the interpreter"

# --- the images: amd64 (scripts/images.sh --build, cached layers) beside the arm64 base, then the arm64
# services two at a time (emulated pip is one core each); each job's output in .cache/images/arm64-*.log
: > "$SECONDS_FILE"
# shellcheck source=scripts/images-base.sh
source scripts/images-base.sh
configure_podman
podman info >/dev/null 2>&1 || fail "podman cannot run here: $(podman info 2>&1 | tail -1)"
timed amd64-images bash scripts/images.sh --build > "$CACHE/arm64-amd64-build.log" 2>&1 &
amd64=$!
timed base-arm64 make_base arm64
build() {  # build <tag> <dockerfile> [build args...]
    local tag=$1 file=$2 output
    shift 2
    output="$CACHE/arm64-build-${tag##*/}.log"
    log "building $tag from $file for linux/arm64 under qemu-user (log: ${output#"$REPO/"})"
    timed "$tag" podman build --platform linux/arm64 --format docker --build-arg "PYTHON_IMAGE=$BASE" \
        "$@" -f "$file" -t "$tag" . > "$output" 2>&1 || fail "$tag: $(tail -5 "$output")"
}
build localhost/audioguard-predictor:test-arm64 Dockerfile.predictor &
predictor=$!
build localhost/audioguard-transformer:test-arm64 Dockerfile.transformer
wait "$predictor"
if [ "${ARM64_LISTEN:-true}" = true ]; then
    build localhost/audioguard-transformer:test-listen-arm64 Dockerfile.transformer --build-arg LISTEN=true
fi
wait "$amd64" || fail "scripts/images.sh --build: $(tail -5 "$CACHE/arm64-amd64-build.log")"

# --- the multi-arch manifest lists: one name, both architectures ----------------------------------------
for service in predictor transformer; do
    list=localhost/audioguard-$service:multiarch
    podman manifest rm "$list" >/dev/null 2>&1 || true
    podman manifest create "$list" >/dev/null
    for tag in test test-arm64; do
        podman manifest add "$list" "containers-storage:localhost/audioguard-$service:$tag" >/dev/null
    done
    log "$list: $(podman manifest inspect "$list" | .venv/bin/python -c \
        'import json, sys; print(" + ".join(m["platform"]["architecture"] for m in json.load(sys.stdin)["manifests"]))')"
done
[ "${1:-}" = --build ] && { cat "$SECONDS_FILE" >&2; exit 0; }

# --- the arm64 pair against the amd64 pair ------------------------------------------------------------------
export AUDIOGUARD_IMAGES_TAG=test AUDIOGUARD_ARM64_TAG=test-arm64
timed test-arm64 .venv/bin/pytest -p no:cacheprovider -ra tests/images/test_arm64.py
log "wall seconds per step ($(uname -m), $(nproc) CPUs):"
sed 's/^/[images-arm64]   /' "$SECONDS_FILE" >&2
