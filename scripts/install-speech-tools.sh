#!/usr/bin/env bash
# Best effort: install espeak-ng (Debian package) so the privacy tests that need
# real synthesised words run instead of skipping. Those tests skip cleanly when
# it is missing, so nothing here may fail the caller: without root (or
# password-less sudo) or apt, or when the Debian mirror is unreachable, it says
# so and returns 0.
set -uo pipefail

log() { printf '[install-speech-tools] %s\n' "$*" >&2; }

if command -v espeak-ng >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "espeak-ng missing and no apt-get: the espeak-ng privacy tests will skip"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  log "espeak-ng missing and no root: the espeak-ng privacy tests will skip"
  exit 0
fi
log "installing espeak-ng"
if ! { "${as_root[@]}" apt-get update -qq && \
       DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends espeak-ng; } \
     >/dev/null 2>&1; then
  log "apt-get could not install espeak-ng: the espeak-ng privacy tests will skip"
fi
exit 0
