#!/usr/bin/env bash
# Regenerate the lock files:
#   bash scripts/lock.sh          requirements/<image>.lock: what each container image installs, from
#                                 requirements/<image>.in, pinned to requirements-dev.lock (requirements/README.md),
#                                 and requirements/<image>.arm64.lock, the same for aarch64 wheels
#   bash scripts/lock.sh --all    first requirements.lock and requirements-dev.lock (the development venv,
#                                 from pyproject.toml; uv may pick newer versions), then the images' locks
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
uv=.venv/bin/uv
target=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes)
if [ "${1:-}" = "--all" ]; then
    "$uv" pip compile -q pyproject.toml "${target[@]}" -o requirements.lock
    "$uv" pip compile -q pyproject.toml --extra dev "${target[@]}" -o requirements-dev.lock
fi

# a fixed path, so the locks' "via -c ..." annotations do not change from run to run
constraints=.cache/requirements-pins.txt
mkdir -p .cache
# the pins the tests run (requirements-dev.lock) without their hashes (uv takes hashes from the compile itself)
grep -E "^[A-Za-z0-9]" requirements-dev.lock | sed 's/ *\\$//' > "$constraints"
for image in transformer predictor predictor-ray; do
    "$uv" pip compile -q "requirements/$image.in" "${target[@]}" -c "$constraints" \
        --no-emit-package libclang --no-emit-package pillow --custom-compile-command "bash scripts/lock.sh" \
        -o "requirements/$image.lock"
done
# arm64 (aarch64) images: the same pins but where a pinned version has no aarch64 wheel
# (requirements/arm64-overrides.txt says which and why); --only-binary makes a missing wheel an error here.
overrides=requirements/arm64-overrides.txt
overridden=$(grep -E "^[A-Za-z0-9]" "$overrides" | sed -E 's/[^A-Za-z0-9_.-].*//' | paste -sd'|')
arm64_constraints=.cache/requirements-pins-arm64.txt
grep -v -i -E "^($overridden)==" "$constraints" > "$arm64_constraints"
for image in transformer predictor predictor-ray; do
    "$uv" pip compile -q "requirements/$image.in" --python-version 3.11 \
        --python-platform aarch64-manylinux_2_28 --generate-hashes --only-binary :all: \
        -c "$arm64_constraints" --override "$overrides" \
        --no-emit-package libclang --no-emit-package pillow --custom-compile-command "bash scripts/lock.sh" \
        -o "requirements/$image.arm64.lock"
done
echo "lock: requirements/{transformer,predictor,predictor-ray}{,.arm64}.lock${1:+ requirements.lock requirements-dev.lock}"
