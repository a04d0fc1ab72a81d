//! Putting a depmod in the system's place in the root, checking the callers find it, and taking
//! ours away again: kmod 34.2 behind a diversion, ours from the Debian package, and
//! `scripts/install`.

use std::process::Command;

use super::{Depmod, Inputs};
use crate::debroot::{ROOT_PATH, Root, run_host};

/// The PATH mkinitramfs sets for itself.
pub const MKINITRAMFS_PATH: &str = "/usr/bin:/sbin:/bin";
/// The PATH dracut sets for itself (`DRACUT_PATH`, /sbin and /bin resolved through merged /usr).
pub const DRACUT_PATH: &str = "/usr/sbin:/usr/bin";
/// Where kmod 34.2's extracted root is copied in the kmod run.
const KMOD34_DIR: &str = "/opt/kmod-34.2";
/// The path of depmod in Debian 12's kmod package.
pub const SYSTEM_DEPMOD: &str = "/sbin/depmod";

/// Puts kmod 34.2 (a wrapper at kmod's diverted path) or ours (the Debian package) in place.
pub(super) fn put_in_place(
    root: &Root,
    depmod: Depmod,
    inputs: &Inputs,
    log: &mut Vec<String>,
) -> Result<(), String> {
    match depmod {
        Depmod::Kmod34 => {
            run_host(Command::new("cp").arg("-a").arg(&inputs.kmod34).arg(root.path(KMOD34_DIR)))?;
            root.ok(&[
                "dpkg-divert",
                "--local",
                "--rename",
                "--divert",
                &format!("{SYSTEM_DEPMOD}.kmod30"),
                "--add",
                SYSTEM_DEPMOD,
            ])?;
            let lib = format!("{KMOD34_DIR}/usr/lib/x86_64-linux-gnu");
            let wrapper = format!(
                "#!/bin/sh\n# kmod 34.2's depmod, run through its own loader and libraries.\n\
                 exec {lib}/ld-linux-x86-64.so.2 --library-path {lib} --argv0 depmod \
                 {KMOD34_DIR}/usr/bin/kmod \"$@\"\n"
            );
            // /sbin is a link to usr/sbin inside the root: write through the real directory.
            root.write(&format!("/usr{SYSTEM_DEPMOD}"), wrapper.as_bytes(), 0o755)?;
            log.push(format!(
                "kmod 34.2 in {KMOD34_DIR}, {SYSTEM_DEPMOD} diverted, a wrapper in its place"
            ));
        }
        Depmod::Ours => {
            root.copy_in(&inputs.our_deb, "/tmp/depmod-rs.deb")?;
            let out = root.ok(&["dpkg", "-i", "/tmp/depmod-rs.deb"])?;
            log.push(format!("dpkg -i {}:\n{}", inputs.our_deb.display(), out.trim_end()));
        }
    }
    Ok(())
}

/// `depmod -V` says kmod 34.2 in either run, and names depmod-rs only in ours: checked with
/// root's PATH and with those mkinitramfs and dracut set for themselves.
pub(super) fn check_in_place(
    root: &Root,
    depmod: Depmod,
    log: &mut Vec<String>,
) -> Result<(), String> {
    for path in [ROOT_PATH, MKINITRAMFS_PATH, DRACUT_PATH] {
        let ran = root.run_with_path(path, &["depmod", "-V"])?;
        let first = ran.stdout.lines().next().unwrap_or_default();
        let ours = ran.stdout.lines().any(|l| l.starts_with("depmod-rs "));
        if ran.code != Some(0) || first != "kmod version 34.2" || ours != (depmod == Depmod::Ours) {
            return Err(format!(
                "with PATH={path}, `depmod -V` is not {}'s: {}",
                depmod.name(),
                ran.describe()
            ));
        }
        log.push(format!("PATH={path}: depmod -V: {}", ran.stdout.trim().replace('\n', " | ")));
    }
    Ok(())
}

/// `dpkg -r depmod-rs`: kmod's depmod is back where it was, as it was (`system` is what
/// `readlink /sbin/depmod; /sbin/depmod -V` said before the package), with no diversion left.
pub(super) fn remove_package(root: &Root, system: &str) -> Result<Vec<String>, String> {
    let man = "/usr/share/man/man8/depmod.8.gz";
    let ours_man = root.sh(&format!("gzip -dc {man}"))?;
    if !ours_man.starts_with(".\\\" depmod-rs manual page") {
        return Err(format!("with the package installed, {man} is not depmod-rs's"));
    }
    let out = root.ok(&["dpkg", "-r", "depmod-rs"])?;
    let mut done = vec![format!("dpkg -r depmod-rs:\n{}", out.trim_end())];
    let now = root.sh(&format!("readlink {SYSTEM_DEPMOD}; {SYSTEM_DEPMOD} -V"))?;
    if now != system {
        return Err(format!("after dpkg -r, {SYSTEM_DEPMOD} is\n{now}\nnot, as before,\n{system}"));
    }
    done.push(format!("{SYSTEM_DEPMOD} is kmod's again: {}", now.trim().replace('\n', " | ")));
    let diversions = root.ok(&["dpkg-divert", "--list"])?;
    if diversions.contains("depmod-rs") {
        return Err(format!("after dpkg -r, diversions are left:\n{diversions}"));
    }
    let man_now = root.sh(&format!("gzip -dc {man}"))?;
    if man_now.contains("depmod-rs") || !man_now.contains("depmod") {
        return Err(format!("after dpkg -r, {man} is not kmod's"));
    }
    done.push(format!("no diversion left, {man} is kmod's again"));
    Ok(done)
}

/// `scripts/install --prefix ROOT/usr/local`: root's PATH finds it first; `--uninstall`: kmod's
/// again.
pub(super) fn install_script(root: &Root, inputs: &Inputs) -> Result<Vec<String>, String> {
    let script = inputs.workspace.join("scripts/install");
    let prefix = root.path("/usr/local");
    let which = "command -v depmod; depmod -V | tail -n 1";
    run_host(
        Command::new(&script)
            .arg("--prefix")
            .arg(&prefix)
            .arg("--binary")
            .arg(&inputs.static_depmod),
    )?;
    let found = root.sh(which)?;
    if !found.starts_with("/usr/local/sbin/depmod\ndepmod-rs ") {
        return Err(format!(
            "after scripts/install --prefix {}, root's PATH finds:\n{found}",
            prefix.display()
        ));
    }
    run_host(Command::new(&script).arg("--uninstall").arg("--prefix").arg(&prefix))?;
    let back = root.sh(which)?;
    if back.starts_with("/usr/local/") || back.contains("depmod-rs") {
        return Err(format!("after scripts/install --uninstall, root's PATH finds:\n{back}"));
    }
    Ok(vec![
        format!(
            "scripts/install --prefix {}: {}",
            prefix.display(),
            found.trim().replace('\n', " | ")
        ),
        format!("scripts/install --uninstall: {}", back.trim().replace('\n', " | ")),
    ])
}
