//! `modules.dep`: each module's path, a colon, and the paths of everything it needs.

use alloc::vec::Vec;

use super::Index;

/// Appends `modules.dep` to `out`. No header; a module without dependencies ends in `:`.
pub fn write_dep(index: &Index<'_>, out: &mut Vec<u8>) {
    index.for_each_dep_list(|_, m, deps| {
        out.extend_from_slice(m.output_path());
        out.push(b':');
        for &d in deps {
            if let Some(dep) = index.module(d) {
                out.push(b' ');
                out.extend_from_slice(dep.output_path());
            }
        }
        out.push(b'\n');
    });
}
