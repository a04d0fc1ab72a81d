//! The depmod.d settings that decide which file wins when two share a module name.

use alloc::vec::Vec;

/// One `search` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Search {
    /// `built-in`: the module directory itself.
    BuiltIn,
    /// `external`: the `external` directories.
    External,
    /// A subdirectory of the module directory, such as `updates`.
    Dir(Vec<u8>),
}

/// Settings from depmod.d, in configuration order (earlier lines first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `search` entries, earliest (highest priority) first.
    pub search: Vec<Search>,
    /// `override MOD KVER SUBDIR` lines whose KVER matched, as `SUBDIR/MOD`.
    pub overrides: Vec<Vec<u8>>,
    /// `external KVER DIR` lines whose KVER matched, earliest first.
    pub externals: Vec<Vec<u8>>,
    /// `exclude` names: path components skipped during the walk.
    pub excludes: Vec<Vec<u8>>,
}

/// What the priority rules need to know about one candidate file.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// Full path as built by the walk.
    pub path: &'a [u8],
    /// Length of the module name (the basename up to its first `.`).
    pub name_len: usize,
}

impl Config {
    /// Whether `old`, already indexed, stays when `new` has the same module name (kmod's
    /// priority rules; the module directory is `dirname`).
    pub fn old_wins(&self, dirname: &[u8], old: Candidate<'_>, new: Candidate<'_>) -> bool {
        // The path after `dirname/` (kmod only checks the `dirname` prefix, not the `/`), cut to
        // its directory plus the module-name part of its basename.
        fn rel<'p>(c: Candidate<'p>, dirname: &[u8]) -> Option<&'p [u8]> {
            let tail = c.path.strip_prefix(dirname)?.get(1..)?;
            let dir_len = tail.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
            tail.get(..dir_len + c.name_len)
        }
        let (new_rel, old_rel) = (rel(new, dirname), rel(old, dirname));

        for ov in self.overrides.iter().rev() {
            if new_rel == Some(ov.as_slice()) {
                return false;
            }
            if old_rel == Some(ov.as_slice()) {
                return true;
            }
        }

        let under = |r: Option<&[u8]>, dir: &[u8]| {
            r.and_then(|r| r.strip_prefix(dir))
                .is_some_and(|t| t.first() == Some(&b'/'))
        };
        // Without any `search` line kmod searches `updates` only (built-in is then unlisted).
        let default = [Search::Dir(b"updates".to_vec())];
        let list: &[Search] = if self.search.is_empty() {
            &default
        } else {
            &self.search
        };
        let (mut builtin, mut old_prio, mut new_prio) = (-1i64, -1i64, -1i64);
        let mut i = 0i64;
        for s in list.iter().rev() {
            match s {
                Search::BuiltIn => builtin = i,
                Search::External => {
                    for ext in self.externals.iter().rev() {
                        let starts = |p: &[u8]| {
                            p.strip_prefix(ext.as_slice())
                                .is_some_and(|t| t.first() == Some(&b'/'))
                        };
                        if starts(new.path) {
                            new_prio = i;
                        }
                        if starts(old.path) {
                            old_prio = i;
                        }
                        i += 1;
                    }
                }
                Search::Dir(d) => {
                    if under(new_rel, d) {
                        new_prio = i;
                    } else if under(old_rel, d) {
                        old_prio = i;
                    }
                }
            }
            i += 1;
        }
        if new_prio < 0 {
            new_prio = builtin;
        }
        if old_prio < 0 {
            old_prio = builtin;
        }
        new_prio <= old_prio
    }
}
