//! The module's allocator: small blocks come from per-size free lists in
//! front of the standard one (dlmalloc on `wasm32-unknown-unknown`).
//!
//! A filter allocates a handful of small blocks on every request and frees
//! them before the next: its context, the header values the host returns,
//! the strings it builds. dlmalloc spends a few hundred instructions on each
//! allocation and each free; it was the largest single cost in the bundled
//! filters' request path. Here a freed small block goes onto the list of its
//! size class and the next allocation of that class takes it back, a few
//! instructions each. Larger or more strictly aligned blocks go straight to
//! dlmalloc.
//!
//! Blocks on the lists are not given back to dlmalloc: a module holds at
//! most the small-block peak it ever reached, as a slab allocator does.
//! Modules are single-threaded (no `atomics` target feature), so the lists
//! need no lock. Turn the `allocator` feature off to use another global
//! allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr::null_mut;

/// Size classes are multiples of this, which is also their alignment.
const GRAIN: usize = 16;
/// Blocks up to this size are kept on free lists.
const LARGEST: usize = 512;
const CLASSES: usize = LARGEST / GRAIN;

/// The allocator registered as the module's global allocator.
pub(crate) struct SmallBlocks {
    /// Head of each class's free list; a free block's first word points to
    /// the next.
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: wasm32 modules without the `atomics` feature run on one thread.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for SmallBlocks {}

impl SmallBlocks {
    pub(crate) const fn new() -> Self {
        Self {
            free: UnsafeCell::new([null_mut(); CLASSES]),
        }
    }
}

impl Default for SmallBlocks {
    fn default() -> Self {
        Self::new()
    }
}

/// The class of a layout, if its blocks are kept on a list.
fn class(layout: Layout) -> Option<usize> {
    if layout.size() > LARGEST || layout.align() > GRAIN {
        return None;
    }
    // Zero-sized layouts never reach an allocator; size 1..=16 is class 0.
    Some(layout.size().saturating_sub(1) / GRAIN)
}

fn class_layout(class: usize) -> Layout {
    // SAFETY: the size is a non-zero multiple of GRAIN, a power of two.
    unsafe { Layout::from_size_align_unchecked((class + 1) * GRAIN, GRAIN) }
}

// SAFETY: every block handed out is valid for its layout: list blocks are
// at least as large and as aligned as any layout of their class, and a
// block goes back onto the list of the class it was allocated from (the
// caller passes the same layout to `dealloc`).
unsafe impl GlobalAlloc for SmallBlocks {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            // SAFETY: forwarded as received.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: one thread; no reference to the lists outlives this call.
        let free = unsafe { &mut *self.free.get() };
        let head = free[c];
        if head.is_null() {
            // SAFETY: a valid non-zero layout.
            return unsafe { System.alloc(class_layout(c)) };
        }
        // SAFETY: a listed block is free and holds the next pointer.
        free[c] = unsafe { head.cast::<*mut u8>().read() };
        head
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(c) = class(layout) else {
            // SAFETY: allocated by System with this layout.
            return unsafe { System.dealloc(ptr, layout) };
        };
        // SAFETY: one thread; the block is ours again and at least GRAIN
        // bytes, aligned to GRAIN: room for the next pointer.
        let free = unsafe { &mut *self.free.get() };
        unsafe { ptr.cast::<*mut u8>().write(free[c]) };
        free[c] = ptr;
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class(layout).is_none() {
            // SAFETY: forwarded as received; dlmalloc knows which of its
            // memory is still zero.
            return unsafe { System.alloc_zeroed(layout) };
        }
        // SAFETY: as `alloc`; the block is then zeroed over its layout.
        let ptr = unsafe { self.alloc(layout) };
        if !ptr.is_null() {
            unsafe { ptr.write_bytes(0, layout.size()) };
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees new_size, rounded to the alignment,
        // does not overflow isize.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new)) {
            // Same class: the block already fits.
            (Some(a), Some(b)) if a == b => ptr,
            // Both large: dlmalloc may grow in place.
            // SAFETY: allocated by System with `layout`.
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                // SAFETY: as `alloc` and `dealloc`; the copy covers the
                // smaller of the two sizes, inside both blocks.
                let fresh = unsafe { self.alloc(new) };
                if !fresh.is_null() {
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                fresh
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("valid layout")
    }

    #[test]
    fn a_freed_small_block_is_handed_out_again_for_its_class() {
        let a = SmallBlocks::new();
        unsafe {
            let p = a.alloc(layout(24, 8));
            assert!(!p.is_null());
            assert_eq!(p as usize % GRAIN, 0);
            p.write_bytes(0xAB, 24);
            a.dealloc(p, layout(24, 8));
            // Another size of the same class (17..=32) takes the same block.
            let q = a.alloc(layout(32, 1));
            assert_eq!(q, p);
            // A different class does not.
            let r = a.alloc(layout(8, 1));
            assert_ne!(r, q);
            a.dealloc(q, layout(32, 1));
            a.dealloc(r, layout(8, 1));
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_when_reused() {
        let a = SmallBlocks::new();
        unsafe {
            let p = a.alloc(layout(40, 8));
            p.write_bytes(0xFF, 40);
            a.dealloc(p, layout(40, 8));
            let q = a.alloc_zeroed(layout(48, 8));
            assert_eq!(q, p);
            assert!(std::slice::from_raw_parts(q, 48).iter().all(|b| *b == 0));
            a.dealloc(q, layout(48, 8));
            let big = a.alloc_zeroed(layout(4096, 8));
            assert!(std::slice::from_raw_parts(big, 4096)
                .iter()
                .all(|b| *b == 0));
            a.dealloc(big, layout(4096, 8));
        }
    }

    #[test]
    fn realloc_keeps_the_contents_across_classes_and_into_large_blocks() {
        let a = SmallBlocks::new();
        unsafe {
            let mut p = a.alloc(layout(5, 1));
            p.copy_from_nonoverlapping(b"hello".as_ptr(), 5);
            let mut size = 5;
            for new_size in [12, 100, 511, 2000, 300, 7] {
                p = a.realloc(p, layout(size, 1), new_size);
                assert!(!p.is_null());
                assert_eq!(std::slice::from_raw_parts(p, 5), b"hello", "at {new_size}");
                size = new_size;
            }
            a.dealloc(p, layout(size, 1));
        }
    }

    #[test]
    fn strictly_aligned_blocks_bypass_the_lists() {
        let a = SmallBlocks::new();
        unsafe {
            let p = a.alloc(layout(64, 64));
            assert_eq!(p as usize % 64, 0);
            a.dealloc(p, layout(64, 64));
        }
    }

    #[test]
    fn classes_cover_sizes_up_to_the_largest() {
        let l = |size, align| Layout::from_size_align(size, align).ok();
        assert_eq!(l(1, 1).and_then(class), Some(0));
        assert_eq!(l(16, 8).and_then(class), Some(0));
        assert_eq!(l(17, 1).and_then(class), Some(1));
        assert_eq!(l(LARGEST, 16).and_then(class), Some(CLASSES - 1));
        assert_eq!(l(LARGEST + 1, 1).and_then(class), None);
        assert_eq!(l(8, 32).and_then(class), None);
    }
}
