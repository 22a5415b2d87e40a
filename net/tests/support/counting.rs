//! A counting global allocator for allocation tests: forwards everything to `System` and calls
//! the test binary's hook on every allocation and reallocation (deallocations are not counted).
//!
//! Usage: `#[global_allocator] static GLOBAL: Counting = Counting(count);`, where `count` is
//! the binary's hook. The hook runs inside the allocator, so it must not allocate: touch only
//! atomics and const thread-locals without destructors.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a shared test module: each test binary uses a different part of it"
)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Forwards to `System`, calling the hook on `alloc` and `realloc`.
pub struct Counting(pub fn());

// SAFETY: every method forwards to `System` unchanged; the hook is required (see the module
// documentation) to touch only atomics and const thread-locals without destructors, none of
// which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        (self.0)();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        (self.0)();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
