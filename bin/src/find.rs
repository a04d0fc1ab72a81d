//! Which module files a run indexes, in kmod's array order: those the walk finds under the
//! module directory and the external directories of `depmod.d`, or the files named on the
//! command line; then ordered by `modules.order`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use depmod_core::config::Config;
use depmod_core::tree::{self, Module, ModuleSet};

use crate::cli::{self, Dirs};
use crate::log::{Errno, Failed, Log, log};
use crate::walk::{Collect, Found, FoundFile, Paths, Walk};

/// The module files found, before the modules are put in kmod's array order ([`modules`]).
pub enum Listed<'c> {
    /// The paths the walk found, in order (kmod's module table not made yet).
    Walked(Paths),
    /// The files the walk found, in kmod's module table.
    Set(ModuleSet<'c>),
    /// The files named on the command line, as modules (in the order named).
    Named(Vec<Module>),
}

/// The module files to index (all of them, or the `explicit` files), telling `found` each file
/// as it is found so that it can be read meanwhile. The walk lists directories on `threads`
/// threads; its messages number top directories `root_fd` ([`crate::walk::first_free_fd`]).
/// With `defer`, kmod's module table is made after the walk, if at all ([`modules`]): a run that
/// may find its indexes current from the files alone; otherwise during it, beside the reading.
#[allow(clippy::too_many_arguments)]
pub fn files<'c>(
    log: &Log,
    dirs: &Dirs,
    config: &'c Config,
    explicit: Option<&[Vec<u8>]>,
    found: Found<'_>,
    threads: usize,
    root_fd: i32,
    defer: bool,
) -> Result<Listed<'c>, Failed> {
    if let Some(files) = explicit {
        return add_files(log, dirs, config, files, found).map(Listed::Named);
    }
    let walk = |into| walk_all(log, config, dirs, into, found, threads, root_fd);
    if defer {
        let mut paths = Paths::default();
        walk(Collect::Paths(&mut paths))?;
        Ok(Listed::Walked(paths))
    } else {
        let mut set = set(dirs, config);
        walk(Collect::Set(&mut set))?;
        Ok(Listed::Set(set))
    }
}

/// The modules of the files found, in kmod's array order: kmod's choice among files of the
/// same module name, its table order, then `modules.order`.
pub fn modules(log: &Log, dirs: &Dirs, config: &Config, listed: Listed<'_>) -> Vec<Module> {
    let mut modules = match listed {
        Listed::Walked(paths) => {
            let mut set = set(dirs, config);
            for path in paths.iter() {
                set.add(path.to_vec());
            }
            set.into_modules()
        }
        Listed::Set(set) => set.into_modules(),
        Listed::Named(modules) => modules,
    };
    apply_order(log, dirs, &mut modules);
    modules
}

/// What [`modules`] says of `modules.order` (missing, or a corrupted line), for a run that
/// needs no modules made (its indexes are current).
pub fn order_messages(log: &Log, dirs: &Dirs) {
    apply_order(log, dirs, &mut Vec::new());
}

fn set<'c>(dirs: &Dirs, config: &'c Config) -> ModuleSet<'c> {
    let mut set = ModuleSet::new(&dirs.input, config);
    set.set_cwd(cli::current_dir_name());
    set
}

/// The module directory, then the external directories (the last configured first; a missing
/// one is only reported).
fn walk_all(
    log: &Log,
    config: &Config,
    dirs: &Dirs,
    into: Collect<'_, '_>,
    found: Found<'_>,
    threads: usize,
    root_fd: i32,
) -> Result<(), Failed> {
    let mut walk = Walk::new(log, &config.excludes, into, threads, root_fd);
    walk.found = Some(found);
    if let Err(e) = walk.run(&dirs.input) {
        log!(log, Fatal, "could not search modules: ", e);
        return Err(Failed);
    }
    for dir in config.externals.iter().rev() {
        if let Err(e) = walk.run(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log!(log, Fatal, "could not search modules: ", e);
                return Err(Failed);
            }
        }
    }
    Ok(())
}

/// Module files named on the command line: absolute paths of existing files, one per name.
fn add_files(
    log: &Log,
    dirs: &Dirs,
    config: &Config,
    files: &[Vec<u8>],
    found: Found<'_>,
) -> Result<Vec<Module>, Failed> {
    let mut set = set(dirs, config);
    for path in files {
        if path.first() != Some(&b'/') {
            log!(log, Fatal, &path[..], ": not absolute path.");
            return Err(Failed);
        }
        if let Err(e) = std::fs::metadata(OsStr::from_bytes(path)) {
            log!(log, Fatal, "could not create module ", &path[..], ": ", e);
            return Err(Failed);
        }
        // libkmod refuses a second path for a module name, depmod the same path twice.
        const EEXIST: Errno = Errno(17);
        match set.add_unique(path.clone()) {
            Ok(()) => (found.tell)(FoundFile { path, stamp: None }),
            Err((name, old)) if old == *path => {
                log!(log, Error, "hash_add_unique ", name, ": ", EEXIST);
                log!(log, Fatal, "could not add module ", &path[..], ": ", EEXIST);
                return Err(Failed);
            }
            Err((name, old)) => {
                log!(
                    log,
                    Error,
                    "kmod_module '",
                    name,
                    "' already exists with different path: new-path='",
                    &path[..],
                    "' old-path='",
                    old,
                    "'"
                );
                log!(log, Fatal, "could not create module ", &path[..], ": ", EEXIST);
                return Err(Failed);
            }
        }
    }
    Ok(set.into_modules())
}

/// Applies `modules.order`, with kmod's messages when it is missing or corrupted.
fn apply_order(log: &Log, dirs: &Dirs, modules: &mut Vec<Module>) {
    let path = [&dirs.input[..], b"/modules.order"].concat();
    match std::fs::read(OsStr::from_bytes(&path)) {
        Ok(data) => {
            if let Err(e) = tree::sort_by_order(modules, &data) {
                log!(log, Error, &path[..], ":", e.line, " corrupted line misses '\\n'");
            }
        }
        Err(e) => log!(log, Warning, "could not open modules.order at ", &dirs.input[..], ": ", e),
    }
}
