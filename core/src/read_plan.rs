//! The read plan: which bytes of a module file depmod reads, so that a large file is read from
//! disk (or decompressed) only in those parts, and a range set that tracks what has been read.
//!
//! The parser reads the section header table, the section names, the sections of
//! [`elf::READ_SECTIONS`] and `__kcrctab*`, and the sections CRC symbols point into. Every other
//! byte of a module (code, data, relocations: most of the file) can stay unread; the parser
//! never looks at it, so a buffer holding anything there parses as the whole file does.
//!
//! A module decoded in passes over its stream ([`StreamPlan`]) need not keep the local part of
//! its symbol table either: it is scanned as it streams past ([`elf::LocalScan`]), keeping only
//! the few entries depmod reads.

use alloc::vec::Vec;
use core::ops::Range;

use crate::elf::{self, Elf, LocalScan, LocalSymbols, Unproven};

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
    plan(data, filled, Symtab::Whole, want);
}

/// How much of `.symtab` a plan asks for.
#[derive(Clone, Copy, Debug)]
enum Symtab<'s> {
    /// All of it.
    Whole,
    /// All but its local part, which is being scanned (`None`) or was (its summary).
    Globals(Option<&'s LocalSymbols>),
}

/// [`wanted_ranges`], asking for `symtab` of the symbol table.
fn plan(
    data: &[u8],
    filled: &dyn Fn(&Range<usize>) -> bool,
    symtab: Symtab<'_>,
    want: &mut Vec<Range<usize>>,
) {
    want.clear();
    let [Some(table), names] = tables(data) else { return };
    want.push(table);
    // Asked for from the table, so that a name table not read yet does not stop the plan.
    want.extend(names);
    let Ok(elf) = Elf::parse(data) else { return };
    // The parts of the symbol table the parser reads: all of it, or what lies around its local
    // part.
    let symtab_section = elf.section_by_name(".symtab");
    let mut symtab_parts = [0..0, 0..0];
    if let Some(whole) = symtab_section.as_ref().map(span) {
        symtab_parts = match (symtab, elf::local_part(&elf)) {
            (Symtab::Globals(_), Some(l)) => [whole.start..l.start, l.end..whole.end],
            _ => [whole, 0..0],
        };
    }
    for (name, section) in elf.sections() {
        let read = elf::READ_SECTIONS.iter().any(|k| k.as_bytes() == name);
        if symtab_section.is_some_and(|t| t.index == section.index) {
            want.extend(symtab_parts.iter().cloned());
        } else if read || name.starts_with(b"__kcrctab") {
            want.push(span(&section));
        }
    }
    let strtab_read = elf.section_by_name(".strtab").is_some_and(|s| filled(&span(&s)));
    let symtab_read = symtab_section.is_some() && symtab_parts.iter().all(filled);
    let elf = match symtab {
        Symtab::Whole => Some(elf),
        Symtab::Globals(summary) => summary.and_then(|s| elf.with_locals(s)),
    };
    if let (Some(elf), true) = (elf, symtab_read && strtab_read) {
        for index in elf::crc_sections(&elf) {
            if let Ok(section) = elf.section(index) {
                want.push(span(&section));
            }
        }
    }
}

/// The file bytes of a section.
fn span(section: &elf::Section<'_>) -> Range<usize> {
    let start = usize::try_from(section.offset).unwrap_or(usize::MAX);
    start..start.saturating_add(section.data.len())
}

/// The file bytes of the section header table and of the section name table, as far as `data`
/// tells.
fn tables(data: &[u8]) -> [Option<Range<usize>>; 2] {
    let range = |(offset, len): (u64, u64)| {
        let start = usize::try_from(offset).ok()?;
        Some(start..start.saturating_add(usize::try_from(len).ok()?))
    };
    [elf::section_table_range(data).and_then(range), elf::names_table_range(data).and_then(range)]
}

/// The read plan of a module decoded in passes over its stream (a big compressed one): after
/// each pass, the ranges the next one must keep and, when the local part of `.symtab` is large,
/// the range it must show a [`LocalScan`] as it streams past, instead of keeping it.
///
/// A scan made before `.strtab` is read (the table comes first in a module) leaves the names of
/// the local entries to check at its end; if one starts with `__crc_` (a module whose exports
/// have CRCs), one more pass scans the part again with the names at hand. A scan that fails
/// (a crafted file with more local entries that matter than [`elf::MAX_KEPT`]) has the next
/// pass keep the table whole, as for a small one.
#[derive(Debug)]
pub struct StreamPlan {
    /// Local parts smaller than this are kept.
    min_scan: usize,
    locals: Locals,
}

