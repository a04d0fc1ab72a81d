//! The set of modules found in a tree, and kmod's array order over it.

use alloc::vec::Vec;

use crate::config::{Candidate, Config};
use crate::hash::{MODULE_BUCKETS, Map, Table};
use crate::name::{basename, module_name};

/// One module file chosen for indexing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    name: Vec<u8>,
    path: Vec<u8>,
    /// Where the path relative to the module directory starts, when it is under it.
    rel: Option<usize>,
}

impl Module {
    /// A module at `path` (as the walk built it), with the module directory `dirname`.
    pub fn new(path: Vec<u8>, dirname: &[u8]) -> Self {
        let name = module_name(&path);
        let rel = path
            .strip_prefix(dirname)
            .filter(|t| t.first() == Some(&b'/'))
            .map(|_| dirname.len() + 1);
        Module { name, path, rel }
    }

    /// Module name: basename to the first `.`, `-` as `_`.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// Full path, as used in messages.
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// Path relative to the module directory, when the module is under it.
    pub fn relpath(&self) -> Option<&[u8]> {
        self.rel.and_then(|r| self.path.get(r..))
    }

    /// The path written in `modules.dep`: relative when possible, otherwise the full path.
    pub fn output_path(&self) -> &[u8] {
        self.relpath().unwrap_or(&self.path)
    }

    /// The relative path `modules.order` lines are compared with: directory plus the first
    /// `len(name) + 3` bytes of the basename (`fat.ko` for `fat.ko.xz`; `a.b.` for `a.b.ko`).
    pub fn order_key(&self) -> Option<&[u8]> {
        let rel = self.relpath()?;
        let dir = rel.len() - basename(rel).len();
        rel.get(..(dir + self.name.len() + 3).min(rel.len()))
    }
}

/// What [`ModuleSet::add`] did with a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Added {
    /// First file with this module name.
    New,
    /// It replaced the file at this path, which had lower priority.
    Replaced(Vec<u8>),
    /// A file with the same name and higher priority stays (at this path).
    Ignored(Vec<u8>),
}

/// Modules by name, with kmod's duplicate resolution and table order.
#[derive(Clone, Debug)]
pub struct ModuleSet<'c> {
    dirname: Vec<u8>,
    config: &'c Config,
    table: Table<Vec<u8>, Module>,
    /// The working directory, which relative paths are taken from.
    cwd: Option<Vec<u8>>,
}

impl<'c> ModuleSet<'c> {
    /// An empty set for the module directory `dirname` (the string kmod calls `dirname`).
    pub fn new(dirname: &[u8], config: &'c Config) -> Self {
        ModuleSet {
            dirname: dirname.to_vec(),
            config,
            table: Table::new(MODULE_BUCKETS),
            cwd: None,
        }
    }

    /// Sets the working directory. libkmod keeps each module's path made absolute against it
    /// (`cwd/path`, not normalised), which shows for an `external` directory given relative.
    pub fn set_cwd(&mut self, cwd: Vec<u8>) {
        self.cwd = Some(cwd);
    }

    /// `path` as libkmod stores it.
    fn absolute(&self, path: Vec<u8>) -> Vec<u8> {
        match &self.cwd {
            Some(cwd) if path.first() != Some(&b'/') => [cwd, &b"/"[..], &path].concat(),
            _ => path,
        }
    }

    /// The module directory.
    pub fn dirname(&self) -> &[u8] {
        &self.dirname
    }

