//! The horizontal direction of the recurrent layer (SPEC section 4): the state
//! attends to itself and to the tokens of the previous and current block, then is
//! updated through gates.

use super::context::{concat_projection, normalized_projection, projection, LayerCtx};
use super::scratch::Scratch;
use crate::config::{GateKind, GateSite, StateLayout};
use crate::desc::{Activation, Attention, Mask, Matmul, Positions, Rows, Strided};
use crate::error::CoreError;
use crate::kernels::{KResult, Kernels, View, ViewMut};
use crate::params::LayerParam;
use crate::plan::{LayerState, RecurrentState};

/// Where the `2W` keys and values of the previous and current block are.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BlockKeys {
    /// In the key/value scratch, from this element on.
    Scratch(usize),
    /// In the layer's own KV cache, from this element of its regions on (the
    /// window, which keeps exactly the last `2W` positions).
    State(usize),
}

fn recurrent(ls: &LayerState) -> Result<RecurrentState, CoreError> {
    ls.recurrent.ok_or(CoreError::Mismatch { what: "state update asked of a layer that is not recurrent" })
}

/// `out = rms(s, ln_st) + state_ids`: the normalised state the projections read.
fn normalized_state<K: Kernels>(
    k: &mut K,
    ctx: &LayerCtx<'_, K::Weights>,
    state: &K::Tensor,
    rs: RecurrentState,
    out: &mut K::Tensor,
) -> KResult<K> {
    let c = ctx.config;
    let rows = c.states * ctx.batch;
    k.rms_norm(
        View::new(state, rs.state),
        ctx.w(LayerParam::StateNorm)?,
        ViewMut::new(out, 0),
        Rows::new(rows, c.d_model)?,
    )?;
    k.add_positions(ViewMut::new(out, 0), ctx.w(LayerParam::StateIds)?, Positions::new(c.states, ctx.batch, c.d_model)?)
}

/// Recomputes the state's keys and values, kept beside the state: the token
/// cross-attention of the next block reads them.
pub(crate) fn refresh_projections<K: Kernels>(
    k: &mut K,
    ctx: &LayerCtx<'_, K::Weights>,
    ls: &LayerState,
    state: &mut K::Tensor,
    norm: &mut K::Tensor,
) -> KResult<K> {
    let rs = recurrent(ls)?;
    let rows = ctx.config.states * ctx.batch;
    normalized_state(k, ctx, state, rs, norm)?;
    normalized_projection(k, ctx, View::new(norm, 0), rows, LayerParam::StateKey, ViewMut::new(state, rs.keys))?;
    projection(k, ctx, View::new(norm, 0), rows, LayerParam::StateValue, ViewMut::new(state, rs.values))
}

/// Starts a new document in batch row `row`: the state becomes the learned initial
/// state (its keys and values must be refreshed afterwards).
pub(crate) fn reset_row<K: Kernels>(
    k: &mut K,
    ctx: &LayerCtx<'_, K::Weights>,
    ls: &LayerState,
    row: usize,
    state: &mut K::Tensor,
) -> KResult<K> {
    let rs = recurrent(ls)?;
    let d = ctx.config.d_model;
    let runs = Strided::new(ctx.config.states, d, ctx.batch * d)?;
    k.copy_weights(ctx.w(LayerParam::InitialState)?, ViewMut::new(state, rs.state + row * d), runs)
}