/// What becomes of the local part of `.symtab`.
#[derive(Debug)]
enum Locals {
    /// Not decided: the section table or its names have not been read yet.
    Undecided,
    /// Kept, like the rest of the table.
    Kept,
    /// Shown to this scan by the next pass.
    Scanning(LocalScan),
    /// Scanned: the entries that matter.
    Summarized(LocalSymbols),
}

impl StreamPlan {
    /// A plan that scans local parts of `min_scan` bytes or more rather than keeping them.
    pub fn new(min_scan: usize) -> Self {
        StreamPlan { min_scan, locals: Locals::Undecided }
    }

    /// After a pass: sets `want` to the ranges the next pass must keep, given what is known of
    /// the file (`data`, of which `filled` says what has been read), and returns the range the
    /// next pass must hand to [`StreamPlan::feed`], if any. A plan that asks for nothing new
    /// and returns `None` is done.
    pub fn next(
        &mut self,
        data: &[u8],
        filled: &dyn Fn(&Range<usize>) -> bool,
        want: &mut Vec<Range<usize>>,
    ) -> Option<Range<usize>> {
        let elf = Elf::parse(data).ok();
        let read = |name: &str| {
            let section = elf.as_ref().and_then(|e| e.section_by_name(name));
            section.is_some_and(|s| filled(&span(&s)))
        };
        let tables_read = tables(data).iter().all(|t| t.as_ref().is_some_and(filled));
        self.locals = match (core::mem::replace(&mut self.locals, Locals::Kept), &elf) {
            (Locals::Undecided, Some(elf)) if tables_read => {
                let big = elf::local_part(elf).is_some_and(|r| r.len() >= self.min_scan);
                let scan = big.then(|| LocalScan::new(elf, read(".strtab"))).flatten();
                scan.map_or(Locals::Kept, Locals::Scanning)
            }
            (Locals::Scanning(scan), Some(elf)) => match scan.finish(elf) {
                Ok(summary) => Locals::Summarized(summary),
                Err(Unproven::NeedsNames) if read(".strtab") => {
                    LocalScan::new(elf, true).map_or(Locals::Kept, Locals::Scanning)
                }
                Err(_) => Locals::Kept,
            },
            (Locals::Scanning(_), None) => Locals::Kept,
            (other, _) => other,
        };
        let symtab = match &self.locals {
            Locals::Undecided | Locals::Kept => Symtab::Whole,
            Locals::Scanning(_) => Symtab::Globals(None),
            Locals::Summarized(summary) => Symtab::Globals(Some(summary)),
        };
        plan(data, filled, symtab, want);
        match &self.locals {
            Locals::Scanning(scan) => Some(scan.range()),
            _ => None,
        }
    }

    /// `piece`, the bytes at file offset `at`, streaming past in file order (`data`: what is
    /// known of the file so far).
    pub fn feed(&mut self, at: usize, piece: &[u8], data: &[u8]) {
        if let Locals::Scanning(scan) = &mut self.locals {
            scan.feed(at, piece, data);
        }
    }

