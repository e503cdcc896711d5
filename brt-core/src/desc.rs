//! Shape descriptors: small validated `Copy` values that travel with every kernel call.
//!
//! A descriptor is only made through its checked constructor, so a backend may rely
//! on its invariants (positive sizes, extents that fit in `usize`, a window mask
//! with keys for every query). Activations are row-major; sequences are stored
//! position-major, batch-minor: element `(position p, batch row b)` is row `p*B + b`.

use crate::error::{product, CoreError, CoreResult};

fn positive(value: usize, what: &'static str) -> CoreResult<()> {
    if value == 0 {
        Err(CoreError::InvalidShape { what })
    } else {
        Ok(())
    }
}

/// `rows` vectors of `dim` elements, contiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rows {
    rows: usize,
    dim: usize,
}

impl Rows {
    /// A block of `rows x dim` elements (`rows` may be 0, `dim` may not).
    pub fn new(rows: usize, dim: usize) -> CoreResult<Rows> {
        positive(dim, "row width must be positive")?;
        product(&[rows, dim], "rows")?;
        Ok(Rows { rows, dim })
    }
    /// Number of rows.
    pub const fn rows(&self) -> usize {
        self.rows
    }
    /// Elements per row.
    pub const fn dim(&self) -> usize {
        self.dim
    }
    /// Elements in all.
    pub const fn len(&self) -> usize {
        self.rows * self.dim
    }
    /// Whether there are no rows.
    pub const fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

/// `rows` vectors of `heads` heads of `head_dim` elements (row width `heads*head_dim`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heads {
    rows: usize,
    heads: usize,
    head_dim: usize,
}

impl Heads {
    /// Validated constructor.
    pub fn new(rows: usize, heads: usize, head_dim: usize) -> CoreResult<Heads> {
        positive(heads, "heads must be positive")?;
        positive(head_dim, "head width must be positive")?;
        product(&[rows, heads, head_dim], "heads")?;
        Ok(Heads { rows, heads, head_dim })
    }
    /// Number of rows.
    pub const fn rows(&self) -> usize {
        self.rows
    }
    /// Heads per row.
    pub const fn heads(&self) -> usize {
        self.heads
    }
    /// Elements per head.
    pub const fn head_dim(&self) -> usize {
        self.head_dim
    }
    /// Elements per row.
    pub const fn width(&self) -> usize {
        self.heads * self.head_dim
    }
    /// Elements in all.
    pub const fn len(&self) -> usize {
        self.rows * self.heads * self.head_dim
    }
    /// Whether there are no rows.
    pub const fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

/// How a weight matrix is stored for a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightOrder {
    /// `(k, n)` row-major: the official dense kernels.
    InOut,
    /// `(n, k)` row-major: the embedding table used as the tied output layer.
    OutIn,
}

/// The activation applied to a product's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// None.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
}

/// `out = act(alpha * x @ w + (accumulate ? out : 0))` with `x (m, k)`, `out (m, n)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Matmul {
    m: usize,
    k: usize,
    n: usize,
    order: WeightOrder,
    alpha: f32,
    accumulate: bool,
    activation: Activation,
}

impl Matmul {
    /// `out = x @ w` with `w` stored `(k, n)`.
    pub fn new(m: usize, k: usize, n: usize) -> CoreResult<Matmul> {
        positive(k, "inner dimension must be positive")?;
        positive(n, "output width must be positive")?;
        product(&[m, k], "matmul input")?;
        product(&[k, n], "matmul weight")?;
        product(&[m, n], "matmul output")?;
        Ok(Matmul {
            m,
            k,
            n,
            order: WeightOrder::InOut,
            alpha: 1.0,
            accumulate: false,
            activation: Activation::Identity,
        })
    }
    /// Adds the product to the destination instead of overwriting it.
    pub const fn accumulate(mut self) -> Matmul {
        self.accumulate = true;
        self
    }
    /// Applies `activation` to the (accumulated) result.
    pub const fn activation(mut self, activation: Activation) -> Matmul {
        self.activation = activation;
        self
    }
    /// Multiplies the product by `alpha` before accumulating.
    pub const fn alpha(mut self, alpha: f32) -> Matmul {
        self.alpha = alpha;
        self
    }
    /// Reads the weight as `(n, k)` row-major.
    pub const fn transposed_weight(mut self) -> Matmul {
        self.order = WeightOrder::OutIn;
        self
    }
    /// Rows of `x` and `out`.
    pub const fn m(&self) -> usize {
        self.m
    }
    /// Inner dimension.
    pub const fn k(&self) -> usize {
        self.k
    }
    /// Columns of `out`.
    pub const fn n(&self) -> usize {
        self.n
    }
    /// How the weight is stored.
    pub const fn order(&self) -> WeightOrder {
        self.order
    }
    /// Scale of the product.
    pub const fn alpha_value(&self) -> f32 {
        self.alpha
    }
    /// Whether the product is added to `out`.
    pub const fn accumulates(&self) -> bool {
        self.accumulate
    }
    /// Activation of the result.
    pub const fn activation_kind(&self) -> Activation {
        self.activation
    }
}

