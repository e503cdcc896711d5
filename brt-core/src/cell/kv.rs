//! Where a layer's keys and values lie during one run of the layers: the cached
//! window followed by the call's own positions, either in the stream state itself
//! (the window slides over the plan's runway) or copied into the scratch.

use crate::kernels::{View, ViewMut};

/// The KV window of every layer for one run of the layers (all layers advance by
/// the same positions, so one offset serves them all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KvWindow {
    /// Elements from the start of each KV region to the window's first position.
    pub offset: usize,
    /// Where the window starts after the run: `offset` plus the run's positions
    /// when they fit in the runway, else 0 (the window moves back).
    pub next: usize,
    /// Whether the run's keys and values are written after the window in place
    /// (the runway has room for them) rather than in the scratch.
    pub in_place: bool,
}

impl KvWindow {
    /// Keys (`region` = the layer's key region) or values from position `at`
    /// (an element offset counted from the window's start).
    pub fn view<'a, T>(self, region: usize, state: &'a T, scratch: &'a T, at: usize) -> View<'a, T> {
        if self.in_place {
            View::new(state, region + self.offset + at)
        } else {
            View::new(scratch, at)
        }
    }

    /// The writable counterpart of [`KvWindow::view`].
    pub fn view_mut<'a, T>(self, region: usize, state: &'a mut T, scratch: &'a mut T, at: usize) -> ViewMut<'a, T> {
        if self.in_place {
            ViewMut::new(state, region + self.offset + at)
        } else {
            ViewMut::new(scratch, at)
        }
    }
}
