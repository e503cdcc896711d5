//! A persistent pool of worker threads (std only).
//!
//! Threads are spawned once, with the backend. A kernel call publishes a job (a
//! borrowed closure and a task count) and takes part in it; workers claim task
//! indices from a shared cursor. Nothing is allocated per call: the closure stays
//! on the caller's stack, and the call does not return before every claimed task
//! has finished, which is what makes lending it to the workers sound.
//!
//! The cursor packs the job's generation (high 32 bits) with the next task index
//! (low 32 bits), so a worker that wakes late for an old job can never claim a
//! task of the new one with the old closure. Idle workers spin briefly (kernel
//! calls come in quick succession) and then sleep on a condition variable.

use crate::CpuError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::vec::Vec;

/// A job's closure with its lifetime erased (see the module documentation).
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn(usize, usize) + Sync + 'static));

// SAFETY: the closure is `Sync`, and `Pool::run` keeps it alive until every task
// that could call it has finished.
unsafe impl Send for Job {}

struct State {
    job: Option<Job>,
    tasks: usize,
    generation: u32,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    done: Condvar,
    cursor: AtomicU64,
    finished: AtomicUsize,
    panicked: AtomicBool,
}

/// Spins before sleeping, in `spin_loop` hints (some tens of microseconds: long
/// enough to bridge the short serial steps between products, short enough not to
/// steal a shared core for long).
const SPINS: usize = 1 << 11;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a thread panicked while holding it; the state
        // is plain data that stays consistent, so go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims the next task of job `generation`, if any is left.
    fn claim(&self, generation: u32, tasks: usize) -> Option<usize> {
        let mut current = self.cursor.load(Ordering::Acquire);
        loop {
            if (current >> 32) as u32 != generation || (current as u32 as usize) >= tasks {
                return None;
            }
            match self.cursor.compare_exchange_weak(current, current + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(current as u32 as usize),
                Err(now) => current = now,
            }
        }
    }

    /// Runs task `t` of `job`, recording a panic instead of unwinding, then counts it.
    fn execute(&self, job: Job, t: usize, worker: usize, tasks: usize) {
        // SAFETY: the task was claimed under the job's generation, so `Pool::run`
        // has not returned and the closure is alive (module documentation).
        let f = unsafe { &*job.0 };
        if catch_unwind(AssertUnwindSafe(|| f(t, worker))).is_err() {
            self.panicked.store(true, Ordering::Release);
        }
        if self.finished.fetch_add(1, Ordering::AcqRel) + 1 == tasks {
            let _guard = self.lock();
            self.done.notify_all();
        }
    }
}

/// Worker threads beside the caller's.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl core::fmt::Debug for Pool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool").field("workers", &self.threads.len()).finish()
    }
}

impl Pool {
    /// Spawns `workers` threads.
    pub fn new(workers: usize) -> Result<Pool, CpuError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { job: None, tasks: 0, generation: 0, shutdown: false }),
            wake: Condvar::new(),
            done: Condvar::new(),
            cursor: AtomicU64::new(0),
            finished: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        });
        let mut pool = Pool { shared, threads: Vec::with_capacity(workers) };
        for w in 0..workers {
            let shared = Arc::clone(&pool.shared);
            let handle = std::thread::Builder::new()
                .name(std::format!("brt-cpu-{}", w + 1))
                .spawn(move || worker_loop(&shared, w + 1))
                .map_err(|_| CpuError::Threads { requested: workers + 1, what: "the OS refused to start a thread" })?;
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    /// Worker threads (the caller's thread not counted).
    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Runs `f(task, worker)` for every task; the caller is worker 0.
    pub fn run(&self, tasks: usize, f: &(dyn Fn(usize, usize) + Sync)) -> Result<(), CpuError> {
        if tasks > u32::MAX as usize {
            return Err(CpuError::Threads { requested: tasks, what: "too many tasks in one call" });
        }
        let s = &*self.shared;
        // SAFETY: only the lifetime is erased; see the module documentation for why
        // the closure outlives every use.
        let job = Job(unsafe {
            core::mem::transmute::<
                *const (dyn Fn(usize, usize) + Sync + '_),
                *const (dyn Fn(usize, usize) + Sync + 'static),
            >(f)
        });
        let generation = {
            let mut st = s.lock();
            st.generation = st.generation.wrapping_add(1);
            st.job = Some(job);
            st.tasks = tasks;
            s.finished.store(0, Ordering::Release);
            s.panicked.store(false, Ordering::Release);
            s.cursor.store((st.generation as u64) << 32, Ordering::Release);
            st.generation
        };
        s.wake.notify_all();
        while let Some(t) = s.claim(generation, tasks) {
            s.execute(job, t, 0, tasks);
        }
        // Every task is claimed; wait until all have finished.
        let mut spins = 0;
        while s.finished.load(Ordering::Acquire) < tasks {
            if spins < SPINS {
                spins += 1;
                core::hint::spin_loop();
                continue;
            }
            let mut st = s.lock();
            while s.finished.load(Ordering::Acquire) < tasks {
                st = s.done.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        s.lock().job = None;
        if s.panicked.load(Ordering::Acquire) {
            return Err(CpuError::WorkerPanicked);
        }
        Ok(())
    }
}

fn worker_loop(s: &Shared, worker: usize) {
    let mut seen = 0u32;
    loop {
        // Wait for a new generation: spin first, then sleep.
        let mut spins = 0;
        while (s.cursor.load(Ordering::Acquire) >> 32) as u32 == seen && spins < SPINS {
            spins += 1;
            core::hint::spin_loop();
        }
        let (job, tasks, generation) = {
            let mut st = s.lock();
            while st.generation == seen && !st.shutdown {
                st = s.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.shutdown {
                return;
            }
            (st.job, st.tasks, st.generation)
        };
        seen = generation;
        let Some(job) = job else { continue };
        while let Some(t) = s.claim(generation, tasks) {
            s.execute(job, t, worker, tasks);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        {
            let mut st = self.shared.lock();
            st.shutdown = true;
        }
        self.shared.wake.notify_all();
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_task_runs_exactly_once_across_many_jobs() {
        let pool = Pool::new(3).unwrap();
        for tasks in [0usize, 1, 2, 7, 64, 1000] {
            let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
            pool.run(tasks, &|t, w| {
                assert!(w < 4);
                hits[t].fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "{tasks} tasks");
        }
    }

    #[test]
    fn a_panicking_task_is_reported_and_the_pool_survives() {
        let pool = Pool::new(1).unwrap();
        let r = pool.run(4, &|t, _| {
            if t == 2 {
                panic!("test panic");
            }
        });
        assert!(matches!(r, Err(CpuError::WorkerPanicked)));
        let count = AtomicUsize::new(0);
        pool.run(10, &|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 10);
    }
}