    /// Adds the file at `path`; a second file with the same module name is settled by the
    /// configuration's priority rules.
    pub fn add(&mut self, path: Vec<u8>) -> Added {
        // kmod ranks the new file by its path as the walk spelled it (kept when libkmod stores
        // another), the old one by the path libkmod stored.
        let spelled = (self.cwd.is_some() && path.first() != Some(&b'/')).then(|| path.clone());
        let module = Module::new(self.absolute(path), &self.dirname);
        let Some(old) = self.table.get_mut(&module.name) else {
            self.table.insert(module.name.clone(), module);
            return Added::New;
        };
        let path = spelled.as_deref().unwrap_or(&module.path);
        let new = Candidate { path, name_len: module.name.len() };
        let old_candidate = Candidate { path: &old.path, name_len: old.name.len() };
        if self.config.old_wins(&self.dirname, old_candidate, new) {
            return Added::Ignored(old.path.clone());
        }
        let old = core::mem::replace(old, module);
        Added::Replaced(old.path)
    }

    /// Adds the file at `path` unless its module name is taken (files named on the command line
    /// are not ranked); when it is, the error holds the module name and the path that has it.
    pub fn add_unique(&mut self, path: Vec<u8>) -> Result<(), (Vec<u8>, Vec<u8>)> {
        let module = Module::new(path, &self.dirname);
        if let Some(old) = self.table.get(&module.name) {
            return Err((module.name.clone(), old.path.clone()));
        }
        self.table.insert(module.name.clone(), module);
        Ok(())
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no module was added.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The modules in kmod's table order, before `modules.order` is applied.
    pub fn into_modules(self) -> Vec<Module> {
        self.table.into_values().collect()
    }
}

/// A `modules.order` line that is not newline-terminated (1-based line number, counted as
/// kmod counts `fgets` calls); kmod then skips the whole sort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorruptedOrder {
    /// The line number.
    pub line: usize,
}

/// The lines of `modules.order` as kmod's `fgets` loop over a `PATH_MAX` buffer sees them.
fn fgets_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    crate::bytes::fgets_lines(data, crate::bytes::PATH_MAX)
}

