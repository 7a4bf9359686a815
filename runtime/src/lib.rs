//! The runtime of cnnc-compiled models.
//!
//! Generated code needs nothing from here: an object file from `cnnc` is complete on
//! its own. This crate gives callers what is convenient around it: an aligned
//! [`AlignedBuffer`] for the workspace, a [`ThreadPool`] implementing the parallel-for callback of the
//! threaded entry point, the C ABI types ([`abi`]), and [`Executable`], which keeps JIT
//! code alive next to its entry point. Built as a static library it exports the pool to
//! C (`include/cnnc_runtime.h`).

pub mod abi;
mod pool;
mod workspace;

use std::any::Any;
use std::ffi::c_void;

pub use pool::{ThreadPool, pool_parallel_for};
pub use workspace::{ALIGN, AlignedBuffer};

/// Generated code in memory: its entry point, and whatever owns the code pages.
pub struct Executable {
    run: abi::RunFn,
    profiled: Option<abi::ProfiledRunFn>,
    workspace_size: usize,
    _code: Box<dyn Any + Send>,
}

// The code owner is never accessed after construction, only dropped, so sharing
// `&Executable` between threads cannot race on it; the entry point is reentrant.
unsafe impl Sync for Executable {}

impl Executable {
    /// # Safety
    /// `run` must point into code kept alive by `code` and follow [`abi::RunFn`], using
    /// at most `workspace_size` bytes of workspace.
    pub unsafe fn new(run: abi::RunFn, workspace_size: usize, code: Box<dyn Any + Send>) -> Self {
        Executable {
            run,
            profiled: None,
            workspace_size,
            _code: code,
        }
    }

    /// Adds the profiled entry point of the same code.
    ///
    /// # Safety
    /// `profiled` must point into the code kept alive by this executable and follow
    /// [`abi::ProfiledRunFn`], running the same steps as `run`.
    pub unsafe fn with_profiled(mut self, profiled: abi::ProfiledRunFn) -> Self {
        self.profiled = Some(profiled);
        self
    }

    /// Whether [`Executable::run_profiled`] is available.
    pub fn can_profile(&self) -> bool {
        self.profiled.is_some()
    }

    pub fn workspace_size(&self) -> usize {
        self.workspace_size
    }

    /// Runs the model, its loops on `pool` when given.
    ///
    /// # Safety
    /// `inputs` and `outputs` must point to buffers of the model's tensor sizes, and
    /// `workspace` must have at least `workspace_size()` bytes, aligned to [`ALIGN`].
    pub unsafe fn run(
        &self,
        inputs: *const *const f32,
        outputs: *const *mut f32,
        workspace: *mut u8,
        pool: Option<&ThreadPool>,
    ) -> i32 {
        let (pfor, ctx): (Option<abi::ParallelFor>, *mut c_void) = match pool {
            Some(p) if p.threads() > 1 => (
                Some(pool_parallel_for),
                p as *const ThreadPool as *mut c_void,
            ),
            _ => (None, std::ptr::null_mut()),
        };
        // SAFETY: forwarded from the caller.
        unsafe { (self.run)(inputs, outputs, workspace, pfor, ctx) }
    }

    /// [`Executable::run`] through the profiled entry point, calling `on_step(step)`
    /// after each step (after each band of a banded convolution's steps, see
    /// [`abi::StepHook`]); `None` when the code was compiled without it.
    ///
    /// # Safety
    /// As for [`Executable::run`].
    pub unsafe fn run_profiled(
        &self,
        inputs: *const *const f32,
        outputs: *const *mut f32,
        workspace: *mut u8,
        pool: Option<&ThreadPool>,
        on_step: &mut dyn FnMut(usize),
    ) -> Option<i32> {
        unsafe extern "C" fn hook(ctx: *mut c_void, step: usize) {
            // SAFETY: `ctx` is the `&mut &mut dyn FnMut` below, alive during the run.
            let f = unsafe { &mut *(ctx as *mut &mut dyn FnMut(usize)) };
            f(step);
        }
        let run = self.profiled?;
        let (pfor, ctx): (Option<abi::ParallelFor>, *mut c_void) = match pool {
            Some(p) if p.threads() > 1 => (
                Some(pool_parallel_for),
                p as *const ThreadPool as *mut c_void,
            ),
            _ => (None, std::ptr::null_mut()),
        };
        let mut on_step = on_step;
        let hook_ctx = &mut on_step as *mut &mut dyn FnMut(usize) as *mut c_void;
        // SAFETY: forwarded from the caller; the hook context outlives the call.
        Some(unsafe { run(inputs, outputs, workspace, pfor, ctx, hook, hook_ctx) })
    }
}

/// C: `cnnc_pool *cnnc_pool_new(size_t threads)`.
#[unsafe(no_mangle)]
pub extern "C" fn cnnc_pool_new(threads: usize) -> *mut c_void {
    Box::into_raw(Box::new(ThreadPool::new(threads))) as *mut c_void
}

/// C: `void cnnc_pool_free(cnnc_pool *pool)`.
///
/// # Safety
/// `pool` must come from `cnnc_pool_new` and not be used afterwards (null is ignored).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cnnc_pool_free(pool: *mut c_void) {
    if !pool.is_null() {
        // SAFETY: created by `cnnc_pool_new`.
        drop(unsafe { Box::from_raw(pool as *mut ThreadPool) });
    }
}

/// C: the parallel-for to pass to `NAME_run_threaded` together with the pool.
///
/// # Safety
/// See [`ThreadPool::parallel_for`]; `pool` must come from `cnnc_pool_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cnnc_pool_parallel_for(
    pool: *mut c_void,
    task: abi::TaskFn,
    bufs: *const *mut u8,
    count: usize,
) {
    // SAFETY: forwarded from the caller.
    unsafe { pool_parallel_for(pool, task, bufs, count) }
}
