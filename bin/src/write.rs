//! Writing the indexes: all or nothing.
//!
//! Every output is first written completely to a temporary file created exclusively in the
//! output directory; only when all of them are written are they renamed over the old indexes,
//! in kmod's order. Any failure before the renames removes the temporary files and leaves every
//! old index as it was.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::log::{Log, log};

/// One finished output: its file name and contents.
pub struct Output {
    pub name: &'static str,
    pub data: Vec<u8>,
}

/// Why the outputs could not be installed.
#[derive(Debug)]
pub struct WriteFailed;

/// Creates `dir` and its parents (mode 0755), as kmod's `mkdir_p`.
pub fn create_dir(dir: &[u8]) -> io::Result<()> {
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(dir));
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(path)
}

use std::os::unix::fs::DirBuilderExt;

struct Pending {
    name: &'static str,
    tmp: PathBuf,
}

/// Writes `outputs` into `dir` atomically (see the module documentation).
pub fn install(log: &Log, dir: &[u8], outputs: &[Output]) -> Result<(), WriteFailed> {
    let dir_path = PathBuf::from(std::ffi::OsStr::from_bytes(dir));
    let pid = std::process::id();
    let mut pending: Vec<Pending> = Vec::with_capacity(outputs.len());
    let cleanup = |pending: &[Pending]| {
        for p in pending {
            let _ = std::fs::remove_file(&p.tmp);
        }
    };
    for out in outputs {
        let tmp = dir_path.join(format!(".{}.depmod-tmp.{pid}", out.name));
        let result =
            OpenOptions::new().write(true).create_new(true).mode(0o644).open(&tmp).and_then(
                |mut f: File| {
                    pending.push(Pending { name: out.name, tmp: tmp.clone() });
                    f.write_all(&out.data)?;
                    f.sync_all()
                },
            );
        if let Err(e) = result {
            log!(log, Error, "could not write ", dir, "/", out.name, ": ", e);
            cleanup(&pending);
            return Err(WriteFailed);
        }
    }
    for (i, p) in pending.iter().enumerate() {
        if let Err(e) = std::fs::rename(&p.tmp, dir_path.join(p.name)) {
            log!(
                log,
                Error,
                "could not rename ",
                p.tmp.as_path(),
                " to ",
                dir,
                "/",
                p.name,
                ": ",
                e
            );
            cleanup(&pending[i..]);
            return Err(WriteFailed);
        }
    }
    if let Ok(d) = File::open(&dir_path) {
        let _ = d.sync_all();
    }
    Ok(())
}
