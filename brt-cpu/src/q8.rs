//! Reading Q8_0 blocks as f32 vectors.
//!
//! A vector of weights is widened to exactly the f32 values the blocks stand
//! for (`d * q`: an f16 scale times a signed byte is exact in f32) and then used
//! as an f32 weight would be. So a product with Q8_0 weights performs the very
//! operations, in the same order, as the f32 product with the dequantized
//! weights: the results are bit-identical (tested), and the kernels' f32
//! conformance carries over. What 8 bits buy is bandwidth: a value is 1.06
//! bytes instead of 2 (f16) or 4.

use crate::simd::Simd;
use brt_core::encoding::{q8_0_value, Q8_0_BLOCK, Q8_0_BLOCK_BYTES};

/// The vector of values `e .. e + LANES` of a tensor's `blocks`.
///
/// # Safety
/// The values must exist: `(e + LANES) <= blocks.len() / 34 * 32`. The CPU must
/// support `S`.
#[inline(always)]
pub(crate) unsafe fn vector<S: Simd>(blocks: &[u8], e: usize) -> S::V {
    let lane = e % Q8_0_BLOCK;
    if lane + S::LANES <= Q8_0_BLOCK {
        // SAFETY: block `e / 32` exists (the caller's contract) and the lanes
        // `lane .. lane + LANES` lie inside its 32 quants.
        unsafe {
            let block = blocks.as_ptr().add(e / Q8_0_BLOCK * Q8_0_BLOCK_BYTES);
            let scale = S::splat_f16(u16::from_le_bytes([*block, *block.add(1)]));
            S::mul(scale, S::load_i8(block.add(2 + lane) as *const i8))
        }
    } else {
        // The vector straddles two blocks (a view that starts off a multiple of
        // LANES): gather it value by value.
        let mut values = [0f32; 16];
        for (l, v) in values.iter_mut().take(S::LANES).enumerate() {
            let at = e + l;
            *v = q8_0_value(&blocks[at / Q8_0_BLOCK * Q8_0_BLOCK_BYTES..], at % Q8_0_BLOCK);
        }
        // SAFETY: `values` holds 16 >= LANES values.
        unsafe { S::load(values.as_ptr()) }
    }
}

/// Calls `f(l, vector)` for the vectors of values `e0 + l` of `blocks`, `l` in
/// `(0..full).step_by(LANES)` in order, with each block's scale read once when
/// the vectors are aligned to `LANES` (and so never straddle two blocks).
///
/// # Safety
/// As [`vector`] for every vector: `e0 + full <= blocks.len() / 34 * 32`;
/// `full` is a multiple of `LANES`.
#[inline(always)]
pub(crate) unsafe fn for_each_vector<S: Simd>(blocks: &[u8], e0: usize, full: usize, mut f: impl FnMut(usize, S::V)) {
    if !e0.is_multiple_of(S::LANES) {
        for l in (0..full).step_by(S::LANES) {
            // SAFETY: forwarded contract.
            f(l, unsafe { vector::<S>(blocks, e0 + l) });
        }
        return;
    }
    let mut l = 0;
    while l < full {
        let e = e0 + l;
        let lane = e % Q8_0_BLOCK;
        // The rest of this block, a multiple of LANES since `e` is aligned to it.
        let end = full.min(l + Q8_0_BLOCK - lane);
        // SAFETY: block `e / 32` exists and lanes `lane .. lane + (end - l)` are
        // inside it (the caller's contract).
        unsafe {
            let block = blocks.as_ptr().add(e / Q8_0_BLOCK * Q8_0_BLOCK_BYTES);
            let scale = S::splat_f16(u16::from_le_bytes([*block, *block.add(1)]));
            let quants = block.add(2 + lane) as *const i8;
            let mut o = 0;
            while l + o < end {
                f(l + o, S::mul(scale, S::load_i8(quants.add(o))));
                o += S::LANES;
            }
        }
        l = end;
    }
}