/// Which keys a query may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask {
    /// Every key (state attentions, SPEC section 4).
    None,
    /// Sliding window (SPEC section 2): query `i` (position `i` of the queries) sees
    /// key `j` iff `1 <= (i + offset) - j <= window`; `offset` is the number of
    /// cached keys in front of the first query's own key.
    Window {
        /// Keys in front of the queries' own positions.
        offset: usize,
        /// The window `W`.
        window: usize,
    },
}

/// Softmax attention of `queries` query positions to `keys` key positions in each of
/// `batch` rows, per head: `out = softmax(a_h * (q.k + bias)) v`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attention {
    batch: usize,
    queries: usize,
    keys: usize,
    heads: usize,
    head_dim: usize,
    mask: Mask,
    abs_scale: bool,
}

impl Attention {
    /// Validated constructor. A window mask needs `offset >= window` and
    /// `keys >= offset + queries`, so every query has exactly `window` keys.
    pub fn new(
        batch: usize,
        queries: usize,
        keys: usize,
        heads: usize,
        head_dim: usize,
        mask: Mask,
        abs_scale: bool,
    ) -> CoreResult<Attention> {
        positive(batch, "batch must be positive")?;
        positive(keys, "attention needs at least one key")?;
        Heads::new(1, heads, head_dim)?;
        product(&[queries, batch, heads, head_dim], "attention queries")?;
        product(&[keys, batch, heads, head_dim], "attention keys")?;
        if let Mask::Window { offset, window } = mask {
            positive(window, "window must be positive")?;
            if offset < window {
                return Err(CoreError::InvalidShape { what: "window mask offset must be at least the window" });
            }
            let end = offset.checked_add(queries).ok_or(CoreError::SizeOverflow { what: "attention" })?;
            if end > keys {
                return Err(CoreError::InvalidShape { what: "window mask needs a key for every query position" });
            }
        }
        Ok(Attention { batch, queries, keys, heads, head_dim, mask, abs_scale })
    }
    /// Batch rows `B`.
    pub const fn batch(&self) -> usize {
        self.batch
    }
    /// Query positions per row.
    pub const fn queries(&self) -> usize {
        self.queries
    }
    /// Key positions per row.
    pub const fn keys(&self) -> usize {
        self.keys
    }
    /// Heads.
    pub const fn heads(&self) -> usize {
        self.heads
    }
    /// Head width.
    pub const fn head_dim(&self) -> usize {
        self.head_dim
    }
    /// The mask.
    pub const fn mask(&self) -> Mask {
        self.mask
    }
    /// Whether the learned scale is used as `abs(a)`.
    pub const fn abs_scale(&self) -> bool {
        self.abs_scale
    }
    /// Width of a query/key/value row (`heads * head_dim`).
    pub const fn width(&self) -> usize {
        self.heads * self.head_dim
    }
    /// Elements of the query and output buffers.
    pub const fn query_len(&self) -> usize {
        self.queries * self.batch * self.width()
    }
    /// Elements of each of the key and value buffers.
    pub const fn key_len(&self) -> usize {
        self.keys * self.batch * self.width()
    }
    /// The keys query position `i` may see, as a range of key positions.
    pub fn visible_keys(&self, i: usize) -> core::ops::Range<usize> {
        match self.mask {
            Mask::None => 0..self.keys,
            Mask::Window { offset, window } => (i + offset - window)..(i + offset),
        }
    }
}

/// Linear attention (SPEC section 7) of `tokens` positions in each of `batch` rows,
/// with a carried state of `(H, dh, dh) + (H, dh)` per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearAttention {
    batch: usize,
    tokens: usize,
    heads: usize,
    head_dim: usize,
    abs_scale: bool,
}

