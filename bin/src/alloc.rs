//! The global allocator of the static (musl) build.
//!
//! musl's malloc returns every group of small blocks to the kernel as soon as it empties and
//! takes one global lock, so a run that allocates and frees per module spends a fifth of its time
//! in `mmap`, `munmap` and `futex` (amd64 tree: 100 ms against 72 ms with glibc's malloc). Small
//! blocks therefore come from dlmalloc, which keeps what is freed. Big blocks still come from
//! musl: it maps them fresh, so a zeroed buffer whose pages are never written costs no memory
//! (sparse decoding of big compressed modules relies on that), and it gives them back when freed.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks of at least this many bytes come from musl's malloc.
const BIG: usize = 128 * 1024;

pub struct Split;

static SMALL: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

// SAFETY: every block is freed (or resized) by the allocator that made it, since the choice
// depends only on the block's size, which the caller passes back unchanged; a resize across the
// boundary allocates from the other side, copies, and frees the old block.
unsafe impl GlobalAlloc for Split {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { if layout.size() >= BIG { System.alloc(layout) } else { SMALL.alloc(layout) } }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if layout.size() >= BIG {
                System.alloc_zeroed(layout)
            } else {
                SMALL.alloc_zeroed(layout)
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `layout` is the one `ptr` was allocated with, so this picks the same side.
        unsafe {
            if layout.size() >= BIG {
                System.dealloc(ptr, layout)
            } else {
                SMALL.dealloc(ptr, layout)
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (was_big, is_big) = (layout.size() >= BIG, new_size >= BIG);
        // SAFETY: the caller guarantees `ptr` and `layout` match and `new_size` is valid for
        // `layout.align()`; a block changing sides is copied into a new block of the new size.
        unsafe {
            match (was_big, is_big) {
                (true, true) => System.realloc(ptr, layout, new_size),
                (false, false) => SMALL.realloc(ptr, layout, new_size),
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}
