# Sourced by scripts/images.sh and scripts/images-arm64.sh: podman configured for this kind of sandbox,
# and the Debian bookworm base the images build on, made locally with mmdebstrap where Docker Hub is
# unreachable, for any architecture dpkg names. Needs CACHE (the cache folder) and log() from the caller.

# runc (crun refuses hybrid cgroups) and default ulimits no higher than this process's hard limits
# (raising one needs a capability a sandbox may lack). Our own file: the system's stays untouched.
# Written whole then renamed: the other script may be reading it.
configure_podman() {
    local nofile nproc
    nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
    [ "$nofile" = unlimited ] || [ "$nofile" -gt 4096 ] && nofile=4096
    [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ] && nproc=4096
    export CONTAINERS_CONF="$CACHE/containers.conf"
    cat > "$CONTAINERS_CONF.$$" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
EOF
    mv "$CONTAINERS_CONF.$$" "$CONTAINERS_CONF"
}

# What a site's own base image carries here: the site's CA bundle and a pip.conf naming it.
# make_base ARCH: the base for ARCH (amd64, arm64; a foreign one is made under qemu-user, which needs
# binfmt_misc registered with the F flag), cached as a tarball and imported into podman once; sets BASE.
make_base() {
    local arch=$1 options recipe key tarball
    BASE=localhost/python:3.11-slim-bookworm
    options="--variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
--dpkgopt=path-exclude=/usr/share/doc/* --dpkgopt=path-exclude=/usr/share/man/* \
--dpkgopt=path-exclude=/usr/share/locale/*"
    if [ "$arch" != "$(dpkg --print-architecture)" ]; then
        BASE=$BASE-$arch
        options="$options --architectures=$arch"
    fi
    recipe="mmdebstrap $options bookworm"
    key=$( { echo "$recipe"; cat /etc/ssl/certs/ca-certificates.crt; } | sha256sum | cut -c1-16)
    tarball="$CACHE/bookworm-base-$key.tar"
    if [ ! -f "$tarball" ]; then
        log "making the bookworm $arch base with mmdebstrap (about 30 s natively, minutes under qemu-user)"
        # shellcheck disable=SC2086
        $recipe --format=tar \
            --customize-hook='cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/site-ca.crt"' \
            --customize-hook='printf "[global]\ncert = /etc/ssl/certs/site-ca.crt\n" > "$1/etc/pip.conf"' \
            --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
            "$tarball.part" >&2
        mv "$tarball.part" "$tarball"
    fi
    if [ "$(podman image inspect --format '{{index .Labels "base-key"}}' "$BASE" 2>/dev/null)" != "$key" ]; then
        log "importing the base as $BASE"
        podman import --arch "$arch" --change "LABEL base-key=$key" --change 'CMD ["python3"]' \
            "$tarball" "$BASE" >/dev/null
    fi
}