impl LinearAttention {
    /// Validated constructor.
    pub fn new(
        batch: usize,
        tokens: usize,
        heads: usize,
        head_dim: usize,
        abs_scale: bool,
    ) -> CoreResult<LinearAttention> {
        positive(batch, "batch must be positive")?;
        Heads::new(1, heads, head_dim)?;
        product(&[tokens, batch, heads, head_dim], "linear attention tokens")?;
        product(&[batch, heads, head_dim, head_dim + 1], "linear attention state")?;
        Ok(LinearAttention { batch, tokens, heads, head_dim, abs_scale })
    }
    /// Batch rows.
    pub const fn batch(&self) -> usize {
        self.batch
    }
    /// Token positions per row.
    pub const fn tokens(&self) -> usize {
        self.tokens
    }
    /// Heads.
    pub const fn heads(&self) -> usize {
        self.heads
    }
    /// Head width.
    pub const fn head_dim(&self) -> usize {
        self.head_dim
    }
    /// Whether the learned scale is used as `abs(a)`.
    pub const fn abs_scale(&self) -> bool {
        self.abs_scale
    }
    /// Elements of each of `q`, `k`, `v` and `out`.
    pub const fn token_len(&self) -> usize {
        self.tokens * self.batch * self.heads * self.head_dim
    }
    /// Elements of one row's state: `H*dh*dh` (sum of `phi(k)^T v`) then `H*dh`
    /// (sum of `phi(k)`).
    pub const fn state_per_row(&self) -> usize {
        self.heads * self.head_dim * (self.head_dim + 1)
    }
    /// Elements of the whole state, row after row.
    pub const fn state_len(&self) -> usize {
        self.batch * self.state_per_row()
    }
}

/// `count` runs of `len` elements, `stride` apart (`stride >= len`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strided {
    count: usize,
    len: usize,
    stride: usize,
}

impl Strided {
    /// Validated constructor.
    pub fn new(count: usize, len: usize, stride: usize) -> CoreResult<Strided> {
        if stride < len {
            return Err(CoreError::InvalidShape { what: "stride shorter than the run" });
        }
        product(&[count, stride], "strided runs")?;
        Ok(Strided { count, len, stride })
    }
    /// Contiguous: one run of `len`.
    pub fn contiguous(len: usize) -> Strided {
        Strided { count: 1, len, stride: len }
    }
    /// Number of runs.
    pub const fn count(&self) -> usize {
        self.count
    }
    /// Elements per run.
    pub const fn len(&self) -> usize {
        self.len
    }
    /// Whether there is nothing to touch.
    pub const fn is_empty(&self) -> bool {
        self.count == 0 || self.len == 0
    }
    /// Distance between run starts.
    pub const fn stride(&self) -> usize {
        self.stride
    }
    /// Elements from the first to one past the last touched element.
    pub const fn extent(&self) -> usize {
        if self.count == 0 {
            0
        } else {
            (self.count - 1) * self.stride + self.len
        }
    }
    /// Elements touched.
    pub const fn total(&self) -> usize {
        self.count * self.len
    }
}

/// `positions x batch` rows of `dim`; a per-position vector is added to every batch
/// row of that position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Positions {
    positions: usize,
    batch: usize,
    dim: usize,
}

impl Positions {
    /// Validated constructor.
    pub fn new(positions: usize, batch: usize, dim: usize) -> CoreResult<Positions> {
        positive(batch, "batch must be positive")?;
        positive(dim, "row width must be positive")?;
        product(&[positions, batch, dim], "positions")?;
        Ok(Positions { positions, batch, dim })
    }
    /// Positions.
    pub const fn positions(&self) -> usize {
        self.positions
    }
    /// Batch rows per position.
    pub const fn batch(&self) -> usize {
        self.batch
    }
    /// Row width.
    pub const fn dim(&self) -> usize {
        self.dim
    }
    /// Elements of the activation buffer.
    pub const fn len(&self) -> usize {
        self.positions * self.batch * self.dim
    }
    /// Whether there is nothing to touch.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Gathers `count` embedding rows of width `dim` from a `(vocab, dim)` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embed {
    count: usize,
    vocab: usize,
    dim: usize,
}

impl Embed {
    /// Validated constructor.
    pub fn new(count: usize, vocab: usize, dim: usize) -> CoreResult<Embed> {
        positive(vocab, "vocabulary must be positive")?;
        positive(dim, "row width must be positive")?;
        product(&[count, dim], "embedding output")?;
        product(&[vocab, dim], "embedding table")?;
        Ok(Embed { count, vocab, dim })
    }
    /// Tokens to look up.
    pub const fn count(&self) -> usize {
        self.count
    }
    /// Rows of the table.
    pub const fn vocab(&self) -> usize {
        self.vocab
    }
    /// Row width.
    pub const fn dim(&self) -> usize {
        self.dim
    }
}
