//! The allocators: glibc's malloc tuned ([`tune`]), and the global allocator of the static
//! (musl) build (`Split`).
//!
//! musl's malloc returns every group of small blocks to the kernel as soon as it empties and
//! takes one global lock, so a run that allocates and frees per module spends a fifth of its time
//! in `mmap`, `munmap` and `futex` (amd64 tree: 100 ms against 72 ms with glibc's malloc). Small
//! blocks therefore come from dlmalloc, which keeps what is freed. Big blocks still come from
//! musl: it maps them fresh, so a zeroed buffer whose pages are never written costs no memory
//! (sparse decoding of big compressed modules relies on that), and it gives them back when freed.

/// glibc builds (the static armv7, riscv64 and s390x ones among them): a fixed `mmap` threshold.
/// glibc maps blocks of 128 KiB and more, but raises that threshold to the size of each mapped
/// block freed (up to 32 MiB on 64-bit targets), and from then on keeps such blocks in its heaps
/// when they are freed, and clears a zeroed one by writing it: decode buffers of several MiB
/// then stay resident after their module, and a sparse decode's zero pages cost memory. Setting
/// the threshold turns the raising off. Over riscv64's tree (x86-64 glibc build, host) the peak
/// RSS went from 54-78 MB to 39 MB, and from 42-44 to 36-38 MB over Debian 12's 6.12 `.ko.xz`
/// tree, in the same time; a 128 MiB board has 25 MiB to give.
#[cfg(target_env = "gnu")]
pub fn tune() {
    const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
    unsafe extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    // SAFETY: mallopt only sets one of malloc's parameters; it is called before any thread.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Other C libraries: musl's malloc maps big blocks and gives them back (see `Split`).
#[cfg(not(target_env = "gnu"))]
pub fn tune() {}

#[cfg(target_env = "musl")]
use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks of at least this many bytes come from musl's malloc.
#[cfg(target_env = "musl")]
const BIG: usize = 128 * 1024;

/// The static build's allocator: small blocks from dlmalloc, big ones from musl.
#[cfg(target_env = "musl")]
pub struct Split;

/// dlmalloc behind a spin lock, as dlmalloc's own C code guards its heap (`USE_SPIN_LOCKS`).
/// An allocation holds it for a few dozen nanoseconds. Behind std's `Mutex`, a thread that
/// found it taken soon slept in `futex` and had to be woken: 549 `futex` calls in a re-run that
/// removes a module, against 96 on one thread. Spinning instead made first runs of the amd64
/// tree 4% faster and that re-run 7%. The three functions below are its only users, kept out of
/// line: inlined into every allocation, dlmalloc's code made the binary 53 KB larger.
#[cfg(target_env = "musl")]
static SMALL: Heap = Heap {
    locked: std::sync::atomic::AtomicBool::new(false),
    heap: std::cell::UnsafeCell::new(dlmalloc::Dlmalloc::new()),
};

#[cfg(target_env = "musl")]
struct Heap {
    locked: std::sync::atomic::AtomicBool,
    heap: std::cell::UnsafeCell<dlmalloc::Dlmalloc>,
}

// SAFETY: the heap is only reached through `with_heap`, by the one thread holding `locked`; its
// pointers are to memory it maps for itself.
#[cfg(target_env = "musl")]
unsafe impl Sync for Heap {}

/// Holds [`SMALL`]'s lock; lets it go when dropped (also if `f` of [`with_heap`] unwinds, which
/// the release build cannot: it aborts on a panic).
#[cfg(target_env = "musl")]
struct Locked;

#[cfg(target_env = "musl")]
impl Locked {
    /// Takes the lock: spins while it is held, then, if it still is (its holder was preempted,
    /// or more threads than CPUs allocate), gives the CPU up between looks.
    fn take() -> Self {
        use std::sync::atomic::Ordering;
        let mut looks = 0u32;
        while SMALL.locked.swap(true, Ordering::Acquire) {
            while SMALL.locked.load(Ordering::Relaxed) {
                looks = looks.saturating_add(1);
                if looks < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        Locked
    }
}

#[cfg(target_env = "musl")]
impl Drop for Locked {
    fn drop(&mut self) {
        SMALL.locked.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// `f` on the small-block heap, locked.
#[cfg(target_env = "musl")]
fn with_heap<R>(f: impl FnOnce(&mut dlmalloc::Dlmalloc) -> R) -> R {
    let _locked = Locked::take();
    // SAFETY: the lock is held until `_locked` drops, after `f`: no other reference exists.
    f(unsafe { &mut *SMALL.heap.get() })
}

#[cfg(target_env = "musl")]
#[inline(never)]
unsafe fn small_malloc(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    // SAFETY: forwarded with the caller's guarantees.
    with_heap(|heap| unsafe {
        if zeroed { heap.calloc(size, align) } else { heap.malloc(size, align) }
    })
}

#[cfg(target_env = "musl")]
#[inline(never)]
unsafe fn small_free(ptr: *mut u8, size: usize, align: usize) {
    // SAFETY: forwarded with the caller's guarantees.
    with_heap(|heap| unsafe { heap.free(ptr, size, align) })
}

#[cfg(target_env = "musl")]
#[inline(never)]
unsafe fn small_realloc(ptr: *mut u8, size: usize, align: usize, new_size: usize) -> *mut u8 {
    // SAFETY: forwarded with the caller's guarantees.
    with_heap(|heap| unsafe { heap.realloc(ptr, size, align, new_size) })
}

#[cfg(target_env = "musl")]
// SAFETY: every block is freed (or resized) by the allocator that made it, since the choice
// depends only on the block's size, which the caller passes back unchanged; a resize across the
// boundary allocates from the other side, copies, and frees the old block.
unsafe impl GlobalAlloc for Split {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if layout.size() >= BIG {
                System.alloc(layout)
            } else {
                small_malloc(layout.size(), layout.align(), false)
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if layout.size() >= BIG {
                System.alloc_zeroed(layout)
            } else {
                small_malloc(layout.size(), layout.align(), true)
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
                small_free(ptr, layout.size(), layout.align())
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
                (false, false) => small_realloc(ptr, layout.size(), layout.align(), new_size),
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

#[cfg(all(test, target_env = "musl"))]
mod tests {
    /// Threads that allocate, grow, check and free small blocks all at once each find their
    /// blocks as they wrote them: the small-block heap's lock keeps them apart.
    #[test]
    fn threads_allocating_at_once_keep_their_blocks() {
        let threads: Vec<_> = (1..=4u8)
            .map(|t| {
                std::thread::spawn(move || {
                    for round in 0..2000usize {
                        let mut blocks: Vec<Vec<u8>> =
                            (0..16).map(|i| vec![t; 1 + (round * 7 + i * 13) % 600]).collect();
                        for block in &mut blocks {
                            block.extend_from_slice(&[t; 100]);
                        }
                        assert!(blocks.iter().flatten().all(|&byte| byte == t));
                    }
                })
            })
            .collect();
        for thread in threads {
            assert!(thread.join().is_ok());
        }
    }
}
