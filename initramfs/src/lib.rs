//! Builds initramfs images that run a depmod under test inside a real kernel.
//!
//! Map:
//! - [`assemble()`]: a [`Spec`] (kernel tree, depmod, busybox, modprobe, modules, `/init`)
//!   becomes an [`Image`];
//! - [`modules`]: a kernel's module tree, and the files loading some modules may need;
//! - [`kmod`]: copying a dynamically linked kmod with its loader and libraries;
//! - [`compress`]: recompressing module files; [`glob`]: modprobe's alias matching;
//! - [`image`]: the file tree, written as a gzip'd newc archive ([`cpio`]) or a directory;
//! - [`elf`]: telling static programs from dynamic ones; [`arch`]: which architecture a program is
//!   for, running it under qemu-user when it is not the host's, and booting that architecture.
//!
//! ```no_run
//! use depmod_initramfs::{Modprobe, Modules, Spec, Tree, assemble};
//! use std::path::{Path, PathBuf};
//!
//! let spec = Spec {
//!     tree: Tree::new(Path::new("/"), None)?,
//!     depmod: PathBuf::from("target/x86_64-unknown-linux-musl/release/depmod"),
//!     busybox: PathBuf::from("/bin/busybox"),
//!     modprobe: Modprobe::Busybox,
//!     modules: Modules::Named(vec!["e1000".into()]),
//!     compress: Default::default(),
//!     init: None,
//!     files: Vec::new(),
//! };
//! let built = assemble(&spec, None)?;
//! built.image.write_cpio_gz(Path::new("initramfs.cpio.gz"))?;
//! # Ok::<(), depmod_initramfs::Error>(())
//! ```

pub mod arch;
pub mod assemble;
pub mod compress;
pub mod cpio;
pub mod elf;
pub mod glob;
pub mod image;
pub mod kmod;
pub mod modules;

pub use arch::Arch;
pub use assemble::{Built, Modprobe, Modules, Spec, assemble};
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
