#!/usr/bin/env bash
# Install the tools that validate the deployment files (helm, kubeconform, kustomize,
# deploycheck) and the offline Kubernetes JSON schemas, all pinned.
#
# Idempotent: every step is skipped when its pinned result is already in place.
# Everything lands in .cache/ (gitignored) unless AUDIOGUARD_TOOLS_DIR says otherwise:
#   .cache/bin/helm, .cache/bin/kubeconform, .cache/bin/kustomize, .cache/bin/deploycheck
#   .cache/kubernetes-json-schema/v1.32.0-local-strict/   (from the PyPI wheel kubernetes-validate)
# Needs: go (through the Go module proxy; $GO, else `go` on PATH, else /usr/local/go/bin/go) and
# python3 with pip (PyPI). No other network access.
set -euo pipefail

HELM_VERSION=v3.21.4
# The Kubernetes minor of helm's client-go (v0.36): what `helm template` assumes without --kube-version.
HELM_K8S_MINOR=36
KUBECONFORM_VERSION=v0.8.0
KUSTOMIZE_VERSION=v5.8.2
# The Kubernetes version the manifests target; its strict schemas come from this wheel.
KUBERNETES_SCHEMA_VERSION=v1.32.0
SCHEMA_WHEEL=kubernetes-validate==1.37.0
SCHEMA_WHEEL_SHA256=85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${AUDIOGUARD_TOOLS_DIR:-$REPO_ROOT/.cache}"
BIN_DIR="$TOOLS_DIR/bin"
SCHEMA_DIR="$TOOLS_DIR/kubernetes-json-schema/$KUBERNETES_SCHEMA_VERSION-local-strict"
mkdir -p "$BIN_DIR"

log() { printf '[install-deploy-tools] %s\n' "$*" >&2; }

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

go_install() {  # go_install <binary> <module path>@<version> [ldflags]
    log "building $1 from $2 (Go module proxy)"
    if [[ ! -x "$GO" ]]; then
        log "go not found (set GO=/path/to/go); it builds $1"
        exit 1
    fi
    GOBIN="$BIN_DIR" GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0 "$GO" install -trimpath -ldflags "${3:-}" "$2"
}

# `go install` skips the release ldflags (kubeconform then says "development"), so the pinned version
# is recorded next to each binary; helm gets the ldflags of its Makefile (version, Kubernetes default).
install_pinned() {  # install_pinned <binary> <module path> <version> [ldflags]
    if [[ ! -x "$BIN_DIR/$1" || "$(cat "$BIN_DIR/.$1-version" 2>/dev/null)" != "$3" ]]; then
        go_install "$1" "$2@$3" "${4:-}"
        echo "$3" >"$BIN_DIR/.$1-version"
    fi
}
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for package in pkg/chartutil pkg/lint/rules; do
    helm_ldflags+=" -X helm.sh/helm/v3/$package.k8sVersionMajor=1 -X helm.sh/helm/v3/$package.k8sVersionMinor=$HELM_K8S_MINOR"
done
install_pinned helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$helm_ldflags"
install_pinned kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION" "-s -w"
# Pinned too, rather than whatever `kubectl kustomize` embeds: overlays render the same everywhere.
install_pinned kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION" "-s -w"

# deploycheck (tests/deploy/deploycheck): BuildKit's Dockerfile parser and compose-go's loader, the
# code behind `docker build` and `docker compose config`, pinned by its go.sum. Rebuilt when its
# sources change.
deploycheck_src="$REPO_ROOT/tests/deploy/deploycheck"
deploycheck_stamp="$(cat "$deploycheck_src"/go.mod "$deploycheck_src"/go.sum "$deploycheck_src"/*.go | sha256sum | cut -c1-16)"
if [[ ! -x "$BIN_DIR/deploycheck" || "$(cat "$BIN_DIR/.deploycheck-version" 2>/dev/null)" != "$deploycheck_stamp" ]]; then
    if [[ ! -x "$GO" ]]; then
        log "go not found (set GO=/path/to/go); it builds deploycheck"
        exit 1
    fi
    log "building deploycheck from tests/deploy/deploycheck (Go module proxy)"
    (cd "$deploycheck_src" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
        "$GO" build -trimpath -ldflags "-s -w" -o "$BIN_DIR/deploycheck" .)
    echo "$deploycheck_stamp" >"$BIN_DIR/.deploycheck-version"
fi

if [[ ! -f "$SCHEMA_DIR/.complete" ]]; then
    PYTHON="${PYTHON:-}"
    if [[ -z "$PYTHON" ]]; then
        if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then PYTHON="$REPO_ROOT/.venv/bin/python"; else PYTHON=python3; fi
    fi
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    log "fetching $SCHEMA_WHEEL from PyPI (hash-pinned) for the $KUBERNETES_SCHEMA_VERSION strict schemas"
    printf '%s --hash=sha256:%s\n' "$SCHEMA_WHEEL" "$SCHEMA_WHEEL_SHA256" >"$work/requirements.txt"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
        -r "$work/requirements.txt" -d "$work"
    "$PYTHON" - "$work" "$SCHEMA_DIR" "$KUBERNETES_SCHEMA_VERSION-local-strict" <<'EOF'
import pathlib, shutil, sys, zipfile

work, dest, flavour = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
(wheel,) = work.glob("kubernetes_validate-*.whl")
prefix = f"kubernetes_validate/kubernetes-json-schema/{flavour}/"
staging = dest.with_name(dest.name + ".partial")
shutil.rmtree(staging, ignore_errors=True)
staging.mkdir(parents=True)
with zipfile.ZipFile(wheel) as archive:
    members = [name for name in archive.namelist() if name.startswith(prefix) and name.endswith(".json")]
    if not members:
        sys.exit(f"{wheel.name} has no {flavour} schemas")
    for name in members:
        (staging / name[len(prefix):]).write_bytes(archive.read(name))
    (staging / "LICENSE").write_bytes(archive.read(next(n for n in archive.namelist() if n.endswith("LICENSE"))))
(staging / "SOURCE").write_text(
    f"{wheel.name} (PyPI, Apache-2.0): JSON schemas generated from the Kubernetes OpenAPI spec\n"
)
shutil.rmtree(dest, ignore_errors=True)
staging.rename(dest)
(dest / ".complete").write_text(f"{len(members)} schemas\n")
EOF
fi

log "helm $(cat "$BIN_DIR/.helm-version"), kubeconform $(cat "$BIN_DIR/.kubeconform-version")," \
    "kustomize $(cat "$BIN_DIR/.kustomize-version"), deploycheck $(cat "$BIN_DIR/.deploycheck-version")," \
    "schemas $SCHEMA_DIR"
