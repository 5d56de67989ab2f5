//! How the recfusion process allocates: the binary's global allocator is mimalloc, and
//! [`tune_process`] sets it (and the kernel's page handling) for training's pattern of large
//! buffers freed and allocated again at every step. The benchmarks that time training call it
//! too, so they measure what the binary does.

/// Sets the process up as the recfusion binary runs: freed memory kept for reuse, no
/// transparent huge pages. Call it first thing in `main`, with mimalloc as the global
/// allocator; under another allocator the first setting does nothing.
pub fn tune_process() {
    keep_freed_memory_for_reuse();
    disable_transparent_huge_pages();
}

/// mimalloc's `mi_option_purge_delay` (its Rust bindings do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the kernel once it has been unused for 10 s rather than after
/// milliseconds: a training step frees and re-allocates the same large buffers, and returning
/// them each time cost the MovieLens benchmark 100 s of kernel time (4.7 million page faults,
/// 0.6 million with the delay).
fn keep_freed_memory_for_reuse() {
    // SAFETY: sets one integer option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) };
}

/// Transparent huge pages off for this process. mimalloc asks for them on its arenas, and
/// memory it returns and reuses then comes back as whole 2 MB pages the kernel must clear:
/// item_knn on 50M events spent 9.9 s in the kernel with them and 1.8 s without, and a
/// 200-item SASRec training ran 12.6 s instead of 9.6 s. The flag covers mappings made
/// before it, so it can be set after the allocator has started.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments and reads no memory.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
