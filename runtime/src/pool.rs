//! The thread pool behind the parallel-for that generated code calls.
//!
//! Workers are started once and wait between loops, spinning briefly (back-to-back
//! layers follow each other within microseconds) and then parking. A loop of `count`
//! iterations is split statically into one contiguous range per thread, the caller
//! taking the first; there is no allocation and no lock per iteration, one lock per
//! loop to serialize callers sharing the pool.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, Thread};

use crate::abi::TaskFn;

/// Spin iterations before a waiting thread parks (tens of microseconds).
const SPIN: u32 = 1 << 14;

struct Shared {
    /// The current loop, published by bumping `generation`.
    task: AtomicUsize,
    bufs: AtomicUsize,
    count: AtomicUsize,
    generation: AtomicU64,
    /// Workers that have not finished the current loop.
    pending: AtomicUsize,
    /// The thread waiting for the current loop, woken by the last worker.
    caller: Mutex<Option<Thread>>,
    shutdown: AtomicBool,
    threads: usize,
}

pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<(JoinHandle<()>, Thread)>,
    run: Mutex<()>,
}

/// Iterations `[lo, hi)` of `count` that thread `index` of `threads` runs.
fn range(count: usize, index: usize, threads: usize) -> (usize, usize) {
    (count * index / threads, count * (index + 1) / threads)
}

fn wait_until(mut done: impl FnMut() -> bool) {
    let mut spins = 0;
    while !done() {
        if spins < SPIN {
            spins += 1;
            std::hint::spin_loop();
        } else {
            thread::park();
        }
    }
}

fn worker(shared: Arc<Shared>, index: usize) {
    let mut seen = 0;
    loop {
        wait_until(|| shared.generation.load(Ordering::Acquire) != seen);
        seen = shared.generation.load(Ordering::Acquire);
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        let count = shared.count.load(Ordering::Relaxed);
        let bufs = shared.bufs.load(Ordering::Relaxed) as *const *mut u8;
        // SAFETY: `task` was stored from a `TaskFn` by `parallel_for` for this generation.
        let task: TaskFn =
            unsafe { std::mem::transmute::<usize, TaskFn>(shared.task.load(Ordering::Relaxed)) };
        let (lo, hi) = range(count, index, shared.threads);
        for i in lo..hi {
            // SAFETY: the caller of `parallel_for` guarantees `task` may run any index
            // of `0..count` with `bufs` until `parallel_for` returns.
            unsafe { task(bufs, i) };
        }
        if shared.pending.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(t) = shared.caller.lock().expect("caller slot").as_ref()
        {
            t.unpark();
        }
    }
}

impl ThreadPool {
    /// A pool running loops on `threads` threads in all: the caller and `threads - 1`
    /// workers. `threads` of 0 counts as 1.
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            task: AtomicUsize::new(0),
            bufs: AtomicUsize::new(0),
            count: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            caller: Mutex::new(None),
            shutdown: AtomicBool::new(false),
            threads,
        });
        let workers = (1..threads)
            .map(|index| {
                let s = Arc::clone(&shared);
                let handle = thread::Builder::new()
                    .name(format!("cnnc-worker-{index}"))
                    .spawn(move || worker(s, index))
                    .expect("spawning a worker thread");
                let t = handle.thread().clone();
                (handle, t)
            })
            .collect();
        ThreadPool {
            shared,
            workers,
            run: Mutex::new(()),
        }
    }

    /// Threads that run loops, the caller included.
    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Runs `task(bufs, i)` for `i` in `0..count` and returns when all are done.
    ///
    /// # Safety
    /// `task` must be safe to call with `bufs` and every index in `0..count`, from any
    /// thread, concurrently for different indices.
    pub unsafe fn parallel_for(&self, task: TaskFn, bufs: *const *mut u8, count: usize) {
        if self.workers.is_empty() || count <= 1 {
            for i in 0..count {
                // SAFETY: forwarded from the caller.
                unsafe { task(bufs, i) };
            }
            return;
        }
        let _one_loop_at_a_time = self.run.lock().expect("pool lock");
        let s = &self.shared;
        *s.caller.lock().expect("caller slot") = Some(thread::current());
        s.task.store(task as usize, Ordering::Relaxed);
        s.bufs.store(bufs as usize, Ordering::Relaxed);
        s.count.store(count, Ordering::Relaxed);
        s.pending.store(self.workers.len(), Ordering::Relaxed);
        s.generation.fetch_add(1, Ordering::Release);
        for (_, t) in &self.workers {
            t.unpark();
        }
        let (lo, hi) = range(count, 0, s.threads);
        for i in lo..hi {
            // SAFETY: forwarded from the caller.
            unsafe { task(bufs, i) };
        }
        wait_until(|| s.pending.load(Ordering::Acquire) == 0);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.generation.fetch_add(1, Ordering::Release);
        for (handle, t) in self.workers.drain(..) {
            t.unpark();
            let _ = handle.join();
        }
    }
}

/// The [`crate::abi::ParallelFor`] for a `ThreadPool` passed as `pool`.
///
/// # Safety
/// `pool` must point to a live `ThreadPool`; see [`ThreadPool::parallel_for`].
pub unsafe extern "C" fn pool_parallel_for(
    pool: *mut c_void,
    task: TaskFn,
    bufs: *const *mut u8,
    count: usize,
) {
    // SAFETY: guaranteed by the caller.
    unsafe { (*(pool as *const ThreadPool)).parallel_for(task, bufs, count) }
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn add_index(bufs: *const *mut u8, i: usize) {
        // bufs[0] points to an array of AtomicUsize, one per index.
        let slots = unsafe { *bufs } as *const AtomicUsize;
        unsafe { (*slots.add(i)).fetch_add(i + 1, Ordering::Relaxed) };
    }

    #[test]
    fn every_index_runs_once() {
        for threads in [1, 2, 3, 8] {
            let pool = ThreadPool::new(threads);
            for count in [0, 1, 2, 5, 64, 1000] {
                let slots: Vec<AtomicUsize> = (0..count).map(|_| AtomicUsize::new(0)).collect();
                let bufs = [slots.as_ptr() as *mut u8];
                for _ in 0..3 {
                    unsafe { pool.parallel_for(add_index, bufs.as_ptr(), count) };
                }
                for (i, s) in slots.iter().enumerate() {
                    assert_eq!(
                        s.load(Ordering::Relaxed),
                        3 * (i + 1),
                        "threads {threads} count {count}"
                    );
                }
            }
        }
    }

    #[test]
    fn ranges_cover_everything() {
        for threads in 1..6 {
            for count in 0..40 {
                let mut next = 0;
                for t in 0..threads {
                    let (lo, hi) = range(count, t, threads);
                    assert_eq!(lo, next);
                    next = hi;
                }
                assert_eq!(next, count);
            }
        }
    }

    #[test]
    fn callers_on_several_threads_share_a_pool() {
        let pool = Arc::new(ThreadPool::new(2));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    for _ in 0..200 {
                        let slots: Vec<AtomicUsize> =
                            (0..16).map(|_| AtomicUsize::new(0)).collect();
                        let bufs = [slots.as_ptr() as *mut u8];
                        unsafe { pool.parallel_for(add_index, bufs.as_ptr(), 16) };
                        assert!(
                            slots
                                .iter()
                                .enumerate()
                                .all(|(i, s)| s.load(Ordering::Relaxed) == i + 1)
                        );
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}
