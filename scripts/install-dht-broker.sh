#!/usr/bin/env bash
# Put a working SIFIS-Home DHT broker at .cache/bin/sifis-dht-broker (third_party/sifis-dht-broker).
#
# In order, the first that runs on this machine:
#   1. the binary already installed there;
#   2. a prebuilt one: $AUDIOGUARD_DHT_BROKER_PREBUILT, else ../shared/dht-broker/sifis-dht-broker;
#   3. a release build of the vendored source with the vendored Cargo.lock (cargo build --locked;
#      needs cargo, protoc, libssl-dev, pkg-config, installed with apt-get when missing and root;
#      6-15 min on 2 cores, incremental under .cache/dht-broker-build/).
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENDOR="$REPO_ROOT/third_party/sifis-dht-broker"
TOOLS_DIR="${AUDIOGUARD_TOOLS_DIR:-$REPO_ROOT/.cache}"
BIN="$TOOLS_DIR/bin/sifis-dht-broker"
BUILD_DIR="$TOOLS_DIR/dht-broker-build"

log() { printf '[install-dht-broker] %s\n' "$*" >&2; }
runs() { [ -x "$1" ] && "$1" --help >/dev/null 2>&1; }

mkdir -p "$TOOLS_DIR/bin"
if runs "$BIN"; then echo "$BIN"; exit 0; fi

prebuilt="${AUDIOGUARD_DHT_BROKER_PREBUILT:-$REPO_ROOT/../shared/dht-broker/sifis-dht-broker}"
if runs "$prebuilt"; then
    log "using the prebuilt broker $prebuilt"
    install -m 0755 "$prebuilt" "$BIN"
    echo "$BIN"
    exit 0
fi

missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing ${missing[*]} with apt-get"
        { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >&2
    fi
fi
CARGO="$(command -v cargo || echo "$HOME/.cargo/bin/cargo")"
if [ ! -x "$CARGO" ] || ! command -v protoc >/dev/null; then
    log "cannot build the broker: needs cargo (rustup) and protoc (apt-get install protobuf-compiler)"
    exit 1
fi

log "building sifis-dht-broker from the vendored source (6-15 min on 2 cores)"
mkdir -p "$BUILD_DIR"
src="$BUILD_DIR/libp2p-rust-dht"
if [ ! -f "$src/Cargo.toml" ]; then
    tar -xzf "$VENDOR"/libp2p-rust-dht-*.tar.gz -C "$BUILD_DIR"
fi
cp "$VENDOR/Cargo.lock" "$src/Cargo.lock"
( cd "$src" && "$CARGO" build --release --locked -q --bin sifis-dht-broker ) >&2
install -m 0755 "$src/target/release/sifis-dht-broker" "$BIN"
runs "$BIN" || { log "the built broker does not run"; exit 1; }
echo "$BIN"
