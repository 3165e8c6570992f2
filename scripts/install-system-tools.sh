#!/usr/bin/env bash
# Best effort: install the Debian packages some tests use for real instead of skipping:
#   espeak-ng  synthesised words for the privacy tests (tests/transformer/privacy)
#   ffmpeg     real capture processes and HTTP streams for the monitor (tests/transformer/monitor)
#   mosquitto  a real MQTT broker on loopback for the MQTT sink (tests/support/mosquitto.py; openssl
#              makes the TLS test's CA, mosquitto_passwd its password file)
#   prometheus promtool checks and unit-tests the chart's alerts; a real Prometheus scrapes the
#              services on loopback (tests/deploy/test_alerts.py, tests/e2e/test_operator_metrics.py)
#   GStreamer's RTSP server (gir1.2-gst-rtsp-server-1.0, with its Opus/WAV plugins and python3-gi)
#              a real RTSP camera on loopback (tests/support/rtsp_server.py)
#   chromium, chromium-driver  a real headless browser on the web page /ui (tests/e2e/test_ui_browser.py)
# Those tests skip cleanly, naming the missing program, so nothing here may fail the caller:
# without root (or password-less sudo) or apt, or when the Debian mirror is unreachable, it
# says so and returns 0.
set -uo pipefail

log() { printf '[install-system-tools] %s\n' "$*" >&2; }

missing=()
for program in espeak-ng ffmpeg openssl; do
  command -v "$program" >/dev/null 2>&1 || missing+=("$program")
done
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
# Debian installs the broker in /usr/sbin, not on every user's PATH
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
rtsp_check="import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import Gst, GstRtspServer
Gst.init(None); assert all(Gst.ElementFactory.find(n) for n in ('wavparse', 'opusenc', 'rtpopuspay'))"
if ! /usr/bin/python3 -c "$rtsp_check" >/dev/null 2>&1; then
  missing+=(gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good python3-gi)
fi
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