    /// The summary of the local part of `.symtab`, when it was scanned rather than kept: parse
    /// the buffer with [`crate::ModuleInfo::parse_lean`] then.
    pub fn locals(&self) -> Option<&LocalSymbols> {
        match &self.locals {
            Locals::Summarized(summary) => Some(summary),
            _ => None,
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
    use alloc::format;
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

    /// What a decoder driven by `plan` leaves of `file`, as `Decoders::decode_sparse` does:
    /// the first pass keeps the head and the tail, each later one what the plan asked for,
    /// showing the plan the range it watches in pieces of `piece` bytes as they stream past.
    /// Returns the buffer, the passes and what was kept.
    fn stream(file: &[u8], plan: &mut StreamPlan, piece: usize) -> (Vec<u8>, usize, RangeSet) {
        let size = file.len();
        let clip = |r: &Range<usize>| r.start.min(size)..r.end.min(size);
        let mut out = vec![0; size];
        let mut kept = RangeSet::default();
        let mut fresh = vec![0..size.min(4096), size.saturating_sub(64 * 1024)..size];
        let mut watch: Option<Range<usize>> = None;
        for pass in 1..=6 {
            fresh.iter().for_each(|r| kept.insert(r.clone()));
            for at in (0..size).step_by(piece) {
                let end = (at + piece).min(size);
                for r in &fresh {
                    let (lo, hi) = (r.start.max(at), r.end.min(end));
                    if lo < hi {
                        out[lo..hi].copy_from_slice(&file[lo..hi]);
                    }
                }
                if watch.as_ref().is_some_and(|w| w.start < end && at < w.end) {
                    plan.feed(at, &file[at..end], &out);
                }
            }
            let mut want = Vec::new();
            watch = plan.next(&out, &|r| kept.covers(&clip(r)), &mut want);
            fresh = want.iter().map(clip).filter(|r| !kept.covers(r)).collect();
            if fresh.is_empty() && watch.is_none() {
                return (out, pass, kept);
            }
        }
        panic!("still planning after 6 passes");
    }

    /// A module with a big local part (`plain` unnamed local functions), `exports` exported
    /// symbols (with `crcs`, their CRC symbols are local, as modpost's), and `local_imports`
    /// (undefined local entries) in the middle of the local part.
    fn big_module(plain: usize, crcs: bool, exports: u32, local_imports: &[&[u8]]) -> Vec<u8> {
        let mut spec = ModuleSpec::new();
        spec.modinfo = vec![b"alias=big".to_vec()];
        spec.exports = (0..exports).map(|i| format!("exported_function_{i:05}").into()).collect();
        spec.crcs = crcs.then(|| (0..exports).collect());
        spec.imports = vec![(b"i1".to_vec(), false)];
        spec.versions = vec![(b"i1".to_vec(), 9)];
        spec.plain_locals = plain;
        spec.local_imports = local_imports.iter().map(|n| n.to_vec()).collect();
        spec.extra_sections = vec![(".text.big".into(), vec![0x90; 100_000])];
        spec.build()
    }

    /// A module decoded in passes keeps nothing of a big local part: the plan scans it, in two
    /// passes without `__crc_` names, three with them (the second scan has the names: the
    /// first pass did not keep `.strtab`, bigger than the tail it keeps, unlike with 2
    /// exports), and the buffer parsed with the summary is the whole file. A small local part
    /// is kept instead.
    #[test]
    fn streamed_local_parts_are_scanned_not_kept() {
        let cases = [(false, 3000, 2, 1), (true, 3000, 3, 3001), (true, 2, 2, 3)];
        for (crcs, exports, passes, kept_locals) in cases {
            let file = big_module(20_000, crcs, exports, &[b"local_need"]);
            for piece in [4096, 1000, 77] {
                let mut plan = StreamPlan::new(1);
                let (out, n, kept) = stream(&file, &mut plan, piece);
                assert_eq!(n, passes, "crcs: {crcs}, {exports} exports");
                let locals = plan.locals().expect("scanned");
                assert_eq!(locals.kept(), kept_locals);
                let part = locals.range();
                assert!(part.len() >= 20_000 * 24);
                // Nothing of it is kept, but what the first pass keeps (the last 64 KiB).
                let unkept = part.start..part.end.min(file.len() - 64 * 1024);
                let mut gaps = Vec::new();
                kept.missing(part.clone(), &mut gaps);
                assert_eq!(gaps, core::slice::from_ref(&unkept));
                assert!(out[unkept].iter().all(|&b| b == 0));
                let lean = ModuleInfo::parse_lean(&out, locals, &mut Default::default()).unwrap();
                let whole = ModuleInfo::parse(&file);
                assert_eq!(lean.fields(), whole.fields());
                assert_eq!(whole.imports().next().map(|i| i.name), Some(&b"local_need"[..]));
            }
            let mut small = StreamPlan::new(30_000 * 24);
            let (out, n, _) = stream(&file, &mut small, 4096);
            assert!(small.locals().is_none());
            assert_eq!(n, 2);
            assert_eq!(ModuleInfo::parse(&out).fields(), ModuleInfo::parse(&file).fields());
        }
    }

    /// A crafted file with more local entries that matter than a scan keeps: the next pass keeps
    /// the table whole, and the buffer parses as the whole file.
    #[test]
    fn a_failed_scan_keeps_the_table() {
        let many: Vec<&[u8]> = vec![b"u"; elf::MAX_KEPT + 1];
        let file = big_module(1000, true, 2, &many);
        let mut plan = StreamPlan::new(1);
        let (out, passes, kept) = stream(&file, &mut plan, 4096);
        assert!(plan.locals().is_none());
        assert_eq!(passes, 3);
        let elf = Elf::parse(&file).unwrap();
        let symtab = elf.section_by_name(".symtab").unwrap();
        let start = symtab.offset as usize;
        assert!(kept.covers(&(start..start + symtab.data.len())));
        let info = ModuleInfo::parse(&out);
        assert_eq!(info.fields(), ModuleInfo::parse(&file).fields());
        assert_eq!(info.imports().len(), elf::MAX_KEPT + 1 + 1);
    }
}
