//! Every backward kernel on fixed lists of large shapes, all of them on every
//! run: the shapes where a fast backend changes strategy (the SIMD CPU backend's
//! micro-tiles, its `kc = 256` blocks of a product's inner dimension (512 with
//! AVX-512), few-row products, attention tiles of 96 queries and 192 keys and the
//! four key tiles its first sweep keeps, partial head panels, linear-attention
//! chunks of 64 tokens, rows split over threads above 2^15 values). Generated
//! shapes are too small to reach them. Each case also runs twice on the
//! backend: the results must be bit-identical.

use super::attention::AttentionGradCase;
use super::kernels::{
    AddPositionsGradCase, CopiesGradCase, EmbedGradCase, GateGradCase, GateInputs, L2GradCase, RmsNormGradCase,
};
use super::linear::LinearGradCase;
use super::matmul::{MatmulGradCase, Wants};
use super::{list_against_reference, GradCase, Written};
use crate::backend::Backend;
use crate::checks::attention::{AttentionCase, Logits, MaskCase};
use crate::checks::kernels::{Alpha, Pads};
use crate::failure::Failure;
use crate::gen::Magnitude;
use crate::runner::Options;
use crate::tolerance::Check;
use brt_core::desc::Activation;
use brt_core::{Gradients, WeightDtype};

/// `matmul_backward` on products of one row to 600, inner dimensions to 300,
/// outputs to 4200, in five forms each: plain; scaled with ReLU, weight
/// transposed; accumulating with tanh and `1/sqrt(400)`; accumulating with a
/// random scale, transposed; ReLU asking for the weight's gradient only.
pub fn grad_matmul_blocking<B: Backend>(k: &mut B::Kernels, _options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    // (m, k, n): one row; few rows (a weights-streaming path for d_x); ragged
    // micro-tiles; m above kc so that d_w's reduction takes several blocks; n
    // above a column block for d_x's reduction.
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (4, 300, 70),
        (2, 33, 517),
        (7, 13, 33),
        (37, 300, 70),
        (150, 57, 40),
        (290, 70, 50),
        (600, 40, 30),
        (13, 64, 300),
        (9, 20, 4200),
    ];
    let mut cases = Vec::new();
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        for variant in 0..5u64 {
            let (alpha, accumulate, activation, wants) = match variant {
                0 => (Alpha::One, false, Activation::Identity, Wants::Both),
                1 => (Alpha::Any, false, Activation::Relu, Wants::Both),
                2 => (Alpha::InverseSqrt(400), true, Activation::Tanh, Wants::Both),
                3 => (Alpha::Any, true, Activation::Identity, Wants::Both),
                _ => (Alpha::One, false, Activation::Relu, Wants::Weight),
            };
            let transposed = variant % 2 == 1;
            let seed = 1000 + 10 * i as u64 + variant;
            cases.push(MatmulGradCase { m, k, n, transposed, alpha, accumulate, activation, wants, tiny: false, seed });
        }
    }
    list_against_reference::<B, _>(k, "grad_matmul_blocking", Check::GradBlocking, &cases)
}

/// Buffers at small offsets, as a caller's views into larger buffers.
const PADS: Pads = Pads { before: [1, 2, 3, 0], after: [2, 0, 1, 1] };

/// `attention_backward` on long windows and many keys, with and without `abs`
/// scales and the bias; unmasked attention over up to 800 keys; and windows
/// whose biases put the logits around the floor of -1000.
pub fn grad_attention_blocking<B: Backend>(k: &mut B::Kernels, _options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let mut cases = Vec::new();
    let mut seed = 2000;
    let mut push = |batch, queries, heads, head_dim, mask, bias, abs_scale, near_floor| {
        seed += 1;
        let forward = AttentionCase {
            batch,
            queries,
            heads,
            head_dim,
            mask,
            bias,
            abs_scale,
            logits: Logits::Normal,
            pads: PADS,
            seed,
        };
        cases.push(AttentionGradCase { forward, near_floor, zero_scale: false });
    };
    // (batch, queries, heads, head width, window, extra cached keys): tiles of 96
    // queries and 192 keys (up to 48 and 96 before), head widths across the panel
    // widths, more keys than the first sweep's four tiles (eight before).
    for &(batch, queries, heads, head_dim, window, extra) in &[
        (1, 1, 1, 1, 1, 0),
        (2, 5, 2, 3, 4, 3),
        (1, 49, 1, 17, 16, 0),
        (2, 100, 3, 16, 64, 0),
        (1, 130, 2, 70, 64, 9),
        (1, 97, 1, 33, 150, 20),
        (1, 50, 1, 8, 780, 3),
    ] {
        for abs in [false, true] {
            for bias in [false, true] {
                let mask = MaskCase::Window { window, extra_offset: extra, extra_keys: 0 };
                push(batch, queries, heads, head_dim, mask, bias, abs, false);
            }
        }
    }
    // Attention to every key (the state's attentions).
    for &(batch, queries, keys, heads, head_dim) in &[
        (1, 1, 1, 1, 4),
        (2, 7, 5, 2, 9),
        (1, 50, 97, 2, 64),
        (2, 64, 200, 1, 20),
        (1, 3, 300, 3, 8),
        (2, 5, 800, 1, 8),
    ] {
        for abs in [false, true] {
            push(batch, queries, heads, head_dim, MaskCase::None { keys }, false, abs, false);
        }
    }
    // Around the floor, with abs scales.
    for _ in 0..3 {
        let mask = MaskCase::Window { window: 16, extra_offset: 0, extra_keys: 0 };
        push(2, 20, 2, 8, mask, true, true, true);
    }
    list_against_reference::<B, _>(k, "grad_attention_blocking", Check::GradBlocking, &cases)
}

