//! The trainer's host work beside the kernels (the loss, the optimizer step),
//! split over the backend's threads.

/// Runs each part on a thread of its own, the first on this one, and returns
/// when all have finished.
pub(crate) fn run_parts<F: FnOnce() + Send>(mut parts: impl Iterator<Item = F>) {
    std::thread::scope(|scope| {
        let first = parts.next();
        parts.for_each(|part| {
            scope.spawn(part);
        });
        if let Some(part) = first {
            part();
        }
    });
}
