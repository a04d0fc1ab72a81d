//! The read plan: which bytes of a module file depmod reads, so that a large file is read from
//! disk (or decompressed) only in those parts, and a range set that tracks what has been read.
//!
//! The parser reads the section header table, the section names, the sections of
//! [`elf::READ_SECTIONS`] and `__kcrctab*`, and the sections CRC symbols point into. Every other
//! byte of a module (code, data, relocations: most of the file) can stay unread; the parser
//! never looks at it, so a buffer holding anything there parses as the whole file does.

use alloc::vec::Vec;
use core::ops::Range;

use crate::elf::{self, Elf};

/// The parts of a module file depmod reads, as far as `data` (what is known so far of the file,
/// anything elsewhere) tells: the section header table, the section names, the sections the
/// parser reads, and those its CRC symbols point into. Replaces the contents of `want`.
///
/// The sections CRC symbols point into are only looked for once `filled` says the symbol table
/// has been read (a table of leftover bytes would only cost a useless scan).
pub fn wanted_ranges(
    data: &[u8],
    filled: &dyn Fn(&Range<usize>) -> bool,
    want: &mut Vec<Range<usize>>,
) {
    want.clear();
    let mut push = |offset: u64, len: u64| {
        if let (Ok(start), Ok(len)) = (usize::try_from(offset), usize::try_from(len)) {
            want.push(start..start.saturating_add(len));
        }
    };
    let Some((offset, len)) = elf::section_table_range(data) else { return };
    push(offset, len);
    // Asked for from the table, so that a name table not read yet does not stop the plan.
    if let Some((offset, len)) = elf::names_table_range(data) {
        push(offset, len);
    }
    let Ok(elf) = Elf::parse(data) else { return };
    for (name, section) in elf.sections() {
        let read = elf::READ_SECTIONS.iter().any(|k| k.as_bytes() == name);
        if read || name.starts_with(b"__kcrctab") {
            push(section.offset, section.data.len() as u64);
        }
    }
    let read = |name: &str| {
        elf.section_by_name(name).is_some_and(|s| {
            let start = s.offset as usize;
            filled(&(start..start.saturating_add(s.data.len())))
        })
    };
    if read(".symtab") && read(".strtab") {
        for index in elf::crc_sections(&elf) {
            if let Ok(section) = elf.section(index) {
                push(section.offset, section.data.len() as u64);
            }
        }
    }
}

/// Sorts `ranges` and joins those that overlap or lie at most `gap` bytes apart (a gap of 0
/// joins touching ranges), so that each joined range can be read in one call.
pub fn coalesce(ranges: &mut Vec<Range<usize>>, gap: usize) {
    ranges.retain(|r| !r.is_empty());
    ranges.sort_unstable_by_key(|r| r.start);
    let mut joined: usize = 0;
    for i in 1..ranges.len() {
        let next = ranges.get(i).cloned().unwrap_or_default();
        match ranges.get_mut(joined) {
            Some(last) if next.start <= last.end.saturating_add(gap) => {
                last.end = last.end.max(next.end);
            }
            _ => {
                joined += 1;
                if let Some(slot) = ranges.get_mut(joined) {
                    *slot = next;
                }
            }
        }
    }
    ranges.truncate(joined + 1);
}

/// Byte ranges of a file that have been read: sorted, disjoint, not touching.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range<usize>>,
}

impl RangeSet {
    /// Forgets every range, keeping the memory.
    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    /// Adds `r`, joining it with the ranges it overlaps or touches.
    pub fn insert(&mut self, r: Range<usize>) {
        self.ranges.push(r);
        coalesce(&mut self.ranges, 0);
    }

    /// Whether all of `r` is in the set (an empty `r` always is).
    pub fn covers(&self, r: &Range<usize>) -> bool {
        r.is_empty() || self.ranges.iter().any(|f| f.start <= r.start && r.end <= f.end)
    }

