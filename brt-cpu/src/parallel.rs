//! Running a kernel's independent tasks: on the caller's thread alone, or (with the
//! `std` feature) also on the backend's persistent worker threads.

#[cfg(feature = "std")]
use crate::pool::Pool;
use crate::CpuError;

/// A raw destination pointer shared by tasks that write disjoint parts of it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendPtr(pub *mut f32);

impl SendPtr {
    /// The pointer. (A method, so that closures capture the whole `SendPtr`,
    /// which is `Sync`, rather than its raw-pointer field.)
    pub fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: the pointer is only dereferenced by tasks of one kernel call, each of
// which writes a part of the buffer no other task touches (argued at every use),
// while the call holds the `&mut` borrow the pointer came from.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

/// The units of task `t` when `count` units are shared among `parts` tasks.
pub(crate) fn part(count: usize, parts: usize, t: usize) -> core::ops::Range<usize> {
    (count * t / parts)..(count * (t + 1) / parts)
}

/// The threads a backend computes on.
#[derive(Debug)]
pub(crate) struct Workers {
    #[cfg(feature = "std")]
    pool: Option<Pool>,
}

impl Workers {
    /// `threads` threads in all, the caller's included.
    pub fn new(threads: usize) -> Result<Workers, CpuError> {
        if threads == 0 {
            return Err(CpuError::Threads { requested: 0, what: "at least one thread is needed" });
        }
        #[cfg(feature = "std")]
        {
            let pool = if threads > 1 { Some(Pool::new(threads - 1)?) } else { None };
            Ok(Workers { pool })
        }
        #[cfg(not(feature = "std"))]
        {
            if threads > 1 {
                return Err(CpuError::Threads { requested: threads, what: "threads need the `std` feature" });
            }
            Ok(Workers {})
        }
    }

    /// Threads in all.
    pub fn count(&self) -> usize {
        #[cfg(feature = "std")]
        {
            self.pool.as_ref().map_or(1, |p| p.workers() + 1)
        }
        #[cfg(not(feature = "std"))]
        {
            1
        }
    }

    /// Runs `f(task, worker)` for every task in `0..tasks`; `worker < count()` is
    /// the index of the thread running it (to pick its scratch). Returns when all
    /// tasks are done.
    pub fn run(&self, tasks: usize, f: &(dyn Fn(usize, usize) + Sync)) -> Result<(), CpuError> {
        #[cfg(feature = "std")]
        if let Some(pool) = &self.pool {
            if tasks > 1 {
                return pool.run(tasks, f);
            }
        }
        for t in 0..tasks {
            f(t, 0);
        }
        Ok(())
    }
}
