//! Which loaded modules are indexed, and what is said about each file.
//!
//! A file that cannot be used at all (unreadable, undecompressable, not ELF) gets one error and
//! is left out: kmod would list it with nothing in it, and modprobe could not load it anyway.
//! A file with a defect libkmod reads past gets one warning and is indexed as kmod indexes it.

use depmod_core::ModuleInfo;
use depmod_core::tree::Module;

use crate::load::{Failure, Loaded};
use crate::log::{Log, log};

/// Reports what loading found wrong, in array order, and keeps the usable modules with their
/// metadata.
pub fn keep(
    log: &Log,
    modules: Vec<Module>,
    loaded: Vec<Loaded>,
) -> (Vec<Module>, Vec<ModuleInfo>) {
    let mut kept = (Vec::with_capacity(modules.len()), Vec::with_capacity(modules.len()));
    for (m, l) in modules.into_iter().zip(loaded) {
        let path = m.path();
        let info = match l {
            Err(Failure::Io(e)) => {
                log!(log, Error, path, ": cannot be read: ", e, "; the module is not indexed");
                continue;
            }
            Err(Failure::Decode(e)) => {
                log!(log, Error, path, ": ", e.to_string(), "; the module is not indexed");
                continue;
            }
            Ok(info) => info,
        };
        if let Some(e) = info.elf_error {
            log!(log, Error, path, ": ", e.to_string(), "; the module is not indexed");
            continue;
        }
        report_defects(log, path, &info);
        kept.0.push(m);
        kept.1.push(info);
    }
    kept
}

/// One message per file: kmod's for the exports, ours for the imports (with the anomaly that
/// explains it), or the anomaly alone.
fn report_defects(log: &Log, path: &[u8], info: &ModuleInfo) {
    let mut anomaly = info.anomaly.map(|a| a.to_string());
    if let Some(e) = info.exports_error {
        let (errno, detail) = (e.errno().message(), e.to_string());
        log!(log, Error, "failed to load symbols from ", path, ": ", errno, " (", detail, ")");
    }
    if let Some(e) = info.imports_error {
        let mut detail = e.to_string();
        if let Some(a) = anomaly.take() {
            detail.push_str(": ");
            detail.push_str(&a);
        }
        log!(
            log,
            Warning,
            path,
            ": its needed symbols cannot be read (",
            detail,
            "); no dependencies are recorded for it"
        );
    } else if let Some(a) = anomaly.filter(|_| info.exports_error.is_none()) {
        log!(log, Warning, path, ": ", a);
    }
}
