//! The scratch buffers of a stream, one per role, sized by the [`Plan`].

use crate::kernels::Storage;
use crate::plan::{Plan, ScratchSizes};

/// Scratch buffers reused by every layer and every call.
///
/// Token buffers hold `T x B` rows, state buffers `S x B` rows, position-major.
///
/// Each buffer has the size the plan gives its role.
///
/// ```
/// # use brt_core::{Arena, Config, Plan, Reference, Scratch};
/// # let (mut f32s, mut ids) = (vec![0f32; 4096], vec![0u32; 16]);
/// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
/// let plan = Plan::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), 2, 3)?;
/// let scratch = Scratch::allocate(&mut k, &plan)?;
/// assert_eq!(scratch.x.len(), plan.scratch().x);
/// assert_eq!(scratch.logits.len(), 3 * 2 * 10);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[allow(missing_docs)] // Each field is documented on `ScratchSizes`.
pub struct Scratch<T> {
    pub x: T,
    pub xn: T,
    pub q: T,
    pub q2: T,
    pub keys: T,
    pub values: T,
    pub attn: T,
    pub attn2: T,
    pub hidden: T,
    pub logits: T,
    pub state_norm: T,
    pub state_q: T,
    pub state_q2: T,
    pub state_attn: T,
    pub state_attn2: T,
    pub state_update: T,
    pub state_hidden: T,
    pub state_forget: T,
    pub state_input: T,
}

impl<T> Scratch<T> {
    /// Allocates every buffer on `k` at the plan's sizes.
    ///
    /// All buffers come from the backend's memory at once: together they take the plan's total.
    ///
    /// ```
    /// # use brt_core::{Arena, Config, Plan, Reference, Scratch};
    /// # let (mut f32s, mut ids) = (vec![0f32; 4096], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let plan = Plan::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), 2, 3)?;
    /// let before = k.memory().remaining().0;
    /// let scratch = Scratch::allocate(&mut k, &plan)?;
    /// assert_eq!(before - k.memory().remaining().0, plan.scratch().total());
    /// assert_eq!(scratch.q.len(), plan.scratch().q);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn allocate<K: Storage<Tensor = T>>(k: &mut K, plan: &Plan) -> Result<Self, K::Error> {
        let ScratchSizes {
            x,
            xn,
            q,
            q2,
            keys,
            values,
            attn,
            attn2,
            hidden,
            logits,
            state_norm,
            state_q,
            state_q2,
            state_attn,
            state_attn2,
            state_update,
            state_hidden,
            state_forget,
            state_input,
        } = *plan.scratch();
        Ok(Scratch {
            x: k.alloc_tensor(x)?,
            xn: k.alloc_tensor(xn)?,
            q: k.alloc_tensor(q)?,
            q2: k.alloc_tensor(q2)?,
            keys: k.alloc_tensor(keys)?,
            values: k.alloc_tensor(values)?,
            attn: k.alloc_tensor(attn)?,
            attn2: k.alloc_tensor(attn2)?,
            hidden: k.alloc_tensor(hidden)?,
            logits: k.alloc_tensor(logits)?,
            state_norm: k.alloc_tensor(state_norm)?,
            state_q: k.alloc_tensor(state_q)?,
            state_q2: k.alloc_tensor(state_q2)?,
            state_attn: k.alloc_tensor(state_attn)?,
            state_attn2: k.alloc_tensor(state_attn2)?,
            state_update: k.alloc_tensor(state_update)?,
            state_hidden: k.alloc_tensor(state_hidden)?,
            state_forget: k.alloc_tensor(state_forget)?,
            state_input: k.alloc_tensor(state_input)?,
        })
    }
}
