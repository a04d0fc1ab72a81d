//! The boards, one boot each: another architecture's Debian kernel under qemu-system (TCG) with
//! 128 MiB, its static depmod, busybox and kmod in the initramfs, its whole module tree as
//! `.ko.xz` on a virtio disk. See qemu-tests/README.md.

use qemu_tests::board;

const TMP: &str = env!("CARGO_TARGET_TMPDIR");

#[test]
fn b1_aarch64_arm64() {
    board::AARCH64.run("b1-aarch64", TMP);
}

#[test]
fn b2_armv7_armmp() {
    board::ARMV7.run("b2-armv7", TMP);
}

#[test]
fn b3_riscv64_trixie() {
    board::RISCV64.run("b3-riscv64", TMP);
}

#[test]
fn b4_s390x_big_endian() {
    board::S390X.run("b4-s390x", TMP);
}
