//! The binary's allocator: mimalloc, a thread-caching allocator. Every
//! request allocates and frees small objects on its worker thread
//! (headers, futures, buffers), which glibc's allocator serves with locks
//! and consolidation passes.
//!
//! mimalloc is called through its plain `mi_malloc` whenever the block it
//! returns is aligned enough, which is almost always: its aligned entry
//! point (what the `mimalloc` crate calls for every allocation) has a fast
//! path for blocks of at most 1 KiB only, and over-allocates for larger
//! ones, such as a request's future or a connection's buffers.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// Beyond this alignment `mi_malloc`'s blocks are never tried.
const PLAIN_ALIGN: usize = 16;

pub struct MiMalloc;

/// `p` when it is null or aligned to `align`; otherwise frees it.
///
/// # Safety
/// `p` is null or a live block from mimalloc that nothing else holds.
unsafe fn aligned_or_freed(p: *mut c_void, align: usize) -> Option<*mut u8> {
    if (p as usize) & (align - 1) == 0 {
        return Some(p.cast());
    }
    // SAFETY: the caller's block, not handed out.
    unsafe { mi_free(p) };
    None
}

/// A block for `layout` from `plain` when its block is aligned enough,
/// else from `aligned`.
///
/// # Safety
/// `plain` and `aligned` are mimalloc's entry points of one kind (plain or
/// zeroed).
unsafe fn allocate(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    let (size, align) = (layout.size(), layout.align());
    if align <= PLAIN_ALIGN {
        // SAFETY: a fresh block, ours alone.
        if let Some(p) = unsafe { aligned_or_freed(plain(size), align) } {
            return p;
        }
    }
    // SAFETY: mimalloc's aligned allocation, any size and power-of-two
    // alignment (`Layout` guarantees the latter).
    unsafe { aligned(size, align).cast() }
}

// SAFETY: every block comes from mimalloc, is aligned to the layout's
// alignment (checked, or asked of mimalloc's aligned entry points) and is
// freed by mimalloc.
unsafe impl GlobalAlloc for MiMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the plain pair.
        unsafe { allocate(layout, mi_malloc, mi_malloc_aligned) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the zeroed pair.
        unsafe { allocate(layout, mi_zalloc, mi_zalloc_aligned) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from one of this allocator's calls.
        unsafe { mi_free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        if align <= PLAIN_ALIGN {
            // SAFETY: `ptr` came from this allocator; on success the old
            // block is gone and the new one holds its bytes.
            let p = unsafe { mi_realloc(ptr.cast(), new_size) };
            if (p as usize) & (align - 1) == 0 {
                return p.cast();
            }
            // Moved to a block not aligned enough: move it once more.
            // SAFETY: `p` is live and holds min(old, new) bytes; the
            // aligned block is fresh.
            unsafe {
                let q = mi_malloc_aligned(new_size, align);
                if !q.is_null() {
                    std::ptr::copy_nonoverlapping(
                        p.cast::<u8>(),
                        q.cast::<u8>(),
                        new_size.min(layout.size()),
                    );
                    mi_free(p);
                }
                return q.cast();
            }
        }
        // SAFETY: `ptr` came from this allocator with this alignment.
        unsafe { mi_realloc_aligned(ptr.cast(), new_size, align).cast() }
    }
}