    /// Appends the parts of `r` not in the set to `out`, in order.
    pub fn missing(&self, r: Range<usize>, out: &mut Vec<Range<usize>>) {
        let mut cursor = r.start;
        for f in &self.ranges {
            if f.end <= cursor {
                continue;
            }
            if f.start >= r.end {
                break;
            }
            if f.start > cursor {
                out.push(cursor..f.start);
            }
            cursor = cursor.max(f.end);
        }
        if cursor < r.end {
            out.push(cursor..r.end);
        }
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::writer::ModuleSpec;
    use crate::module::ModuleInfo;
    use alloc::vec;

    #[test]
    fn range_sets_join_what_touches() {
        let mut f = RangeSet::default();
        for r in [10..20, 30..40, 20..25, 90..100, 50..50] {
            f.insert(r);
        }
        assert_eq!(f.ranges(), [10..25, 30..40, 90..100]);
        let mut out = Vec::new();
        f.missing(0..50, &mut out);
        assert_eq!(out, [0..10, 25..30, 40..50]);
        assert!(f.covers(&(12..24)) && f.covers(&(95..100)) && f.covers(&(7..7)));
        assert!(!f.covers(&(24..31)) && !f.covers(&(95..101)));
        f.clear();
        assert!(f.ranges().is_empty());
    }

    #[test]
    fn coalescing_joins_ranges_less_than_a_gap_apart() {
        let mut r = vec![50..60, 0..10, 9000..9100, 4000..4010, 20..20];
        coalesce(&mut r, 4096);
        assert_eq!(r, [0..4010, 9000..9100]);
        let mut r = vec![5..6, 0..5, 7..8];
        coalesce(&mut r, 0);
        assert_eq!(r, [0..6, 7..8]);
        let mut r: Vec<Range<usize>> = vec![];
        coalesce(&mut r, 0);
        assert!(r.is_empty());
    }

    /// A module with its planned parts kept and every other byte overwritten parses as the
    /// whole file does: the plan covers everything the parser reads.
    #[test]
    fn the_planned_parts_are_all_the_parser_reads() {
        let mut spec = ModuleSpec::new();
        spec.modinfo = vec![b"alias=x".to_vec(), b"softdep=pre: y".to_vec()];
        spec.exports = vec![b"e1".to_vec(), b"e2".to_vec()];
        spec.crcs = Some(vec![1, 2]);
        spec.imports = vec![(b"i1".to_vec(), false)];
        spec.versions = vec![(b"i1".to_vec(), 9)];
        spec.extra_sections = vec![(".text.big".into(), vec![0x90; 5000])];
        let file = spec.build();
        let mut partial = vec![0xa5; file.len()];
        let mut known = RangeSet::default();
        let mut want = Vec::new();
        // The header first, then rounds until the plan asks for nothing new (the section table,
        // then the name table, then the sections).
        let mut next = Vec::from([Range { start: 0, end: 64 }]);
        for _ in 0..4 {
            for r in next.drain(..) {
                partial[r.clone()].copy_from_slice(&file[r.clone()]);
                known.insert(r);
            }
            wanted_ranges(&partial, &|r| known.covers(r), &mut want);
            // Ranges read from bytes not read yet can be anything: they are clipped to the file.
            let clip = |r: &Range<usize>| r.start.min(file.len())..r.end.min(file.len());
            next = want.iter().map(clip).filter(|r| !known.covers(r)).collect();
            if next.is_empty() {
                break;
            }
        }
        assert!(next.is_empty());
        let unread: usize = file.len() - known.ranges().iter().map(|r| r.len()).sum::<usize>();
        assert!(unread >= 5000, "only {unread} bytes unread");
        let (a, b) = (ModuleInfo::parse(&partial), ModuleInfo::parse(&file));
        assert_eq!(a.aliases().collect::<Vec<_>>(), b.aliases().collect::<Vec<_>>());
        assert_eq!(a.exports().collect::<Vec<_>>(), b.exports().collect::<Vec<_>>());
        assert_eq!(a.imports().collect::<Vec<_>>(), b.imports().collect::<Vec<_>>());
        assert_eq!(b.exports().collect::<Vec<_>>(), [(&b"e1"[..], 1), (b"e2", 2)]);
    }
}
