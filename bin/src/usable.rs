//! Which loaded modules are indexed, and what is said about each file.
//!
//! A file that cannot be used at all (unreadable, undecompressable, not ELF) gets one error and
//! is left out: kmod would list it with nothing in it, and modprobe could not load it anyway.
//! A file with a defect libkmod reads past gets one warning and is indexed as kmod indexes it.

use depmod_core::ModuleInfo;
use depmod_core::tree::Module;

use crate::load::{Failure, Loaded};
use crate::log::{Log, log};

/// The usable modules with their metadata, and where each module went.
pub struct Kept {
    pub modules: Vec<Module>,
    pub infos: Vec<ModuleInfo>,
    /// For each module given, its place in `modules` (`None`: left out).
    pub places: Vec<Option<usize>>,
}

/// Reports what loading found wrong, in array order, and keeps the usable modules with their
/// metadata.
pub fn keep(log: &Log, modules: Vec<Module>, loaded: Vec<Loaded>) -> Kept {
    let n = modules.len();
    let mut kept = Kept {
        modules: Vec::with_capacity(n),
        infos: Vec::with_capacity(n),
        places: Vec::with_capacity(n),
    };
    for (m, l) in modules.into_iter().zip(loaded) {
        let path = m.path();
        let info = match l {
            Err(Failure::Io(e)) => {
                log!(log, Error, path, ": cannot be read: ", e, "; the module is not indexed");
                kept.places.push(None);
                continue;
            }
            Err(Failure::Decode(e)) => {
                log!(log, Error, path, ": ", e.to_string(), "; the module is not indexed");
                kept.places.push(None);
                continue;
            }
            Ok(info) => info,
        };
        if let Some(e) = info.elf_error {
            log!(log, Error, path, ": ", e.to_string(), "; the module is not indexed");
            kept.places.push(None);
            continue;
        }
        report_defects(log, path, &info);
        kept.places.push(Some(kept.modules.len()));
        kept.modules.push(m);
        kept.infos.push(*info);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decompress::{DecodeError, Format};
    use crate::testing::module;
    use depmod_core::elf::writer::ModuleSpec;

    #[test]
    fn one_message_per_file_and_only_usable_modules_kept() {
        let m = |name: &str| Module::new(format!("/m/{name}.ko").into_bytes(), b"/m");
        let bad_strings = {
            let mut spec = ModuleSpec::new();
            spec.extra_sections = vec![("__ksymtab_strings".into(), b"\0abc".to_vec())];
            spec.build()
        };
        let modules = vec![m("good"), m("gone"), m("zst"), m("notelf"), m("strings")];
        let loaded = vec![
            Ok(Box::new(ModuleInfo::parse(&module(&[], &["f"], &[])))),
            Err(Failure::Io(std::io::Error::from_raw_os_error(2))),
            Err(Failure::Decode(DecodeError::NotBuiltIn(Format::Zstd))),
            Ok(Box::new(ModuleInfo::parse(b"\x7fELF"))),
            Ok(Box::new(ModuleInfo::parse(&bad_strings))),
        ];
        let log = Log::capturing();
        let kept = keep(&log, modules, loaded);
        let names: Vec<&[u8]> = kept.modules.iter().map(|m| m.name()).collect();
        assert_eq!(names, [&b"good"[..], b"strings"]);
        assert_eq!(kept.infos.len(), 2);
        assert_eq!(kept.places, [Some(0), None, None, None, Some(1)]);
        assert_eq!(
            log.take(),
            format!(
                "depmod: ERROR: /m/gone.ko: cannot be read: No such file or directory; the module \
                 is not indexed\n\
                 depmod: ERROR: /m/zst.ko: {}; the module is not indexed\n\
                 depmod: ERROR: /m/notelf.ko: not an ELF file: 4 bytes, shorter than an ELF \
                 identification; the module is not indexed\n\
                 depmod: ERROR: failed to load symbols from /m/strings.ko: Invalid argument \
                 (__ksymtab_strings does not end with a NUL byte)\n",
                DecodeError::NotBuiltIn(Format::Zstd)
            )
        );
    }
}
