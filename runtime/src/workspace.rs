//! Aligned memory: the workspace arena a compiled model computes in, and the
//! constant data of JIT-compiled code.

use std::alloc::{Layout, alloc, alloc_zeroed, dealloc};
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
        Self::allocate(size, alloc)
    }

    /// `size` bytes, all zero (fresh pages from the system are not written twice).
    pub fn zeroed(size: usize) -> Self {
        Self::allocate(size, alloc_zeroed)
    }

    fn allocate(size: usize, allocator: unsafe fn(Layout) -> *mut u8) -> Self {
        let layout =
            Layout::from_size_align(size.max(ALIGN), ALIGN).expect("buffer size fits in isize");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { allocator(layout) };
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

/// Initialized, 64-byte aligned bytes of a fixed capacity, filled from the front: the
/// constant data of a model as it is laid out, which JIT code then reads in place.
pub struct AlignedBytes {
    buf: AlignedBuffer,
    len: usize,
}

impl AlignedBytes {
    /// Room for `capacity` bytes, none used yet (all zero).
    pub fn with_capacity(capacity: usize) -> Self {
        AlignedBytes {
            buf: AlignedBuffer::zeroed(capacity),
            len: 0,
        }
    }

    /// The bytes in use.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the whole buffer was zeroed, so its first `len` bytes are initialized.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr(), self.len) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.buf.as_ptr()
    }

    /// Drops the bytes from `len` on, zeroing them again (they may be appended later).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            // SAFETY: `len..self.len` is inside the buffer and `&mut self` is unique.
            unsafe { std::ptr::write_bytes(self.buf.as_mut_ptr().add(len), 0, self.len - len) };
            self.len = len;
        }
    }

    /// Uses the next `n` zero bytes at `offset` or after (`offset` at least the length):
    /// returns them for writing.
    ///
    /// # Panics
    /// If they would not fit in the capacity.
    pub fn extend_at(&mut self, offset: usize, n: usize) -> &mut [u8] {
        assert!(offset >= self.len, "bytes are appended after those in use");
        let end = offset
            .checked_add(n)
            .filter(|&e| e <= self.buf.size())
            .expect("appended bytes fit in the capacity");
        self.len = end;
        // SAFETY: `offset..end` is inside the zeroed buffer and `&mut self` is unique.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().add(offset), n) }
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
