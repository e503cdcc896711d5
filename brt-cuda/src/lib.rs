//! brt-cuda: this backend is not written yet; nothing here claims to work.