/// Reorders `modules` by `modules.order` (kmod 34): listed modules first, in the order of their
/// first listing, then the others in their current order.
pub fn sort_by_order(modules: &mut Vec<Module>, order: &[u8]) -> Result<(), CorruptedOrder> {
    for (i, line) in fgets_lines(order).enumerate() {
        if !line.is_empty() && line.last() != Some(&b'\n') {
            return Err(CorruptedOrder { line: i + 1 });
        }
    }
    let mut by_key: Map<&[u8], usize> = Map::new();
    for (i, m) in modules.iter().enumerate() {
        if let Some(key) = m.order_key() {
            by_key.insert(key, i);
        }
    }
    let mut placed = alloc::vec![false; modules.len()];
    let mut sorted: Vec<usize> = Vec::with_capacity(modules.len());
    for line in fgets_lines(order) {
        let Some(path) = line.strip_suffix(b"\n") else {
            continue;
        };
        if let Some(&i) = by_key.get(path) {
            if let Some(p) = placed.get_mut(i).filter(|p| !**p) {
                *p = true;
                sorted.push(i);
            }
        }
    }
    sorted.extend((0..modules.len()).filter(|&i| !placed.get(i).copied().unwrap_or(true)));
    let mut slots: Vec<Option<Module>> = core::mem::take(modules).into_iter().map(Some).collect();
    modules.extend(sorted.into_iter().filter_map(|i| slots.get_mut(i).and_then(Option::take)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn names(m: &[Module]) -> Vec<&[u8]> {
        m.iter().map(|m| m.name()).collect()
    }

    #[test]
    fn paths_and_keys() {
        let m =
            Module::new(b"/lib/modules/6/kernel/fs/fat/vfat-x.ko.xz".to_vec(), b"/lib/modules/6");
        assert_eq!(m.name(), b"vfat_x");
        assert_eq!(m.output_path(), b"kernel/fs/fat/vfat-x.ko.xz");
        assert_eq!(m.order_key(), Some(&b"kernel/fs/fat/vfat-x.ko"[..]));
        let m = Module::new(b"/lib/modules/6/kernel/a.b.ko".to_vec(), b"/lib/modules/6");
        assert_eq!(m.order_key(), Some(&b"kernel/a.b."[..]));
        let m = Module::new(b"/lib/modules/6-ext/a.ko".to_vec(), b"/lib/modules/6");
        assert_eq!(m.relpath(), None);
        assert_eq!(m.output_path(), b"/lib/modules/6-ext/a.ko");
    }

    #[test]
    fn relative_paths_are_kept_absolute() {
        let config = Config::default();
        let mut s = ModuleSet::new(b"/m", &config);
        s.set_cwd(b"/w/d".to_vec());
        s.add(b"ext/a.ko".to_vec());
        s.add(b"/m/k/b.ko".to_vec());
        let m = s.into_modules();
        let paths: Vec<&[u8]> = m.iter().map(Module::output_path).collect();
        assert!(paths.contains(&&b"/w/d/ext/a.ko"[..]) && paths.contains(&&b"k/b.ko"[..]));
    }

    #[test]
    fn named_files_are_unique_by_module_name() {
        let config = Config::default();
        let mut s = ModuleSet::new(b"/m", &config);
        assert_eq!(s.add_unique(b"/m/k/a-b.ko".to_vec()), Ok(()));
        assert_eq!(
            s.add_unique(b"/x/a_b.ko.xz".to_vec()),
            Err((b"a_b".to_vec(), b"/m/k/a-b.ko".to_vec()))
        );
        assert_eq!(s.len(), 1);
    }

    fn set(paths: &[&str]) -> Vec<Module> {
        let config = Config::default();
        let mut s = ModuleSet::new(b"/m", &config);
        for p in paths {
            s.add(p.as_bytes().to_vec());
        }
        s.into_modules()
    }

    #[test]
    fn order_first_listing_wins_and_rest_keep_their_order() {
        let mut m = set(&["/m/k/a.ko", "/m/k/b.ko", "/m/k/c.ko", "/m/k/d.ko"]);
        let before: Vec<Vec<u8>> = names(&m).into_iter().map(<[u8]>::to_vec).collect();
        sort_by_order(&mut m, b"k/c.ko\nk/a.ko\n#1\nk/c.ko\nk/zz.ko\n").unwrap();
        let mut expected = vec![b"c".to_vec(), b"a".to_vec()];
        expected.extend(before.into_iter().filter(|n| n != b"a" && n != b"c"));
        assert_eq!(names(&m), expected);
    }

    #[test]
    fn order_without_final_newline_is_refused() {
        let mut m = set(&["/m/k/a.ko", "/m/k/b.ko"]);
        let before = m.clone();
        assert_eq!(sort_by_order(&mut m, b"k/b.ko\nk/a.ko"), Err(CorruptedOrder { line: 2 }));
        assert_eq!(m, before);
        assert_eq!(sort_by_order(&mut m, b"k/b.ko\nk/\0a.ko\n"), Err(CorruptedOrder { line: 2 }));
        // A line starting with NUL is skipped, not corrupted.
        assert_eq!(sort_by_order(&mut m, b"\0k/b.ko\nk/b.ko\n"), Ok(()));
        assert_eq!(names(&m)[0], b"b");
    }

    #[test]
    fn duplicates_default_to_updates_then_first_found() {
        let config = Config::default();
        let mut s = ModuleSet::new(b"/m", &config);
        assert_eq!(s.add(b"/m/kernel/x.ko".to_vec()), Added::New);
        assert_eq!(s.add(b"/m/extra/x.ko".to_vec()), Added::Ignored(b"/m/kernel/x.ko".to_vec()));
        assert_eq!(s.add(b"/m/updates/x.ko".to_vec()), Added::Replaced(b"/m/kernel/x.ko".to_vec()));
        assert_eq!(
            s.add(b"/m/updates/b/x.ko".to_vec()),
            Added::Replaced(b"/m/updates/x.ko".to_vec())
        );
        assert_eq!(s.add(b"/m/kernel/y-z.ko".to_vec()), Added::New);
        assert_eq!(s.len(), 2);
    }
}
