//! The scenarios' real tree: a fixed subset of Debian's amd64 tree, and the kernel's symbols as
//! a System.map or Module.symvers would list them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use depmod_core::ModuleInfo;

/// The real tree's subset: btrfs, ext4 and xfs with their libraries, virtio, SCSI, USB storage,
/// e1000/e1000e, and modules with device names (fuse, loop, tun, autofs4, uinput, dm-mod) — with
/// dashes in names, a namespace, softdeps and many aliases. Dependencies are closed over.
pub const REAL_MODULES: &[&str] = &[
    "kernel/arch/x86/crypto/crc32c-intel.ko",
    "kernel/block/t10-pi.ko",
    "kernel/crypto/crc32c_generic.ko",
    "kernel/crypto/crct10dif_common.ko",
    "kernel/crypto/cryptd.ko",
    "kernel/crypto/crypto_simd.ko",
    "kernel/crypto/xor.ko",
    "kernel/drivers/block/loop.ko",
    "kernel/drivers/block/virtio_blk.ko",
    "kernel/drivers/char/virtio_console.ko",
    "kernel/drivers/input/misc/uinput.ko",
    "kernel/drivers/md/dm-mod.ko",
    "kernel/drivers/net/ethernet/intel/e1000/e1000.ko",
    "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko",
    "kernel/drivers/net/net_failover.ko",
    "kernel/drivers/net/tun.ko",
    "kernel/drivers/net/virtio_net.ko",
    "kernel/drivers/scsi/scsi_common.ko",
    "kernel/drivers/scsi/scsi_mod.ko",
    "kernel/drivers/scsi/sd_mod.ko",
    "kernel/drivers/scsi/virtio_scsi.ko",
    "kernel/drivers/usb/common/usb-common.ko",
    "kernel/drivers/usb/core/usbcore.ko",
    "kernel/drivers/usb/storage/usb-storage.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_balloon.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/fs/autofs/autofs4.ko",
    "kernel/fs/btrfs/btrfs.ko",
    "kernel/fs/ext4/ext4.ko",
    "kernel/fs/fuse/fuse.ko",
    "kernel/fs/jbd2/jbd2.ko",
    "kernel/fs/mbcache.ko",
    "kernel/fs/nls/nls_utf8.ko",
    "kernel/fs/xfs/xfs.ko",
    "kernel/lib/crc-t10dif.ko",
    "kernel/lib/crc16.ko",
    "kernel/lib/crc64-rocksoft.ko",
    "kernel/lib/crc64.ko",
    "kernel/lib/libcrc32c.ko",
    "kernel/lib/raid6/raid6_pq.ko",
    "kernel/lib/zstd/zstd_compress.ko",
    "kernel/net/core/failover.ko",
];

/// Makes `path` a file of its own (not a hard link into the cache) before it is changed.
pub fn unshare_file(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else { return };
    if meta.is_file() && meta.nlink() > 1 {
        let data = fs::read(path).unwrap();
        let mtime = meta.modified().unwrap();
        fs::remove_file(path).unwrap();
        fs::write(path, data).unwrap();
        fs::File::options().write(true).open(path).unwrap().set_modified(mtime).unwrap();
    }
}

/// The real subset of the Debian tree at `src`, hard-linked into `root`.
pub fn build_real(src: &Path, root: &Path, version: &str) {
    let from = src.join("lib/modules").join(version);
    let to = root.join("lib/modules").join(version);
    for m in REAL_MODULES {
        let target = to.join(m);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::hard_link(from.join(m), &target).unwrap();
    }
    for f in ["modules.builtin", "modules.builtin.modinfo"] {
        fs::hard_link(from.join(f), to.join(f)).unwrap();
    }
    let order = fs::read_to_string(from.join("modules.order")).unwrap();
    let kept: String =
        order.lines().filter(|l| REAL_MODULES.contains(l)).map(|l| format!("{l}\n")).collect();
    fs::write(to.join("modules.order"), kept).unwrap();
}

/// What the modules under `dir` export, and what they need that none of them exports (with the
/// CRC of its first `__versions` record): the kernel's part.
pub fn kernel_symbols(dir: &Path) -> BTreeMap<String, u64> {
    fn walk(dir: &Path, out: &mut Vec<ModuleInfo>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(&p, out);
            } else if p.to_string_lossy().ends_with(".ko") {
                out.push(ModuleInfo::parse(&fs::read(&p).unwrap()));
            }
        }
    }
    let mut infos = Vec::new();
    walk(dir, &mut infos);
    let exported: std::collections::BTreeSet<Vec<u8>> =
        infos.iter().flat_map(|i| i.exports().map(|(n, _)| n.to_vec())).collect();
    let mut kernel = BTreeMap::new();
    for info in &infos {
        for need in info.imports() {
            if !exported.contains(need.name) {
                let name = String::from_utf8_lossy(need.name).into_owned();
                kernel.entry(name).or_insert(need.crc);
            }
        }
    }
    kernel
}

/// A System.map of the kernel of the modules under `dir`, less the symbols `missing`: each
/// symbol with its `__ksymtab_` entry, among a few other lines, as the real file has them.
pub fn system_map(dir: &Path, missing: &[String]) -> String {
    let mut text = String::from(
        "0000000000000000 A __per_cpu_start\nffffffff81000000 T _stext\n\
         ffffffff81000000 T startup_64\n",
    );
    for (i, name) in kernel_symbols(dir).keys().filter(|n| !missing.contains(n)).enumerate() {
        let _ = writeln!(text, "ffffffff8{:07x} T {name}", 0x100000 + i * 16);
        let _ = writeln!(text, "ffffffff8{:07x} r __ksymtab_{name}", 0x2000000 + i * 12);
    }
    text.push_str("ffffffff83000000 B _end\n");
    text
}

/// A Module.symvers of the kernel of the modules under `dir`, less the symbols `missing`, with
/// the CRCs the modules expect except for the symbols `bad_crc`.
pub fn module_symvers(dir: &Path, missing: &[String], bad_crc: &[String]) -> String {
    let mut text = String::new();
    for (name, crc) in kernel_symbols(dir).iter().filter(|(n, _)| !missing.contains(n)) {
        let crc = if bad_crc.contains(name) { crc ^ 0x5a5a } else { *crc };
        let _ = writeln!(text, "0x{crc:08x}\t{name}\tvmlinux\tEXPORT_SYMBOL\t");
    }
    text
}
