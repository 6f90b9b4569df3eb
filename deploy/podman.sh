#!/bin/sh
# Build and run the service image with buildah and podman, without a Docker daemon and without
# a container registry (the development and CI machines have neither).
#
#   deploy/podman.sh build [gpu|cpu] [TAG]   the image (and, when absent, the local base image)
#   deploy/podman.sh base                    only the local base image
#   deploy/podman.sh podman ARGS...          podman with this script's storage and settings
#   deploy/podman.sh buildah ARGS...         buildah likewise
#
# Example:  deploy/podman.sh build cpu localhost/collapse-lab:cpu
#           deploy/podman.sh podman run -d --name lab --init --network host --read-only \
#               --tmpfs /tmp -e PORT=8000 localhost/collapse-lab:cpu
#
# The base of both Dockerfile stages (python:3.11-slim-bookworm) cannot be pulled here, so a
# stand-in is made from Debian's packages: debootstrap's minbase bookworm from the mirror in
# /etc/apt/sources.list.d/debian.sources with python3, python3-venv and ca-certificates, and a
# venv at /usr/local (so /usr/local/bin/python and pip exist as in the official image),
# imported as localhost/python-shim:3.11-slim-bookworm. Made once, reused by tag. Needs root and the Debian packages buildah podman runc catatonit debootstrap
# containernetworking-plugins netavark (`make system-test-deps` installs them).
#
# State lives under CONTAINER_STATE (default /var/tmp/collapse-lab-containers), apart from the
# machine's default container storage: storage.conf (images and layers) and containers.conf,
# which names runc (crun 1.8 rejects this machine's hybrid cgroups) and ulimits within the
# machine's hard limit (podman's default nofile 1048576 cannot be set here). See
# /work/shared/containers.md.
set -eu

STATE=${CONTAINER_STATE:-/var/tmp/collapse-lab-containers}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON_BASE=localhost/python-shim:3.11-slim-bookworm

configure() {
    mkdir -p "$STATE"
    nofile=$(ulimit -Hn)
    [ "$nofile" = unlimited ] && nofile=1048576
    # Written to a temporary name and renamed: a podman started meanwhile reads a whole file.
    cat > "$STATE/containers.conf.$$" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
    cat > "$STATE/storage.conf.$$" <<EOF
[storage]
driver = "overlay"
graphroot = "$STATE/storage"
runroot = "$STATE/run"
EOF
    mv -f "$STATE/containers.conf.$$" "$STATE/containers.conf"
    mv -f "$STATE/storage.conf.$$" "$STATE/storage.conf"
    export CONTAINERS_CONF="$STATE/containers.conf"
    export CONTAINERS_STORAGE_CONF="$STATE/storage.conf"
}

mirror() {  # the machine's own Debian mirror, else Debian's
    found=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null \
        | head -n 1 | cut -d ' ' -f 1)
    echo "${found:-http://deb.debian.org/debian}"
}

base() {
    podman image exists "$PYTHON_BASE" && return
    # One debootstrap with python3 included, then one import: no second apt run in a build.
    rootfs=$(mktemp -d "$STATE/rootfs.XXXXXX")
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "${DEBIAN_MIRROR:-$(mirror)}" > "$STATE/debootstrap.log" 2>&1 \
        || { tail -n 20 "$STATE/debootstrap.log"; exit 1; }
    chroot "$rootfs" python3 -m venv /usr/local
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' - "$PYTHON_BASE"
    rm -rf "$rootfs"
}

build() {
    runtime=${1:-gpu}
    tag=${2:-localhost/collapse-lab:$runtime}
    base
    # pip in the build trusts this machine's CA bundle; both are mounted for the build only.
    printf '[global]\ncert = /run/host-ca.crt\n' > "$STATE/pip.conf.$$"
    mv -f "$STATE/pip.conf.$$" "$STATE/pip.conf"
    buildah bud --isolation chroot --network host --pull=never --layers --format docker \
        -v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro \
        -v "$STATE/pip.conf:/etc/pip.conf:ro" \
        --build-arg "BASE=$PYTHON_BASE" --build-arg "RUNTIME=$runtime" \
        -t "$tag" "$ROOT"
}

configure
command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
    build) build "$@" ;;
    base) base ;;
    podman | buildah) exec "$command" "$@" ;;
    *) sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
