#!/usr/bin/env bash
# make image: builds ./Dockerfile with buildah (no Docker daemon on these machines).
#
#   IMAGE  the tag to build (default localhost/vision:latest)
#   BASE   the base image; unset: a Debian bookworm base made here from Debian's
#          archive with debootstrap (no container registry is reachable here), once
#
# This machine's own network settings go here, never into the Dockerfile: package
# downloads pass a TLS proxy whose certificate only the host's CA bundle holds, so the
# build's steps see that bundle (and pip is told to use it) through read-only mounts.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE=${IMAGE:-localhost/vision:latest}
DEFAULT_BASE=localhost/vision-base:bookworm
BASE=${BASE:-$DEFAULT_BASE}
HOST_CA=/etc/ssl/certs/ca-certificates.crt

# A minimal Debian with Python 3.11, venv and useradd, imported as an image.
make_base() {
    local root
    root=$(mktemp -d)
    trap 'rm -rf "$root"' RETURN
    echo "base: debootstrap bookworm (minbase, python3) into $root"
    debootstrap --variant=minbase --include=python3,python3-venv,passwd,ca-certificates \
        bookworm "$root/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$root/log" \
        || { tail -20 "$root/log"; return 1; }
    rm -rf "$root"/rootfs/var/cache/apt/archives/*.deb "$root"/rootfs/var/lib/apt/lists/*
    local container
    container=$(buildah from scratch)
    buildah copy --quiet "$container" "$root/rootfs" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd /bin/bash "$container"
    buildah commit --quiet --rm "$container" "$DEFAULT_BASE" >/dev/null
    echo "base: $DEFAULT_BASE"
}

started=$(date +%s)
if [ "$BASE" = "$DEFAULT_BASE" ] && ! buildah inspect --type image "$BASE" >/dev/null 2>&1; then
    make_base
    echo "base: made in $(( $(date +%s) - started )) s"
fi

mounts=()
if [ -f "$HOST_CA" ]; then
    pip_conf=$(mktemp)
    trap 'rm -f "$pip_conf"' EXIT
    printf '[global]\ncert = %s\n' "$HOST_CA" >"$pip_conf"
    mounts=(--volume "$HOST_CA:$HOST_CA:ro" --volume "$pip_conf:/etc/pip.conf:ro")
fi

built=$(date +%s)
# docker format: OCI image configs have no HEALTHCHECK. chroot isolation: what runs here.
buildah build --isolation chroot --format docker --layers --build-arg "BASE=$BASE" \
    "${mounts[@]}" --tag "$IMAGE" .
echo "image: $IMAGE, built in $(( $(date +%s) - built )) s ($(( $(date +%s) - started )) s with the base), $(buildah images --format '{{.Size}}' "$IMAGE")"
