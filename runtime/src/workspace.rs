//! Aligned memory: the workspace arena a compiled model computes in.

use std::alloc::{Layout, alloc, dealloc};
use std::ptr::NonNull;

/// Alignment of the workspace and of every buffer planned in it.
pub const ALIGN: usize = 64;

/// A 64-byte aligned block of memory.
pub struct AlignedBuffer {
    ptr: NonNull<u8>,
    layout: Layout,
}

// The workspace is plain memory; whoever holds `&mut` may use it from any thread.
unsafe impl Send for AlignedBuffer {}
// Shared references only hand out the pointer.
unsafe impl Sync for AlignedBuffer {}

impl AlignedBuffer {
    /// `size` bytes, uninitialized.
    pub fn new(size: usize) -> Self {
        let layout =
            Layout::from_size_align(size.max(ALIGN), ALIGN).expect("buffer size fits in isize");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            std::alloc::handle_alloc_error(layout)
        };
        AlignedBuffer { ptr, layout }
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn size(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
