//! The token (vertical) direction of a layer: SPEC section 3 for a plain layer,
//! the vertical half of section 4 for a recurrent layer, and the feedback
//! cross-attention of section 5.3.

use super::context::{normalized_projection, projection, residual_mlp, LayerCtx};
use super::kv::KvWindow;
use super::scratch::Scratch;
use super::state::{self, BlockKeys};
use super::Piece;
use crate::config::TokenAttention;
use crate::desc::{Attention, LinearAttention, Mask, Matmul, Rows};
use crate::error::CoreError;
use crate::kernels::{KResult, Kernels, View, ViewMut};
use crate::params::LayerParam;
use crate::plan::{LayerState, RecurrentState};

/// Whether a recurrent layer updates its state as soon as a block completes
/// (layer-by-layer evaluation, no feedback) or leaves it to the stack (feedback:
/// every layer must first see the state entering the block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StateUpdates {
    Inline,
    Deferred,
}

/// Runs one layer over positions `pieces` of the chunk in the scratch's residual
/// stream `x` (rows `p*B + b`), updating the layer's caches.
///
/// `pieces` split the positions at block boundaries; `kv` says where the cached
/// keys and values lie and where the new ones go; `feedback` is the state the layer
/// cross-attends to when it is not recurrent (feedback mode).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<K: Kernels>(
    k: &mut K,
    ctx: &LayerCtx<'_, K::Weights>,
    ls: &LayerState,
    pieces: &[Piece],
    kv: KvWindow,
    updates: StateUpdates,
    feedback: Option<RecurrentState>,
    state: &mut K::Tensor,
    s: &mut Scratch<K::Tensor>,
) -> KResult<K> {
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else { return Ok(()) };
    let c = ctx.config;
    let (batch, d, qkv, w) = (ctx.batch, c.d_model, c.qkv_width(), c.window);
    let start = first.start;
    let n = last.end - start;
    let rows = n * batch;
    let x_at = start * batch * d;
    let cached = ls.kv_positions;
    let new_keys_at = cached * batch * qkv;
    let abs = c.abs_attention_scale;

    // Queries, keys and values of the tokens (SPEC 3, first two lines).
    k.rms_norm(View::new(&s.x, x_at), ctx.w(LayerParam::AttnNorm)?, ViewMut::new(&mut s.xn, 0), Rows::new(rows, d)?)?;
    normalized_projection(k, ctx, View::new(&s.xn, 0), rows, LayerParam::Query, ViewMut::new(&mut s.q, 0))?;
    // Keys stay in the scratch for a layer without a cache (it has only the call's)
    // and for linear attention (which writes its sums to the state while reading
    // them); the scratch keys then go back to where the window moves.
    let token_attention = c.token_attention(ctx.layer);
    let in_place = kv.in_place && cached > 0 && token_attention == TokenAttention::Window;
    let kv = KvWindow { in_place, ..kv };
    if cached > 0 && !kv.in_place {
        let len = cached * batch * qkv;
        k.copy(View::new(state, ls.keys + kv.offset), ViewMut::new(&mut s.keys, 0), len)?;
        k.copy(View::new(state, ls.values + kv.offset), ViewMut::new(&mut s.values, 0), len)?;
    }
    let new_keys = kv.view_mut(ls.keys, state, &mut s.keys, new_keys_at);
    normalized_projection(k, ctx, View::new(&s.xn, 0), rows, LayerParam::Key, new_keys)?;
    let new_values = kv.view_mut(ls.values, state, &mut s.values, new_keys_at);
    projection(k, ctx, View::new(&s.xn, 0), rows, LayerParam::Value, new_values)?;

    // Token self-attention.
    match token_attention {
        TokenAttention::Window => {
            // Keys are the W cached positions before the tokens, then the tokens.
            let first_key = (cached - w) * batch * qkv;
            let desc =
                Attention::new(batch, n, w + n, c.heads, c.head_dim, Mask::Window { offset: w, window: w }, abs)?;
            k.attention(
                View::new(&s.q, 0),
                kv.view(ls.keys, state, &s.keys, first_key),
                kv.view(ls.values, state, &s.values, first_key),
                ctx.w(LayerParam::AttnScale)?,
                Some(ctx.w(LayerParam::RelBias)?),
                ViewMut::new(&mut s.attn, 0),
                desc,
            )?;
        }
        TokenAttention::Linear => {
            let at = ls.linear.ok_or(CoreError::Mismatch { what: "linear-attention layer without linear state" })?;
            k.linear_attention(
                View::new(&s.q, 0),
                View::new(&s.keys, new_keys_at),
                View::new(&s.values, new_keys_at),
                ctx.w(LayerParam::AttnScale)?,
                ViewMut::new(state, at),
                ViewMut::new(&mut s.attn, 0),
                LinearAttention::new(batch, n, c.heads, c.head_dim, abs)?,
            )?;
        }
    }
    let x = ViewMut::new(&mut s.x, x_at);
    let out = Matmul::new(rows, qkv, d)?.accumulate();
    k.matmul(View::new(&s.attn, 0), ctx.w(LayerParam::Out)?, x, out)?;

    // Token cross-attention to a state, block by block: tokens of a block see the
    // state entering it (SPEC 4, y_cross; SPEC 5.3 in feedback mode).
    let own = ls.recurrent;
    if let Some(source) = own.or(feedback) {
        normalized_projection(k, ctx, View::new(&s.xn, 0), rows, LayerParam::Query2, ViewMut::new(&mut s.q2, 0))?;
        for piece in pieces {
            let at = (piece.start - start) * batch * qkv;
            let len = piece.end - piece.start;
            let desc = Attention::new(batch, len, c.states, c.heads, c.head_dim, Mask::None, abs)?;
            k.attention(
                View::new(&s.q2, at),
                View::new(state, source.keys),
                View::new(state, source.values),
                ctx.w(LayerParam::AttnScale2)?,
                None,
                ViewMut::new(&mut s.attn2, at),
                desc,
            )?;
            if own.is_some() && piece.completes_block && updates == StateUpdates::Inline {
                // The previous and current block end at this piece's end.
                let block_end = cached + (piece.end - start);
                let at = (block_end - 2 * w) * batch * qkv;
                let block = if kv.in_place { BlockKeys::State(kv.offset + at) } else { BlockKeys::Scratch(at) };
                state::update(k, ctx, ls, block, state, s)?;
            }
        }
        let out = ctx.span(LayerParam::Out)?.rows(qkv, qkv);
        let x = ViewMut::new(&mut s.x, x_at);
        k.matmul(
            View::new(&s.attn2, 0),
            crate::kernels::WeightView::new(ctx.weights, out.offset),
            x,
            Matmul::new(rows, qkv, d)?.accumulate(),
        )?;
    }

    residual_mlp(k, ctx, ViewMut::new(&mut s.x, x_at), rows, &mut s.xn, &mut s.hidden)?;

    // Carry the last `cached` positions of keys and values to the next call, where
    // the window moves (in place, they are there already).
    if cached > 0 && !kv.in_place {
        let len = cached * batch * qkv;
        k.copy(View::new(&s.keys, n * batch * qkv), ViewMut::new(state, ls.keys + kv.next), len)?;
        k.copy(View::new(&s.values, n * batch * qkv), ViewMut::new(state, ls.values + kv.next), len)?;
    }
    Ok(())
}
