//! Messages about what was found: unusable modules, cycles, libkmod's context lines.

use depmod_core::ModuleInfo;
use depmod_core::graph::CycleReport;
use depmod_core::tree::Module;

use crate::load;
use crate::log::{Log, log};

/// Reports what loading found wrong, in array order, and drops the modules whose files cannot be
/// used at all (unreadable, undecompressable, not ELF): kmod would list them with nothing in them
/// and modprobe could not load them anyway. Partial problems are reported and the module is
/// indexed as kmod indexes it.
pub fn keep_usable(
    log: &Log,
    modules: Vec<Module>,
    loaded: Vec<load::Loaded>,
) -> (Vec<Module>, Vec<ModuleInfo>) {
    let mut kept = (Vec::with_capacity(modules.len()), Vec::with_capacity(modules.len()));
    for (m, l) in modules.into_iter().zip(loaded) {
        let path = m.path();
        let unusable = match (&l.failure, l.info.elf_error) {
            (Some(load::Failure::Io(e)), _) => Some(format!("cannot be read: {}", strerror(e))),
            (Some(load::Failure::Decode(e)), _) => Some(e.to_string()),
            (None, Some(e)) => Some(e.to_string()),
            (None, None) => None,
        };
        if let Some(what) = unusable {
            log!(log, Error, path, ": ", what, "; the module is not indexed");
            continue;
        }
        // One message per file: kmod's for the exports, ours for the imports (with the anomaly
        // that explains it), or the anomaly alone.
        let mut anomaly = l.info.anomaly.map(|a| a.to_string());
        if let Some(e) = l.info.exports_error {
            let detail = e.to_string();
            log!(
                log,
                Error,
                "failed to load symbols from ",
                path,
                ": ",
                e.errno().message(),
                " (",
                detail,
                ")"
            );
        }
        if let Some(e) = l.info.imports_error {
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
        } else if let Some(a) = anomaly.filter(|_| l.info.exports_error.is_none()) {
            log!(log, Warning, path, ": ", a);
        }
        kept.0.push(m);
        kept.1.push(l.info);
    }
    kept
}

/// glibc's text for an I/O error.
fn strerror(e: &std::io::Error) -> String {
    let mut v = Vec::new();
    crate::log::Part::put(e, &mut v);
    String::from_utf8_lossy(&v).into_owned()
}

/// kmod's cycle report.
pub fn report_cycles(log: &Log, modules: &[Module], report: &CycleReport) {
    let name = |i: u32| modules.get(i as usize).map_or(&[][..], |m| m.name());
    for cycle in &report.cycles {
        let mut line = Vec::new();
        for (k, &m) in cycle.iter().enumerate() {
            if k > 0 {
                line.extend_from_slice(b" -> ");
            }
            line.extend_from_slice(name(m));
        }
        log!(log, Error, "Cycle detected: ", line);
    }
    log!(log, Error, "Found ", report.modules, " modules in dependency cycles!");
}

/// libkmod's INFO messages about its context, printed at `-vv` when it is created and released.
pub struct ContextLog<'l> {
    log: &'l Log,
}

impl<'l> ContextLog<'l> {
    pub fn new(log: &'l Log) -> Self {
        log!(
            log,
            Info,
            "custom logging function ",
            Pointer(Log::emit as *const () as usize),
            " registered"
        );
        ContextLog { log }
    }
}

impl Drop for ContextLog<'_> {
    fn drop(&mut self) {
        let here: *const Self = self;
        log!(self.log, Info, "context ", Pointer(here as usize), " released");
    }
}

/// A pointer shown as C's `%p` does.
struct Pointer(usize);

impl crate::log::Part for Pointer {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{:#x}", self.0).as_bytes());
    }
}
