#!/usr/bin/env bash
# The cluster leg of the test command (scripts/test.sh, after scripts/images.sh built the images):
# the deployment on a real single-node Kubernetes + KServe built from source (scripts/cluster.sh),
# tested by tests/cluster. Installs what the cluster needs with apt-get, builds its binaries (cached
# in K8S_HOME for every later run on the machine; ~13 min cold on 2 cores), runs the tests, which start
# the cluster and stop it, and removes whatever a failed run left.
# Skips, with a message saying why, only where a cluster cannot run at all: not root, no apt-get for the
# packages, or no images (scripts/images.sh skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[cluster-tests] %s\n' "$*" >&2; }
skip() { log "SKIPPED: $*"; exit 0; }

[ "$(id -u)" = 0 ] || skip "not root (a cluster needs a bridge, iptables and its own containerd)"
TAG=${AUDIOGUARD_IMAGES_TAG:-test}
for image in audioguard-transformer audioguard-predictor sifis-dht-broker; do
    podman image exists "localhost/$image:$TAG" 2>/dev/null || skip "no image localhost/$image:$TAG (scripts/images.sh did not build it)"
done
packages=()
for program in containerd ctr runc iptables ip curl gcc openssl; do
    command -v "$program" >/dev/null || packages+=("$program")
done
[ -x /usr/lib/cni/bridge ] || packages+=(containernetworking-plugins)
if [ ${#packages[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || skip "missing ${packages[*]} and no apt-get"
    # the Debian packages of the missing programs (ctr ships with containerd, ip with iproute2)
    debs=$(printf '%s\n' "${packages[@]}" | sed -e 's/^ctr$/containerd/' -e 's/^ip$/iproute2/' | sort -u | tr '\n' ' ')
    log "installing $debs"
    apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $debs >&2
fi
# the system's containerd service, if the package started one, is not ours and not needed
systemctl disable --now containerd >/dev/null 2>&1 || true

started=$(date +%s)
bash scripts/cluster.sh build
log "binaries ready in $(( $(date +%s) - started )) s"
trap 'bash scripts/cluster.sh down >&2 || true' EXIT
export AUDIOGUARD_CLUSTER_TESTS=1 AUDIOGUARD_IMAGES_TAG=$TAG
.venv/bin/pytest -p no:cacheprovider -ra --durations=10 tests/cluster
