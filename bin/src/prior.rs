//! The indexes the previous run wrote, and what changed since, so that a re-run after a few
//! modules changed patches its indexes instead of building them again
//! ([`depmod_core::index::patch`]), and leaves in place those the change does not reach
//! ([`crate::outputs`]).
//!
//! Only when the module cache vouches for them ([`Session::is_current`]): the indexes in
//! place are the files the previous run installed, made from the modules its cache records
//! (all of them) with the same options, configuration and inputs, and it said nothing while
//! making them. Its array is read back from its `modules.dep`, one line per module in array
//! order. Each of its modules whose file this run recalled from the cache (unchanged) and
//! still indexes keeps its entries; the others are gone (their records tell what they held),
//! and this run's modules that are no old one's are new. Anything that does not fit (a path
//! not found, a record missing, places out of order) means no patching: every index is built.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use depmod_core::ModuleInfo;
use depmod_core::output::{self, Change};
use depmod_core::tree::Module;

use crate::cache::Session;
use crate::cli::Dirs;
use crate::load::PathHasher;
use crate::read;

/// The indexes a run may patch.
pub const PATCHED: [&str; 4] =
    ["modules.dep.bin", "modules.alias", "modules.alias.bin", "modules.symbols.bin"];

/// The previous run's indexes that can be patched, and the change since.
pub struct Prior<'s> {
    pub change: Change,
    /// The previous run's `modules.dep`, which the module cache vouches for.
    pub dep: &'s [u8],
    /// The old indexes of [`PATCHED`], each as it is in place (`None`: it could not be read).
    old: Vec<Option<memmap2::Mmap>>,
}

impl<'s> Prior<'s> {
    /// The previous run's indexes and the change since, when the cache vouches for them;
    /// `modules` are this run's (those it indexes), `recalled` says of each whether its file
    /// was recalled from the cache.
    pub fn find(
        session: &'s Session<'_>,
        dirs: &Dirs,
        modules: &[Module],
        recalled: &[bool],
    ) -> Option<Prior<'s>> {
        if !session.is_current() || modules.len() != recalled.len() {
            return None;
        }
        let cache = session.cache()?;
        let dep = session.previous_dep()?;
        let places: HashMap<&[u8], usize, BuildHasherDefault<PathHasher>> =
            modules.iter().enumerate().map(|(j, m)| (m.output_path(), j)).collect();
        let mut remap = Vec::new();
        let mut kept = vec![false; modules.len()];
        let mut gone: Vec<ModuleInfo> = Vec::new();
        for line in output::dep_lines(dep) {
            let (path, _) = line?;
            let new = places.get(path).copied().filter(|&j| recalled.get(j) == Some(&true));
            match new {
                Some(j) => {
                    *kept.get_mut(j)? = true;
                    remap.push(Some(u32::try_from(j).ok()?));
                }
                None => {
                    let full = match path.first() {
                        Some(b'/') => path.to_vec(),
                        _ => [&dirs.input[..], b"/", path].concat(),
                    };
                    gone.push(cache.get(&full)?.info());
                    remap.push(None);
                }
            }
        }
        let change = Change { remap, kept, gone };
        if !change.is_consistent(modules.len()) {
            return None;
        }
        let path = |name: &str| [&dirs.output[..], b"/", name.as_bytes()].concat();
        let old = PATCHED.iter().map(|name| read::map_path(&path(name)).ok()).collect();
        Some(Prior { change, dep, old })
    }

    /// The old index `name` (one of [`PATCHED`]), as it is in place.
    pub fn old(&self, name: &str) -> Option<&[u8]> {
        let at = PATCHED.iter().position(|&n| n == name)?;
        self.old.get(at)?.as_deref()
    }
}