/// The state update of one completed block (SPEC 4, "Horizontal").
pub(crate) fn update<K: Kernels>(
    k: &mut K,
    ctx: &LayerCtx<'_, K::Weights>,
    ls: &LayerState,
    block: BlockKeys,
    state: &mut K::Tensor,
    scratch: &mut Scratch<K::Tensor>,
) -> KResult<K> {
    let c = ctx.config;
    let rs = recurrent(ls)?;
    let rows = c.states * ctx.batch;
    let abs = c.abs_attention_scale;
    {
        let Scratch { keys, values, state_norm, state_q, state_q2, state_attn, state_attn2, .. } = &mut *scratch;
        normalized_state(k, ctx, state, rs, state_norm)?;
        normalized_projection(
            k,
            ctx,
            View::new(state_norm, 0),
            rows,
            LayerParam::StateQuery,
            ViewMut::new(state_q, 0),
        )?;
        normalized_projection(
            k,
            ctx,
            View::new(state_norm, 0),
            rows,
            LayerParam::StateQuery2,
            ViewMut::new(state_q2, 0),
        )?;
        // r_self: the state attends to itself (all of it, no mask, no bias).
        let self_desc = Attention::new(ctx.batch, c.states, c.states, c.heads, c.head_dim, Mask::None, abs)?;
        k.attention(
            View::new(state_q, 0),
            View::new(state, rs.keys),
            View::new(state, rs.values),
            ctx.w(LayerParam::StateScale)?,
            None,
            ViewMut::new(state_attn, 0),
            self_desc,
        )?;
        // r_cross: the state attends to the 2W keys of the previous and current block.
        let (block_keys, block_values) = match block {
            BlockKeys::Scratch(offset) => (View::new(&*keys, offset), View::new(&*values, offset)),
            BlockKeys::State(at) => (View::new(&*state, ls.keys + at), View::new(&*state, ls.values + at)),
        };
        let cross_desc = Attention::new(ctx.batch, c.states, 2 * c.window, c.heads, c.head_dim, Mask::None, abs)?;
        k.attention(
            View::new(state_q2, 0),
            block_keys,
            block_values,
            ctx.w(LayerParam::StateScale2)?,
            None,
            ViewMut::new(state_attn2, 0),
            cross_desc,
        )?;
    }

    let Scratch { state_norm, state_attn, state_attn2, state_update, state_hidden, state_forget, state_input, .. } =
        &mut *scratch;
    let heads = GateInput::Heads(&*state_attn, &*state_attn2);
    let mut gates = Gates { forget: state_forget, input: state_input, rows };
    match c.layout {
        StateLayout::Skip => {
            concat_projection(
                k,
                ctx,
                View::new(state_attn, 0),
                View::new(state_attn2, 0),
                rows,
                LayerParam::StateOut,
                ViewMut::new(state_update, 0),
                false,
                Activation::Identity,
            )?;
            gates.apply(k, ctx, GateSite::Attention, heads, state_update, state, rs)?;
        }
        StateLayout::Dual => {
            concat_projection(
                k,
                ctx,
                View::new(state_attn, 0),
                View::new(state_attn2, 0),
                rows,
                LayerParam::StateOut,
                ViewMut::new(state_update, 0),
                false,
                Activation::Identity,
            )?;
            gates.apply(k, ctx, GateSite::Attention, heads, state_update, state, rs)?;
            k.rms_norm(
                View::new(state, rs.state),
                ctx.w(LayerParam::StateMlpNorm)?,
                ViewMut::new(state_norm, 0),
                Rows::new(rows, c.d_model)?,
            )?;
            let up = Matmul::new(rows, c.d_model, c.mlp_hidden)?.activation(Activation::Relu);
            k.matmul(View::new(state_norm, 0), ctx.w(LayerParam::StateMlpIn)?, ViewMut::new(state_hidden, 0), up)?;
            let down = Matmul::new(rows, c.mlp_hidden, c.d_model)?;
            k.matmul(View::new(state_hidden, 0), ctx.w(LayerParam::StateMlpOut)?, ViewMut::new(state_update, 0), down)?;
            gates.apply(k, ctx, GateSite::Mlp, GateInput::Hidden(state_hidden), state_update, state, rs)?;
        }
        StateLayout::Single => {
            // r = relu(h @ W1_st) with no norm; z = tanh(r @ W2_st).
            concat_projection(
                k,
                ctx,
                View::new(state_attn, 0),
                View::new(state_attn2, 0),
                rows,
                LayerParam::StateMlpIn,
                ViewMut::new(state_hidden, 0),
                false,
                Activation::Relu,
            )?;
            let down = Matmul::new(rows, c.mlp_hidden, c.d_model)?.activation(Activation::Tanh);
            k.matmul(View::new(state_hidden, 0), ctx.w(LayerParam::StateMlpOut)?, ViewMut::new(state_update, 0), down)?;
            gates.apply(k, ctx, GateSite::Mlp, GateInput::Hidden(state_hidden), state_update, state, rs)?;
        }
    }
    refresh_projections(k, ctx, ls, state, state_norm)
}

/// The input `u` of a gate.
enum GateInput<'a, T> {
    /// `h = concat(r_self, r_cross)`, kept as its two halves.
    Heads(&'a T, &'a T),
    /// The state MLP's hidden activations `r`.
    Hidden(&'a T),
}

/// Scratch for the LSTM gate products.
struct Gates<'a, T> {
    forget: &'a mut T,
    input: &'a mut T,
    rows: usize,
}

impl<T> Gates<'_, T> {
    /// `s' = G(s, z; u)` in place on the state (SPEC 4, "Gates").
    #[allow(clippy::too_many_arguments)]
    fn apply<K: Kernels<Tensor = T>>(
        &mut self,
        k: &mut K,
        ctx: &LayerCtx<'_, K::Weights>,
        site: GateSite,
        u: GateInput<'_, T>,
        z: &T,
        state: &mut T,
        rs: RecurrentState,
    ) -> KResult<K> {
        let c = ctx.config;
        let rows = Rows::new(self.rows, c.d_model)?;
        let state_view = ViewMut::new(state, rs.state);
        match c.gate {
            GateKind::Fixed => k.gate_fixed(state_view, View::new(z, 0), ctx.w(LayerParam::GateBias(site))?, rows),
            GateKind::Lstm => {
                for (kernel, out) in [
                    (LayerParam::ForgetGateKernel(site), &mut *self.forget),
                    (LayerParam::InputGateKernel(site), &mut *self.input),
                ] {
                    match u {
                        GateInput::Heads(a, b) => concat_projection(
                            k,
                            ctx,
                            View::new(a, 0),
                            View::new(b, 0),
                            self.rows,
                            kernel,
                            ViewMut::new(out, 0),
                            false,
                            Activation::Identity,
                        )?,
                        GateInput::Hidden(r) => k.matmul(
                            View::new(r, 0),
                            ctx.w(kernel)?,
                            ViewMut::new(out, 0),
                            Matmul::new(self.rows, c.mlp_hidden, c.d_model)?,
                        )?,
                    }
                }
                k.gate_lstm(
                    state_view,
                    View::new(z, 0),
                    View::new(&*self.forget, 0),
                    View::new(&*self.input, 0),
                    ctx.w(LayerParam::ForgetGateBias(site))?,
                    ctx.w(LayerParam::InputGateBias(site))?,
                    rows,
                )
            }
        }
    }
}
