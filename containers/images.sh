#!/usr/bin/env bash
# Builds the four qrt images with podman from the project's own Dockerfiles (services/*/Dockerfile),
# on a Python 3.11 base made here from Debian bookworm's packages (debootstrap), so no registry is
# needed. Prints each image's size and build time.
#
#   containers/images.sh                      # qrt-<service>:dev on localhost/qrt-python:3.11-bookworm
#   QRT_IMAGE_TAG=1.0 containers/images.sh
#
# Caches: the base image stays in podman's storage (made once; `podman rmi` it to make it again),
# the debootstrap root file system in $QRT_BASE_CACHE, and the layers of every build in podman's
# storage: the build stage is shared by the four images, and its dependency layer is rebuilt only
# when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/containers/containers.conf}
BASE=${QRT_IMAGE_BASE:-localhost/qrt-python:3.11-bookworm}
TAG=${QRT_IMAGE_TAG:-dev}
CACHE=${QRT_BASE_CACHE:-/var/tmp/qrt-base}
SUITE=bookworm

command -v podman >/dev/null || { echo "images: podman is not installed (apt-get install podman buildah runc debootstrap)"; exit 1; }

# The Debian mirror apt uses on this machine (deb822 or one-line sources).
mirror() {
    local uri
    uri=$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1 || true)
    [ -n "$uri" ] || uri=$(grep -h -m1 -E '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

if ! podman image exists "$BASE"; then
    command -v debootstrap >/dev/null || { echo "images: debootstrap is not installed"; exit 1; }
    start=$(date +%s)
    if [ ! -e "$CACHE/rootfs/.qrt-complete" ]; then
        rm -rf "$CACHE/rootfs" && mkdir -p "$CACHE"
        echo "images: debootstrap $SUITE (python3, python3-venv, ca-certificates) from $(mirror)"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            "$SUITE" "$CACHE/rootfs" "$(mirror)" >"$CACHE/debootstrap.log"
        rm -rf "$CACHE"/rootfs/var/cache/apt/archives/*.deb "$CACHE"/rootfs/var/lib/apt/lists/*
        touch "$CACHE/rootfs/.qrt-complete"
    fi
    # An imported file system has no image configuration: give it the PATH and locale that
    # the official Python images have, which the Dockerfiles extend.
    tar -C "$CACHE/rootfs" --exclude=./.qrt-complete -c . | podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$BASE" >/dev/null
    echo "images: base $BASE made in $(($(date +%s) - start)) s"
fi

# The builds' pip and apt reach the package index the way this machine's do: its pip configuration,
# the local indexes and wheel directories it names, and its CA bundle, mounted read-only.
mounts=()
for path in /etc/pip.conf /etc/xdg/pip /etc/ssl/certs; do
    [ -e "$path" ] && mounts+=(-v "$path:$path:ro")
done
if command -v pip3 >/dev/null; then
    while read -r dir; do
        [ -d "$dir" ] && mounts+=(-v "$dir:$dir:ro")
    done < <(pip3 config list 2>/dev/null | grep -oE "(file://)?/[^ ']+" | sed 's|^file://||' \
             | while read -r p; do [ -d "$p" ] && echo "$p" || dirname "$p"; done \
             | grep -v -E '^/etc' | sed -E 's|^(/[^/]+/[^/]+).*|\1|' | sort -u)
fi

printf '%-18s %10s %8s\n' image size seconds
for service in api-gateway scheduler executor device-2300; do
    start=$(date +%s)
    podman build --quiet --layers --network host "${mounts[@]}" --build-arg "BASE=$BASE" \
        -f "services/$service/Dockerfile" -t "localhost/qrt-$service:$TAG" . >/dev/null
    seconds=$(($(date +%s) - start))
    size=$(podman image inspect --format '{{.Size}}' "localhost/qrt-$service:$TAG")
    printf '%-18s %7d MB %8d\n' "qrt-$service" $((size / 1000000)) "$seconds"
done
