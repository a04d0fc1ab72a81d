//! Reading depmod.d: which files, in which order, with kmod 34.2's messages.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;

use depmod_core::config::{Config, ConfigNotice};

use crate::log::{Log, log};

/// kmod 34.2's configuration directories, highest precedence first. They are host paths: `-b`
/// does not apply to them.
pub const DEFAULT_DIRS: [&str; 5] = [
    "/etc/depmod.d",
    "/run/depmod.d",
    "/usr/local/lib/depmod.d",
    "/usr/lib/depmod.d",
    "/lib/depmod.d",
];

/// A configuration file: its full path and the basename it is sorted and deduplicated by.
struct ConfFile {
    path: Vec<u8>,
    name_start: usize,
}

impl ConfFile {
    fn name(&self) -> &[u8] {
        &self.path[self.name_start..]
    }
}

/// Collects the files of `paths` (each a file or a directory), sorted by basename; a basename
/// seen again later is ignored, so earlier paths take precedence.
fn list(log: &Log, paths: &[Vec<u8>]) -> Vec<ConfFile> {
    let mut files: Vec<ConfFile> = Vec::new();
    let add = |files: &mut Vec<ConfFile>, file: ConfFile| {
        match files.binary_search_by(|f| f.name().cmp(file.name())) {
            Ok(_) => {} // kmod: "Ignoring duplicate config file" (debug only)
            Err(at) => files.insert(at, file),
        }
    };
    for path in paths {
        let p = std::path::Path::new(OsStr::from_bytes(path));
        let Ok(meta) = std::fs::metadata(p) else {
            continue;
        };
        if meta.is_file() {
            let name_start = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
            add(&mut files, ConfFile { path: path.clone(), name_start });
            continue;
        }
        if !meta.is_dir() {
            // kmod ignores other file types given to -C, except that it blocks reading a FIFO.
            if meta.file_type().is_fifo() {
                log!(log, Error, "skipping ", &path[..], ": not a regular file");
            }
            continue;
        }
        let entries = match std::fs::read_dir(p) {
            Ok(e) => e,
            Err(e) => {
                log!(log, Error, "files list ", &path[..], ": ", e);
                continue;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.as_bytes();
            if name.first() == Some(&b'.') {
                continue;
            }
            if name.len() < 6 || !name.ends_with(b".conf") {
                log!(log, Info, "All cfg files need .conf: ", &path[..], "/", name);
                continue;
            }
            match std::fs::metadata(entry.path()) {
                // kmod 34.2 leaves out the `/` in this message.
                Err(_) => {
                    log!(log, Error, "Cannot stat directory entry: ", &path[..], name);
                    continue;
                }
                Ok(m) if m.is_dir() => {
                    log!(
                        log,
                        Error,
                        "Directories inside directories are not supported: ",
                        &path[..],
                        "/",
                        name
                    );
                    continue;
                }
                // kmod would block reading a FIFO; it is not a configuration file.
                Ok(m) if m.file_type().is_fifo() => {
                    log!(log, Error, "skipping ", &path[..], "/", name, ": not a regular file");
                    continue;
                }
                Ok(_) => {}
            }
            let mut full = path.clone();
            full.push(b'/');
            let name_start = full.len();
            full.extend_from_slice(name);
            add(&mut files, ConfFile { path: full, name_start });
        }
    }
    files
}

/// Loads the configuration from `paths` (`-C` arguments) or the default directories, for the
/// kernel release `kernel`.
pub fn load(log: &Log, paths: &[Vec<u8>], kernel: &[u8]) -> Config {
    let defaults: Vec<Vec<u8>> = DEFAULT_DIRS.iter().map(|d| d.as_bytes().to_vec()).collect();
    let paths = if paths.is_empty() { &defaults[..] } else { paths };
    let mut config = Config::default();
    for file in list(log, paths) {
        let text = match std::fs::read(OsStr::from_bytes(&file.path)) {
            Ok(t) => t,
            Err(e) => {
                log!(log, Error, "file ", &file.path[..], ": ", e);
                continue;
            }
        };
        let f = &file.path[..];
        config.parse(&text, kernel, |n| match n {
            ConfigNotice::BadLine { line, command } => {
                log!(log, Error, f, ":", line, ": ignoring bad line starting with '", command, "'");
            }
            ConfigNotice::NotImplemented { line, command } => {
                log!(log, Info, f, ":", line, ": command ", command, " not implemented yet");
            }
            ConfigNotice::OverrideMismatch { line, version } => {
                log!(log, Info, f, ":", line, ": override kernel did not match ", version);
            }
            ConfigNotice::ExternalMismatch { line, version } => {
                log!(log, Info, f, ":", line, ": external directory did not match ", version);
            }
        });
    }
    config
}
