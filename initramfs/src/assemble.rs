//! Putting an image together: what goes where, from a [`Spec`].

use std::fs;
use std::path::{Path, PathBuf};

use crate::compress::{self, Compression};
use crate::elf::{self, Linking};
use crate::image::{Image, Node};
use crate::modules::{Indexes, Tree};
use crate::{Error, kmod};

/// The `/init` used when the caller gives none: index, coldplug, then a shell.
pub const DEFAULT_INIT: &str = include_str!("default-init.sh");

/// Files of the module directory that the image carries: the inputs of depmod, never its outputs.
pub const TREE_FILES: [&str; 3] = ["modules.order", "modules.builtin", "modules.builtin.modinfo"];

/// Which modules go in.
#[derive(Clone, Debug)]
pub enum Modules {
    /// Every module file of the tree.
    All,
    /// These names or aliases, with what loading them may bring in.
    Named(Vec<String>),
}

/// Which program answers to `/sbin/modprobe` (and insmod, rmmod, lsmod, modinfo).
#[derive(Clone, Debug)]
pub enum Modprobe {
    /// Busybox's applets, which read the text `modules.dep` and `modules.alias`.
    Busybox,
    /// kmod from this root (an extracted package set, or `/`), which reads the `.bin` indexes.
    Kmod(PathBuf),
}

/// Everything an image is made of.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The kernel's modules.
    pub tree: Tree,
    /// A static depmod: installed as `/sbin/depmod`, and run on the host to find dependencies.
    pub depmod: PathBuf,
    /// A static busybox: `/bin/busybox` and `/bin/sh`.
    pub busybox: PathBuf,
    /// The modprobe under test.
    pub modprobe: Modprobe,
    /// The modules to include.
    pub modules: Modules,
    /// How the included modules are compressed.
    pub compress: Compression,
    /// The `/init` script; `None` for [`DEFAULT_INIT`].
    pub init: Option<Vec<u8>>,
    /// Extra host files and their paths in the image.
    pub files: Vec<(PathBuf, String)>,
}

/// An assembled image and what went into it.
#[derive(Clone, Debug)]
pub struct Built {
    /// The tree, ready to write.
    pub image: Image,
    /// Module paths in the image, relative to the module directory.
    pub modules: Vec<String>,
    /// Names asked for that are built into the kernel.
    pub builtin: Vec<String>,
    /// What `/sbin/modprobe` is, e.g. `kmod version 34.2 (/usr/bin/kmod from ROOT)`.
    pub modprobe: String,
    /// The kmod binary's path in the image, when kmod was installed.
    pub kmod: Option<String>,
    /// Things worth telling the user that did not stop the build.
    pub notes: Vec<String>,
}

/// Builds the image of `spec`. `indexes`, when given, are the tree's indexes already computed by
/// [`Indexes::compute`] (so a caller that needed them first does not run depmod twice).
pub fn assemble(spec: &Spec, indexes: Option<&Indexes>) -> Result<Built, Error> {
    let mut image = Image::new();
    let mut notes = Vec::new();
    require_static(&spec.depmod, "the depmod under test")?;
    require_static(&spec.busybox, "busybox (Debian: busybox-static)")?;
    image.add_host_file("bin/busybox", &spec.busybox, 0o755);
    image.add_symlink("bin/sh", "busybox");
    image.add_host_file("sbin/depmod", &spec.depmod, 0o755);
    for dir in ["proc", "sys", "tmp", "run", "root"] {
        image.add(dir, Node::Dir);
    }
    let (modprobe, kmod) = match &spec.modprobe {
        Modprobe::Busybox => {
            link_busybox_tools(&mut image);
            ("busybox".to_string(), None)
        }
        Modprobe::Kmod(root) => {
            let k = kmod::install(&mut image, root)?;
            let what = format!("{} ({} from {})", k.version, k.binary, root.display());
            (what, Some(k.binary))
        }
    };

    let (paths, builtin) = match &spec.modules {
        Modules::All => (spec.tree.all_modules()?, Vec::new()),
        Modules::Named(names) => {
            let computed;
            let ix = match indexes {
                Some(ix) => ix,
                None => {
                    computed = Indexes::compute(&spec.tree, &spec.depmod)?;
                    &computed
                }
            };
            ix.closure(names)?
        }
    };
    for b in &builtin {
        notes.push(format!("{b} is built into the kernel: nothing to include"));
    }
    let dir = spec.tree.dir();
    let inside = format!("lib/modules/{}", spec.tree.version);
    let sources: Vec<(PathBuf, String)> = paths.iter().map(|p| (dir.join(p), p.clone())).collect();
    let mut modules = Vec::with_capacity(sources.len());
    for (rel, content) in compress::recompress(&sources, spec.compress)? {
        let perm = 0o644;
        image.add(&format!("{inside}/{rel}"), Node::File { content, perm });
        modules.push(rel);
    }
    for name in TREE_FILES {
        let src = dir.join(name);
        if src.is_file() {
            image.add_host_file(&format!("{inside}/{name}"), &src, 0o644);
        } else {
            notes.push(format!("{} is missing", src.display()));
        }
    }

    let init = match &spec.init {
        Some(script) => script.clone(),
        None => DEFAULT_INIT.as_bytes().to_vec(),
    };
    image.add_bytes("init", init, 0o755);
    for (src, dest) in &spec.files {
        if !src.is_file() {
            return Err(Error::new(format!("{}: no such file", src.display())));
        }
        image.add_host_file(dest, src, 0o755);
    }
    Ok(Built { image, modules, builtin, modprobe, kmod, notes })
}

/// Points `/sbin/modprobe`, insmod, rmmod, lsmod and modinfo at busybox.
pub fn link_busybox_tools(image: &mut Image) {
    for tool in kmod::TOOLS {
        image.add_symlink(&format!("sbin/{tool}"), "/bin/busybox");
    }
}

fn require_static(path: &Path, what: &str) -> Result<(), Error> {
    let data = fs::read(path).map_err(|e| Error::io("read", path, e))?;
    match elf::linking(&data) {
        Ok(Linking::Static) => Ok(()),
        Ok(Linking::Dynamic(interp)) => Err(Error::new(format!(
            "{}: {what} must be statically linked, but it needs {interp}",
            path.display()
        ))),
        Err(e) => Err(Error::new(format!("{}: {what}: {e}", path.display()))),
    }
}
