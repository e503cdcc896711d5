//! What every step of the cell algebra needs at hand: the backend's parameters for
//! one layer, the configuration and the batch size.

use crate::config::Config;
use crate::desc::{Activation, Heads, Matmul, Rows};
use crate::error::CoreResult;
use crate::kernels::{KResult, Kernels, View, ViewMut, WeightView};
use crate::params::{LayerParam, LayerSpans, Span};

/// One layer's parameters and the shapes shared by its steps.
pub(crate) struct LayerCtx<'m, W> {
    pub weights: &'m W,
    pub spans: LayerSpans,
    pub config: &'m Config,
    pub batch: usize,
    pub layer: usize,
}

impl<'m, W> LayerCtx<'m, W> {
    /// The parameter `p` of this layer.
    pub fn w(&self, p: LayerParam) -> CoreResult<WeightView<'m, W>> {
        Ok(WeightView::new(self.weights, self.spans.require(p)?.offset))
    }

    /// The span of parameter `p` of this layer.
    pub fn span(&self, p: LayerParam) -> CoreResult<Span> {
        self.spans.require(p)
    }

    /// `H * dh`.
    pub fn qkv(&self) -> usize {
        self.config.qkv_width()
    }
}

/// `out = l2n(x @ w)` per head: a normalised query or key projection (SPEC 1).
pub(crate) fn normalized_projection<K: Kernels>(
    k: &mut K,
    ctx: &LayerCtx<'_, K::Weights>,
    x: View<'_, K::Tensor>,
    rows: usize,
    param: LayerParam,
    mut out: ViewMut<'_, K::Tensor>,
) -> KResult<K> {
    let c = ctx.config;
    k.matmul(x, ctx.w(param)?, out.reborrow(), Matmul::new(rows, c.d_model, c.qkv_width())?)?;
    k.l2_normalize(out, Heads::new(rows, c.heads, c.head_dim)?)
}

/// `out = x @ w` with `x (rows, d)`.
pub(crate) fn projection<K: Kernels>(
    k: &mut K,
    ctx: &LayerCtx<'_, K::Weights>,
    x: View<'_, K::Tensor>,
    rows: usize,
    param: LayerParam,
    out: ViewMut<'_, K::Tensor>,
) -> KResult<K> {
    let c = ctx.config;
    let span = ctx.span(param)?;
    k.matmul(x, ctx.w(param)?, out, Matmul::new(rows, c.d_model, span.cols)?)
}

/// `out = act(a @ w[0..qkv] + b @ w[qkv..2qkv] (+ out))`: a product of the
/// concatenation of two attention outputs without materialising it (SPEC 1,
/// "Heads": self-attention heads first, then cross-attention heads).
#[allow(clippy::too_many_arguments)]
pub(crate) fn concat_projection<K: Kernels>(
    k: &mut K,
    ctx: &LayerCtx<'_, K::Weights>,
    a: View<'_, K::Tensor>,
    b: View<'_, K::Tensor>,
    rows: usize,
    param: LayerParam,
    mut out: ViewMut<'_, K::Tensor>,
    accumulate: bool,
    activation: Activation,
) -> KResult<K> {
    let qkv = ctx.qkv();
    let span = ctx.span(param)?;
    let first = Matmul::new(rows, qkv, span.cols)?;
    let first = if accumulate { first.accumulate() } else { first };
    k.matmul(a, WeightView::new(ctx.weights, span.offset), out.reborrow(), first)?;
    let second = Matmul::new(rows, qkv, span.cols)?.accumulate().activation(activation);
    k.matmul(b, WeightView::new(ctx.weights, span.rows(qkv, qkv).offset), out, second)
}

/// `x += relu(rms(x, norm) @ w_in) @ w_out` (SPEC 3, last line), with `xn` and
/// `hidden` as scratch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn residual_mlp<K: Kernels>(
    k: &mut K,
    ctx: &LayerCtx<'_, K::Weights>,
    mut x: ViewMut<'_, K::Tensor>,
    rows: usize,
    xn: &mut K::Tensor,
    hidden: &mut K::Tensor,
) -> KResult<K> {
    let c = ctx.config;
    k.rms_norm(
        View::new(x.tensor, x.offset),
        ctx.w(LayerParam::MlpNorm)?,
        ViewMut::new(xn, 0),
        Rows::new(rows, c.d_model)?,
    )?;
    let up = Matmul::new(rows, c.d_model, c.mlp_hidden)?.activation(Activation::Relu);
    k.matmul(View::new(xn, 0), ctx.w(LayerParam::MlpIn)?, ViewMut::new(hidden, 0), up)?;
    let down = Matmul::new(rows, c.mlp_hidden, c.d_model)?.accumulate();
    k.matmul(View::new(hidden, 0), ctx.w(LayerParam::MlpOut)?, x.reborrow(), down)
}
