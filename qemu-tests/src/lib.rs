//! Boot tests of depmod: Debian's own kernels under QEMU, with our depmod indexing the modules
//! inside the guest and a real modprobe using the result.
//!
//! Map:
//! - [`prereq`]: QEMU, busybox, the fetched packages and a static depmod, or a loud skip;
//! - [`scenario`]: building one image with `depmod-initramfs`, the guest scripts and parameters;
//! - [`qemu`]: one boot, judged by the guest's marker line and a host-side timeout;
//! - [`debroot`], [`callers`]: depmod's real callers (dpkg, mkinitramfs, dracut, a build system)
//!   in a Debian 12 root, with kmod 34.2's depmod and with ours, and the root booted from disk;
//! - [`board`]: the boards, other architectures booted with their whole tree on a disk.
//!
//! The scenarios themselves are the integration tests in `tests/scenarios.rs`,
//! `tests/callers.rs` and `tests/boards.rs`: `cargo test -p qemu-tests --release`.

pub mod board;
pub mod callers;
pub mod debroot;
pub mod prereq;
pub mod qemu;
pub mod scenario;
