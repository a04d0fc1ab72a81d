//! Builds initramfs images that run a depmod under test inside a real kernel.
//!
//! Map:
//! - [`modules`]: a kernel's module tree, and the files loading some modules may need;
//! - [`compress`]: recompressing module files; [`glob`]: modprobe's alias matching;
//! - [`image`]: the file tree, written as a gzip'd newc archive ([`cpio`]) or a directory.

pub mod compress;
pub mod cpio;
pub mod glob;
pub mod image;
pub mod modules;

pub use compress::Compression;
pub use image::Image;
pub use modules::{Indexes, Tree};

use std::fmt;
use std::io;
use std::path::Path;

/// Why an image could not be built: a message naming the file or the step that failed.
#[derive(Debug)]
pub struct Error(String);

impl Error {
    /// An error with this message.
    pub fn new(message: String) -> Error {
        Error(message)
    }

    /// An I/O error while doing `what` (read, create, ...) on `path`.
    pub fn io(what: &str, path: &Path, e: io::Error) -> Error {
        Error(format!("{what} {}: {e}", path.display()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}
