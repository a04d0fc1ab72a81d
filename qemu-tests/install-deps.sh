#!/bin/sh
# Installs what the boot tests need, on Debian, as root: QEMU, a static busybox, musl for the
# static depmod, the codecs that recompress modules, mmdebstrap and e2fsprogs for the caller
# tests' Debian root and its disk image, and for the boards their cross compilers and qemu-user
# (which runs their kmod on the host). Everything else (kernels, kmod, the root) is fetched into a
# cache by scripts/fetch when the tests run.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# qemu-system-x86's recommends are a GUI and firmware the tests do not use. The boards need the
# other qemu-systems, mke2fs for their disks, and the cross compilers (scripts/cross).
apt-get install -y -q --no-install-recommends \
    qemu-system-x86 busybox-static cpio kmod musl-tools xz-utils zstd mmdebstrap e2fsprogs \
    qemu-system-arm qemu-system-misc qemu-user-static binutils \
    gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-armhf-cross gcc-riscv64-linux-gnu \
    libc6-dev-riscv64-cross gcc-s390x-linux-gnu libc6-dev-s390x-cross
if command -v rustup >/dev/null; then
    rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl \
        armv7-unknown-linux-gnueabihf riscv64gc-unknown-linux-gnu s390x-unknown-linux-gnu
fi
