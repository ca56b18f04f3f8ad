#!/usr/bin/env bash
# Exits 0 if podman can build and run containers here; otherwise says why on stderr and exits 1.
set -uo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/containers/containers.conf}
for command in podman debootstrap; do
    command -v "$command" >/dev/null || { echo "$command is not installed" >&2; exit 1; }
done
if ! out=$(podman info 2>&1 >/dev/null); then
    echo "podman info failed: $(echo "$out" | tail -1)" >&2
    exit 1
fi
base=${QRT_IMAGE_BASE:-localhost/qrt-python:3.11-bookworm}
if podman image exists "$base" && ! out=$(podman run --rm --user 10001 --read-only --cap-drop ALL "$base" true 2>&1); then
    echo "podman cannot start a container: $(echo "$out" | tail -1)" >&2
    exit 1
fi
exit 0
