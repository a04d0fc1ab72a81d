//! DKMS, as a system uses it for a module from outside the kernel: the kernel's headers and DKMS
//! installed, then the package of `guest/dkms/` added, built and installed for the kernel, found
//! by modprobe, and removed again. `dkms install` and `dkms remove` each run `depmod -a VERSION
//! -F /boot/System.map-VERSION` on the installed tree, where ours has its module cache by then:
//! the first adds a module in a directory that did not exist (`updates/dkms`), the second takes
//! it away with that directory. The indexes after each are kept for the comparison.

use std::collections::BTreeMap;
use std::path::Path;

use super::compare::snapshot;
use super::{Call, call};
use crate::debroot::Root;

/// The DKMS package's name and version.
pub const PACKAGE: &str = "depmod-rs-dkms";
pub const PACKAGE_VERSION: &str = "1.0";
/// Its files, put in `/usr/src/PACKAGE-VERSION` as DKMS expects.
const FILES: [(&str, &str); 3] = [
    ("dkms.conf", include_str!("../../guest/dkms/dkms.conf")),
    ("Makefile", include_str!("../../guest/dkms/Makefile")),
    ("depmod_rs_dkms.c", include_str!("../../guest/dkms/depmod_rs_dkms.c")),
];
/// The module's alias, which modprobe is asked for.
pub const ALIAS: &str = "depmod-rs-dkms-test";
/// Where DKMS installs the module, in the module directory.
pub const MODULE: &str = "updates/dkms/depmod_rs_dkms.ko";
/// The installed tree's indexes after `dkms install`, and after `dkms remove`.
pub const AFTER_INSTALL: &str = "root after dkms install";
pub const AFTER_REMOVE: &str = "root after dkms remove";

/// Installs DKMS (with the compiler, from the root's sources) and the kernel's headers (the
/// `.deb` files in `headers`, from `scripts/fetch headers VERSION`: the machine's sources, where
/// the kernel package came from), then runs the DKMS steps as callers.
pub(super) fn install_and_remove(
    root: &Root,
    headers: &Path,
    version: &str,
    calls: &mut Vec<Call>,
    indexes: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), String> {
    let entries = std::fs::read_dir(headers).map_err(|e| format!("{}: {e}", headers.display()))?;
    let mut debs: Vec<String> = Vec::new();
    std::fs::create_dir_all(root.path("/tmp/headers")).map_err(|e| e.to_string())?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".deb") {
            let to = format!("/tmp/headers/{name}");
            root.copy_in(&entry.path(), &to)?;
            debs.push(to);
        }
    }
    if debs.is_empty() {
        return Err(format!(
            "{}: no .deb files (scripts/fetch headers {version})",
            headers.display()
        ));
    }
    debs.sort();
    root.ok(&["apt-get", "-q", "update"])?;
    let mut install = vec!["apt-get", "-q", "install", "-y", "--no-install-recommends", "dkms"];
    install.extend(debs.iter().map(String::as_str));
    root.ok(&install)?;
    let _ = std::fs::remove_dir_all(root.path("/tmp/headers"));

    let source = format!("/usr/src/{PACKAGE}-{PACKAGE_VERSION}");
    std::fs::create_dir_all(root.path(&source)).map_err(|e| format!("{source}: {e}"))?;
    for (name, text) in FILES {
        root.write(&format!("{source}/{name}"), text.as_bytes(), 0o644)?;
    }
    let moddir = root.path(&format!("/lib/modules/{version}"));
    let package = ["-m", PACKAGE, "-v", PACKAGE_VERSION];
    call(root, calls, &[&["dkms", "add"][..], &package].concat())?;
    call(root, calls, &[&["dkms", "install"][..], &package, &["-k", version]].concat())?;
    snapshot(&moddir, AFTER_INSTALL, indexes)?;
    call(root, calls, &["modprobe", "--show-depends", "-S", version, ALIAS])?;
    call(root, calls, &[&["dkms", "remove"][..], &package, &["--all"]].concat())?;
    snapshot(&moddir, AFTER_REMOVE, indexes)?;
    Ok(())
}
