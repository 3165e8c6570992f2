#!/usr/bin/env bash
# Best effort: install the Debian packages some tests use for real instead of skipping:
#   espeak-ng  synthesised words for the privacy tests (tests/transformer/privacy)
#   ffmpeg     real capture processes and HTTP streams for the monitor (tests/transformer/monitor)
# Those tests skip cleanly, naming the missing program, so nothing here may fail the caller:
# without root (or password-less sudo) or apt, or when the Debian mirror is unreachable, it
# says so and returns 0.
set -uo pipefail

log() { printf '[install-system-tools] %s\n' "$*" >&2; }

missing=()
for program in espeak-ng ffmpeg; do
  command -v "$program" >/dev/null 2>&1 || missing+=("$program")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "${missing[*]} missing and no apt-get: the tests that need them will skip"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  log "${missing[*]} missing and no root: the tests that need them will skip"
  exit 0
fi
log "installing ${missing[*]}"
if ! { "${as_root[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq && \
       DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
         --no-install-recommends "${missing[@]}"; } >/dev/null 2>&1; then
  log "apt-get could not install ${missing[*]}: the tests that need them will skip"
fi
exit 0