/// `linear_attention_backward` from warm sums over one token, a partial chunk,
/// exactly one chunk of 64, one and a bit, two and a bit, and wide heads.
pub fn grad_linear_blocking<B: Backend>(k: &mut B::Kernels, _options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let mut cases = Vec::new();
    for (i, &(batch, tokens, heads, head_dim)) in
        [(1, 1, 1, 1), (2, 5, 2, 3), (1, 64, 1, 8), (2, 65, 2, 5), (1, 130, 1, 17), (1, 9, 2, 40)].iter().enumerate()
    {
        for abs_scale in [false, true] {
            let seed = 3000 + 2 * i as u64 + abs_scale as u64;
            let zero_scale = false;
            cases.push(LinearGradCase {
                batch,
                tokens,
                heads,
                head_dim,
                abs_scale,
                zero_scale,
                large: false,
                warm: true,
                seed,
            });
        }
    }
    list_against_reference::<B, _>(k, "grad_linear_blocking", Check::GradBlocking, &cases)
}

/// Any row-wise backward case.
#[derive(Clone, Debug)]
pub enum RowCase {
    /// `embed_backward`.
    Embed(EmbedGradCase),
    /// `rms_norm_backward`.
    RmsNorm(RmsNormGradCase),
    /// `l2_normalize_backward`.
    L2(L2GradCase),
    /// A gate's backward.
    Gate(GateGradCase),
    /// `add_positions_backward`.
    Positions(AddPositionsGradCase),
    /// `add_assign`, `gather_runs_add` and `copy_to_tape`.
    Copies(CopiesGradCase),
}

impl GradCase for RowCase {
    fn run<K: Gradients>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<Written>, Failure> {
        match self {
            RowCase::Embed(c) => c.run(k, dtype),
            RowCase::RmsNorm(c) => c.run(k, dtype),
            RowCase::L2(c) => c.run(k, dtype),
            RowCase::Gate(c) => c.run(k, dtype),
            RowCase::Positions(c) => c.run(k, dtype),
            RowCase::Copies(c) => c.run(k, dtype),
        }
    }
}

/// The row-wise backward kernels on rows of 1 to 1030 values, up to 300 rows
/// (enough values to be split over threads), and embeddings of up to 1000 ids
/// over vocabularies of 11 (many repeats) to 260 rows of 257.
pub fn grad_rows_blocking<B: Backend>(k: &mut B::Kernels, _options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let mut cases = Vec::new();
    for (i, &(rows, dim)) in [(1, 1), (3, 7), (5, 300), (300, 257), (40, 1030)].iter().enumerate() {
        let seed = 4000 + 10 * i as u64;
        let magnitude = Magnitude::Unit;
        cases.push(RowCase::RmsNorm(RmsNormGradCase { rows, dim, magnitude, seed }));
        let heads = if dim % 3 == 0 { 3 } else { 1 };
        cases.push(RowCase::L2(L2GradCase { rows, heads, head_dim: dim / heads, magnitude, seed: seed + 1 }));
        for (j, lstm) in [false, true].into_iter().enumerate() {
            let gate = GateGradCase { rows, dim, lstm, inputs: GateInputs::Mixed, seed: seed + 2 + j as u64 };
            cases.push(RowCase::Gate(gate));
        }
        let batch = if rows % 5 == 0 { 5 } else { 1 };
        let positions = AddPositionsGradCase { positions: rows / batch, batch, dim, seed: seed + 4 };
        cases.push(RowCase::Positions(positions));
        let run = dim / 2 + 1;
        let copies = CopiesGradCase { len: rows * dim, count: rows, run, gap: dim.saturating_sub(run), seed: seed + 5 };
        cases.push(RowCase::Copies(copies));
    }
    for (i, &(count, vocab, dim)) in [(1, 1, 1), (7, 3, 5), (300, 260, 257), (1000, 11, 64)].iter().enumerate() {
        cases.push(RowCase::Embed(EmbedGradCase { count, vocab, dim, seed: 5000 + i as u64 }));
    }
    list_against_reference::<B, _>(k, "grad_rows_blocking", Check::GradBlocking, &cases)
}
