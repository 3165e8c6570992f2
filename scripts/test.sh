#!/usr/bin/env bash
# The test command (README and CI): set up, install the deployment validators and the
# real SIFIS DHT broker, lint, type-check, then every test (fast unit tests and the slow
# end-to-end ones over real loopback servers), then build and test the container images
# (scripts/images.sh; skipped with a message only where podman cannot run), then the deployment on a
# real Kubernetes + KServe built from source (scripts/cluster-tests.sh; skipped only where no
# cluster can run: not root, no apt-get). AUDIOGUARD_ARM64=1 adds the arm64 images, built and tested
# under qemu-user emulation (scripts/images-arm64.sh; too slow for the CI's 60 minutes).
# Extra arguments go to pytest and skip the images, e.g. `bash scripts/test.sh -m "not slow"`
# for the quick loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
bash scripts/install-deploy-tools.sh
bash scripts/install-system-tools.sh
bash scripts/install-dht-broker.sh >/dev/null
export PATH="$PWD/.cache/bin:$HOME/go/bin:$PATH"
export AUDIOGUARD_REQUIRE_DEPLOY_TOOLS=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy contract transformer predictor audioguard
.venv/bin/lint-imports
.venv/bin/pytest -ra --durations=15 "$@"
if [ $# -eq 0 ]; then
    bash scripts/images.sh
    # the arm64 images under qemu-user emulation: only when asked (README "Tests" gives its time)
    if [ "${AUDIOGUARD_ARM64:-}" = 1 ]; then bash scripts/images-arm64.sh; fi
    bash scripts/cluster-tests.sh
fi
