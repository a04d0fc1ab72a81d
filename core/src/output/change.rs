//! What changed since the run that wrote the indexes in place, for the writers that patch an
//! index instead of building it again ([`crate::index::patch`]).

use alloc::vec::Vec;

use super::Index;
use crate::index::patch::{Changes, PatchError, patch};
use crate::module::ModuleInfo;
use crate::tree::Module;

/// What of each module an index made of the modules' own entries lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entries {
    /// `modules.alias`, and `modules.devname` (which device-node aliases make).
    Aliases,
    /// `modules.softdep`.
    Softdeps,
    /// `modules.weakdep`.
    Weakdeps,
    /// `modules.symbols` (kmod's order for it is the symbol table's, by key, not by module).
    Exports,
}

/// The previous run's modules against this run's: which continue unchanged, and what the
/// others held.
#[derive(Debug)]
pub struct Change {
    /// For each place of the previous run's array, the place in this run's of the same module
    /// file, unchanged; `None` for a module gone or changed. The places keep their order.
    pub remap: Vec<Option<u32>>,
    /// For each module of this run, whether it is one of `remap`'s (its entries are in the
    /// indexes in place, at its old place).
    pub kept: Vec<bool>,
    /// What each module of the previous run without a new place held then.
    pub gone: Vec<ModuleInfo>,
}

impl Change {
    /// Whether `remap` keeps its places in order and agrees with `kept` on this run's `count`
    /// modules (a change that does not is never used).
    pub fn is_consistent(&self, count: usize) -> bool {
        let mut last = None;
        let mut images = 0;
        for &new in self.remap.iter().flatten() {
            if last.is_some_and(|l| l >= new)
                || !self.kept.get(new as usize).copied().unwrap_or(false)
            {
                return false;
            }
            last = Some(new);
            images += 1;
        }
        self.kept.len() == count && self.kept.iter().filter(|&&k| k).count() == images
    }

    /// Whether neither the modules gone nor those added have any `entries`. An index that lists
    /// only such entries, each line naming its module but not its place, is then the old one
    /// byte for byte: the modules kept keep their order and their entries.
    pub fn leaves(&self, index: &Index<'_>, entries: Entries) -> bool {
        let has = |info: &ModuleInfo| match entries {
            Entries::Aliases => info.aliases().len() > 0,
            Entries::Softdeps => info.softdeps().len() > 0,
            Entries::Weakdeps => info.weakdeps().len() > 0,
            Entries::Exports => info.exports().len() > 0,
        };
        !self.gone.iter().any(has) && !self.added(index).any(|(_, _, info)| has(info))
    }

    /// This run's modules that are none of the previous run's (at their places), with their
    /// metadata.
    pub(crate) fn added<'a>(
        &'a self,
        index: &Index<'a>,
    ) -> impl Iterator<Item = (u32, &'a Module, &'a ModuleInfo)> + 'a {
        let new = index.modules.iter().zip(index.infos).enumerate();
        let new = new.filter(|(i, _)| !self.kept.get(*i).copied().unwrap_or(true));
        new.map(|(i, (m, info))| (i as u32, m, info))
    }

    /// The old index `old` of `index` patched into `out`: `touched` (see [`touch`]) and `added`
    /// as [`Changes`] has them, priorities mapped by `remap`. Not with `-w`, whose report needs
    /// every entry.
    pub(crate) fn patch(
        &self,
        index: &Index<'_>,
        old: &[u8],
        touched: &[Vec<u8>],
        drop_touched: bool,
        added: &[(&[u8], &[u8], u32)],
        out: &mut Vec<u8>,
    ) -> Result<(), PatchError> {
        if index.warn_duplicates {
            return Err(PatchError::Reports);
        }
        let touched: Vec<&[u8]> = touched.iter().map(|k| &k[..]).collect();
        let remap = |p: u32| self.remap.get(p as usize).copied().flatten();
        patch(old, &Changes { touched: &touched, drop_touched, remap: &remap, added }, out)
    }
}

/// Adds `key` to the sorted keys `touched`, unless it is there. (A few keys a run: kept sorted
/// as they come, which takes less code than a sort.)
pub(crate) fn touch(touched: &mut Vec<Vec<u8>>, key: &[u8]) {
    if let Err(at) = touched.binary_search_by(|k| k[..].cmp(key)) {
        touched.insert(at, key.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn places_kept_in_order_and_agreeing_with_kept() {
        let change =
            |remap: Vec<Option<u32>>, kept: Vec<bool>| Change { remap, kept, gone: vec![] };
        assert!(change(vec![Some(0), None, Some(2)], vec![true, false, true]).is_consistent(3));
        // Out of order, twice the same place, a kept module no old one maps to, a wrong count.
        assert!(!change(vec![Some(2), Some(0)], vec![true, false, true]).is_consistent(3));
        assert!(!change(vec![Some(0), Some(0)], vec![true]).is_consistent(1));
        assert!(!change(vec![Some(0)], vec![true, true]).is_consistent(2));
        assert!(!change(vec![Some(0)], vec![true]).is_consistent(2));
    }
}
