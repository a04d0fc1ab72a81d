#!/bin/sh
# Installs what the boot tests need, on Debian, as root: QEMU, a static busybox, musl for the
# static depmod, the codecs that recompress modules, and mmdebstrap and e2fsprogs for the caller
# tests' Debian root and its disk image. Everything else (kernels, kmod, the root) is
# fetched into a cache by scripts/fetch when the tests run.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# qemu-system-x86's recommends are a GUI and firmware the tests do not use.
apt-get install -y -q --no-install-recommends \
    qemu-system-x86 busybox-static cpio kmod musl-tools xz-utils zstd mmdebstrap e2fsprogs
if command -v rustup >/dev/null; then
    rustup target add x86_64-unknown-linux-musl
fi
