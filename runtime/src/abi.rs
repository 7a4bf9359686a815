//! The C ABI between generated code and its caller.

use std::ffi::c_void;

/// One task of a parallel loop in generated code: runs iteration `index` with the
/// node's buffer pointers `bufs`.
pub type TaskFn = unsafe extern "C" fn(bufs: *const *mut u8, index: usize);

/// Runs `task(bufs, i)` for every `i` in `0..count`, in any order and on any threads,
/// and returns when all have finished. `pool` is the caller's context.
pub type ParallelFor =
    unsafe extern "C" fn(pool: *mut c_void, task: TaskFn, bufs: *const *mut u8, count: usize);

/// `NAME_run_threaded`: the entry point of a compiled model. With `parallel_for` null,
/// every loop runs on the calling thread. Returns 0, or non-zero when a pointer that
/// must not be null is.
pub type RunFn = unsafe extern "C" fn(
    inputs: *const *const f32,
    outputs: *const *mut f32,
    workspace: *mut u8,
    parallel_for: Option<ParallelFor>,
    pool: *mut c_void,
) -> i32;

/// Called by a profiled run after each step (the launches of one node) with the
/// step's index; the steps of a banded Winograd convolution run by turns, so each of
/// theirs is reported once per band.
pub type StepHook = unsafe extern "C" fn(ctx: *mut c_void, step: usize);

/// The JIT-only profiled entry point: [`RunFn`] that calls `hook(hook_ctx, step)`
/// after each step.
pub type ProfiledRunFn = unsafe extern "C" fn(
    inputs: *const *const f32,
    outputs: *const *mut f32,
    workspace: *mut u8,
    parallel_for: Option<ParallelFor>,
    pool: *mut c_void,
    hook: StepHook,
    hook_ctx: *mut c_void,
) -> i32;

/// Status codes returned by the entry points.
pub mod status {
    pub const OK: i32 = 0;
    /// `inputs`, `outputs` or one of their elements is null.
    pub const NULL_TENSOR: i32 = 1;
    /// The workspace is null but the model needs one.
    pub const NULL_WORKSPACE: i32 = 2;
}
