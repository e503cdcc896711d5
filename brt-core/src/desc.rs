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
///
/// A block of 3 rows of 4 elements holds 3 x 4 elements.
///
/// ```
/// use brt_core::desc::Rows;
/// assert_eq!(Rows::new(3, 4).unwrap().len(), 3 * 4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rows {
    rows: usize,
    dim: usize,
}

impl Rows {
    /// A block of `rows x dim` elements (`rows` may be 0, `dim` may not).
    ///
    /// Zero rows are allowed, a zero width is not.
    ///
    /// ```
    /// use brt_core::desc::Rows;
    /// assert!(Rows::new(0, 4).is_ok());
    /// assert!(Rows::new(3, 0).is_err());
    /// assert!(Rows::new(usize::MAX, 2).is_err());
    /// ```
    pub fn new(rows: usize, dim: usize) -> CoreResult<Rows> {
        positive(dim, "row width must be positive")?;
        product(&[rows, dim], "rows")?;
        Ok(Rows { rows, dim })
    }
    /// Number of rows.
    ///
    /// The row count is the one given.
    ///
    /// ```
    /// use brt_core::desc::Rows;
    /// assert_eq!(Rows::new(3, 4).unwrap().rows(), 3);
    /// ```
    pub const fn rows(&self) -> usize {
        self.rows
    }
    /// Elements per row.
    ///
    /// The row width is the one given.
    ///
    /// ```
    /// use brt_core::desc::Rows;
    /// assert_eq!(Rows::new(3, 4).unwrap().dim(), 4);
    /// ```
    pub const fn dim(&self) -> usize {
        self.dim
    }
    /// Elements in all.
    ///
    /// The element count is rows times width.
    ///
    /// ```
    /// use brt_core::desc::Rows;
    /// assert_eq!(Rows::new(5, 7).unwrap().len(), 5 * 7);
    /// ```
    pub const fn len(&self) -> usize {
        self.rows * self.dim
    }
    /// Whether there are no rows.
    ///
    /// A block without rows is empty.
    ///
    /// ```
    /// use brt_core::desc::Rows;
    /// assert!(Rows::new(0, 4).unwrap().is_empty());
    /// assert!(!Rows::new(1, 4).unwrap().is_empty());
    /// ```
    pub const fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

/// `rows` vectors of `heads` heads of `head_dim` elements (row width `heads*head_dim`).
///
/// A row of 2 heads of 3 elements is 2 x 3 wide.
///
/// ```
/// use brt_core::desc::Heads;
/// assert_eq!(Heads::new(1, 2, 3).unwrap().width(), 2 * 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heads {
    rows: usize,
    heads: usize,
    head_dim: usize,
}

impl Heads {
    /// Validated constructor.
    ///
    /// Zero rows are allowed; zero heads or a zero head width are not.
    ///
    /// ```
    /// use brt_core::desc::Heads;
    /// assert!(Heads::new(0, 2, 3).is_ok());
    /// assert!(Heads::new(4, 0, 3).is_err());
    /// assert!(Heads::new(4, 2, 0).is_err());
    /// ```
    pub fn new(rows: usize, heads: usize, head_dim: usize) -> CoreResult<Heads> {
        positive(heads, "heads must be positive")?;
        positive(head_dim, "head width must be positive")?;
        product(&[rows, heads, head_dim], "heads")?;
        Ok(Heads { rows, heads, head_dim })
    }
    /// Number of rows.
    ///
    /// The row count is the one given.
    ///
    /// ```
    /// use brt_core::desc::Heads;
    /// assert_eq!(Heads::new(4, 2, 3).unwrap().rows(), 4);
    /// ```
    pub const fn rows(&self) -> usize {
        self.rows
    }
    /// Heads per row.
    ///
    /// The head count is the one given.
    ///
    /// ```
    /// use brt_core::desc::Heads;
    /// assert_eq!(Heads::new(4, 2, 3).unwrap().heads(), 2);
    /// ```
    pub const fn heads(&self) -> usize {
        self.heads
    }
    /// Elements per head.
    ///
    /// The head width is the one given.
    ///
    /// ```
    /// use brt_core::desc::Heads;
    /// assert_eq!(Heads::new(4, 2, 3).unwrap().head_dim(), 3);
    /// ```
    pub const fn head_dim(&self) -> usize {
        self.head_dim
    }
    /// Elements per row.
    ///
    /// A row is heads x head width elements.
    ///
    /// ```
    /// use brt_core::desc::Heads;
    /// assert_eq!(Heads::new(4, 2, 3).unwrap().width(), 2 * 3);
    /// ```
    pub const fn width(&self) -> usize {
        self.heads * self.head_dim
    }
    /// Elements in all.
    ///
    /// All rows hold rows x heads x head width elements.
    ///
    /// ```
    /// use brt_core::desc::Heads;
    /// assert_eq!(Heads::new(4, 2, 3).unwrap().len(), 4 * 2 * 3);
    /// ```
    pub const fn len(&self) -> usize {
        self.rows * self.heads * self.head_dim
    }
    /// Whether there are no rows.
    ///
    /// Heads without rows are empty.
    ///
    /// ```
    /// use brt_core::desc::Heads;
    /// assert!(Heads::new(0, 2, 3).unwrap().is_empty());
    /// assert!(!Heads::new(1, 2, 3).unwrap().is_empty());
    /// ```
    pub const fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

/// How a weight matrix is stored for a product.
///
/// A new product reads its weight `(k, n)`; a transposed one reads it `(n, k)`.
///
/// ```
/// use brt_core::desc::{Matmul, WeightOrder};
/// let mm = Matmul::new(2, 3, 4).unwrap();
/// assert_eq!(mm.order(), WeightOrder::InOut);
/// assert_eq!(mm.transposed_weight().order(), WeightOrder::OutIn);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightOrder {
    /// `(k, n)` row-major: the official dense kernels.
    InOut,
    /// `(n, k)` row-major: the embedding table used as the tied output layer.
    OutIn,
}

/// The activation applied to a product's result.
///
/// A new product has no activation; one can be set.
///
/// ```
/// use brt_core::desc::{Activation, Matmul};
/// let mm = Matmul::new(2, 3, 4).unwrap();
/// assert_eq!(mm.activation_kind(), Activation::Identity);
/// assert_eq!(mm.activation(Activation::Relu).activation_kind(), Activation::Relu);
/// ```
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
///
/// The builder methods combine: a scaled, accumulating tanh product.
///
/// ```
/// use brt_core::desc::{Activation, Matmul};
/// let mm = Matmul::new(2, 3, 4).unwrap().alpha(0.5).accumulate().activation(Activation::Tanh);
/// assert_eq!((mm.m(), mm.k(), mm.n()), (2, 3, 4));
/// assert_eq!(mm.alpha_value(), 0.5);
/// assert!(mm.accumulates());
/// assert_eq!(mm.activation_kind(), Activation::Tanh);
/// ```
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
    ///
    /// A new product is a plain overwrite (`alpha` 1, no activation); `m` may be 0, `k` and `n` may not.
    ///
    /// ```
    /// use brt_core::desc::{Activation, Matmul, WeightOrder};
    /// let mm = Matmul::new(0, 3, 4).unwrap();
    /// assert_eq!(mm.alpha_value(), 1.0);
    /// assert!(!mm.accumulates());
    /// assert_eq!((mm.order(), mm.activation_kind()), (WeightOrder::InOut, Activation::Identity));
    /// assert!(Matmul::new(2, 0, 4).is_err());
    /// assert!(Matmul::new(2, 3, 0).is_err());
    /// ```
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
    ///
    /// `accumulate` switches the product from overwriting to adding.
    ///
    /// ```
    /// use brt_core::desc::Matmul;
    /// let mm = Matmul::new(2, 3, 4).unwrap();
    /// assert!(!mm.accumulates() && mm.accumulate().accumulates());
    /// ```
    pub const fn accumulate(mut self) -> Matmul {
        self.accumulate = true;
        self
    }
    /// Applies `activation` to the (accumulated) result.
    ///
    /// The chosen activation is recorded.
    ///
    /// ```
    /// use brt_core::desc::{Activation, Matmul};
    /// let mm = Matmul::new(2, 3, 4).unwrap().activation(Activation::Relu);
    /// assert_eq!(mm.activation_kind(), Activation::Relu);
    /// ```
    pub const fn activation(mut self, activation: Activation) -> Matmul {
        self.activation = activation;
        self
    }
    /// Multiplies the product by `alpha` before accumulating.
    ///
    /// The chosen scale is recorded.
    ///
    /// ```
    /// use brt_core::desc::Matmul;
    /// assert_eq!(Matmul::new(2, 3, 4).unwrap().alpha(-2.0).alpha_value(), -2.0);
    /// ```
    pub const fn alpha(mut self, alpha: f32) -> Matmul {
        self.alpha = alpha;
        self
    }
    /// Reads the weight as `(n, k)` row-major.
    ///
    /// A transposed product reads its weight `(n, k)` and keeps its shape.
    ///
    /// ```
    /// use brt_core::desc::{Matmul, WeightOrder};
    /// let mm = Matmul::new(2, 3, 4).unwrap().transposed_weight();
    /// assert_eq!(mm.order(), WeightOrder::OutIn);
    /// assert_eq!((mm.m(), mm.k(), mm.n()), (2, 3, 4));
    /// ```
    pub const fn transposed_weight(mut self) -> Matmul {
        self.order = WeightOrder::OutIn;
        self
    }
    /// Rows of `x` and `out`.
    ///
    /// `m` is the first size given.
    ///
    /// ```
    /// use brt_core::desc::Matmul;
    /// assert_eq!(Matmul::new(2, 3, 4).unwrap().m(), 2);
    /// ```
    pub const fn m(&self) -> usize {
        self.m
    }
    /// Inner dimension.
    ///
    /// `k` is the second size given.
    ///
    /// ```
    /// use brt_core::desc::Matmul;
    /// assert_eq!(Matmul::new(2, 3, 4).unwrap().k(), 3);
    /// ```
    pub const fn k(&self) -> usize {
        self.k
    }
    /// Columns of `out`.
    ///
    /// `n` is the third size given.
    ///
    /// ```
    /// use brt_core::desc::Matmul;
    /// assert_eq!(Matmul::new(2, 3, 4).unwrap().n(), 4);
    /// ```
    pub const fn n(&self) -> usize {
        self.n
    }
    /// How the weight is stored.
    ///
    /// A new product reads its weight `(k, n)`.
    ///
    /// ```
    /// use brt_core::desc::{Matmul, WeightOrder};
    /// assert_eq!(Matmul::new(2, 3, 4).unwrap().order(), WeightOrder::InOut);
    /// ```
    pub const fn order(&self) -> WeightOrder {
        self.order
    }
    /// Scale of the product.
    ///
    /// A new product is unscaled.
    ///
    /// ```
    /// use brt_core::desc::Matmul;
    /// assert_eq!(Matmul::new(2, 3, 4).unwrap().alpha_value(), 1.0);
    /// ```
    pub const fn alpha_value(&self) -> f32 {
        self.alpha
    }
    /// Whether the product is added to `out`.
    ///
    /// A new product overwrites its destination.
    ///
    /// ```
    /// use brt_core::desc::Matmul;
    /// assert!(!Matmul::new(2, 3, 4).unwrap().accumulates());
    /// ```
    pub const fn accumulates(&self) -> bool {
        self.accumulate
    }
    /// Activation of the result.
    ///
    /// A new product has the identity activation.
    ///
    /// ```
    /// use brt_core::desc::{Activation, Matmul};
    /// assert_eq!(Matmul::new(2, 3, 4).unwrap().activation_kind(), Activation::Identity);
    /// ```
    pub const fn activation_kind(&self) -> Activation {
        self.activation
    }
}

/// Which keys a query may see.
///
/// A window mask with `W = 2` lets query 0 (after 2 cached keys) see keys 0 and 1 only.
///
/// ```
/// use brt_core::desc::{Attention, Mask};
/// let a = Attention::new(1, 1, 3, 1, 4, Mask::Window { offset: 2, window: 2 }, false).unwrap();
/// assert_eq!(a.visible_keys(0), 0..2);
/// ```
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
///
/// Buffers hold positions x batch x heads x head width elements.
///
/// ```
/// use brt_core::desc::{Attention, Mask};
/// let a = Attention::new(2, 3, 5, 4, 8, Mask::None, false).unwrap();
/// assert_eq!(a.query_len(), 3 * 2 * 4 * 8);
/// assert_eq!(a.key_len(), 5 * 2 * 4 * 8);
/// ```
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
    ///
    /// A window mask needs `offset >= window` and a key for every query.
    ///
    /// ```
    /// use brt_core::desc::{Attention, Mask};
    /// let mask = |offset, window| Mask::Window { offset, window };
    /// assert!(Attention::new(1, 4, 8, 2, 4, mask(4, 4), false).is_ok());
    /// assert!(Attention::new(1, 4, 8, 2, 4, mask(3, 4), false).is_err());
    /// assert!(Attention::new(1, 5, 8, 2, 4, mask(4, 4), false).is_err());
    /// assert!(Attention::new(1, 4, 0, 2, 4, Mask::None, false).is_err());
    /// ```
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
    ///
    /// The batch is the first size given.
    ///
    /// ```
    /// use brt_core::desc::{Attention, Mask};
    /// assert_eq!(Attention::new(2, 3, 5, 4, 8, Mask::None, false).unwrap().batch(), 2);
    /// ```
    pub const fn batch(&self) -> usize {
        self.batch
    }
    /// Query positions per row.
    ///
    /// The query count is the second size given.
    ///
    /// ```
    /// use brt_core::desc::{Attention, Mask};
    /// assert_eq!(Attention::new(2, 3, 5, 4, 8, Mask::None, false).unwrap().queries(), 3);
    /// ```
    pub const fn queries(&self) -> usize {
        self.queries
    }
    /// Key positions per row.
    ///
    /// The key count is the third size given.
    ///
    /// ```
    /// use brt_core::desc::{Attention, Mask};
    /// assert_eq!(Attention::new(2, 3, 5, 4, 8, Mask::None, false).unwrap().keys(), 5);
    /// ```
    pub const fn keys(&self) -> usize {
        self.keys
    }
    /// Heads.
    ///
    /// The head count is the fourth size given.
    ///
    /// ```
    /// use brt_core::desc::{Attention, Mask};
    /// assert_eq!(Attention::new(2, 3, 5, 4, 8, Mask::None, false).unwrap().heads(), 4);
    /// ```
    pub const fn heads(&self) -> usize {
        self.heads
    }
    /// Head width.
    ///
    /// The head width is the fifth size given.
    ///
    /// ```
    /// use brt_core::desc::{Attention, Mask};
    /// assert_eq!(Attention::new(2, 3, 5, 4, 8, Mask::None, false).unwrap().head_dim(), 8);
    /// ```
    pub const fn head_dim(&self) -> usize {
        self.head_dim
    }
    /// The mask.
    ///
    /// The mask is the one given.
    ///
    /// ```
    /// use brt_core::desc::{Attention, Mask};
    /// let m = Mask::Window { offset: 4, window: 4 };
    /// assert_eq!(Attention::new(1, 4, 8, 2, 4, m, false).unwrap().mask(), m);
    /// ```
    pub const fn mask(&self) -> Mask {
        self.mask
    }
    /// Whether the learned scale is used as `abs(a)`.
    ///
    /// The flag is the one given.
    ///
    /// ```
    /// use brt_core::desc::{Attention, Mask};
    /// assert!(Attention::new(1, 1, 1, 1, 1, Mask::None, true).unwrap().abs_scale());
    /// assert!(!Attention::new(1, 1, 1, 1, 1, Mask::None, false).unwrap().abs_scale());
    /// ```
    pub const fn abs_scale(&self) -> bool {
        self.abs_scale
    }
    /// Width of a query/key/value row (`heads * head_dim`).
    ///
    /// A row is heads x head width wide.
    ///
    /// ```
    /// use brt_core::desc::{Attention, Mask};
    /// assert_eq!(Attention::new(2, 3, 5, 4, 8, Mask::None, false).unwrap().width(), 4 * 8);
    /// ```
    pub const fn width(&self) -> usize {
        self.heads * self.head_dim
    }
    /// Elements of the query and output buffers.
    ///
    /// Queries fill queries x batch x row width elements.
    ///
    /// ```
    /// use brt_core::desc::{Attention, Mask};
    /// assert_eq!(Attention::new(2, 3, 5, 4, 8, Mask::None, false).unwrap().query_len(), 3 * 2 * (4 * 8));
    /// ```
    pub const fn query_len(&self) -> usize {
        self.queries * self.batch * self.width()
    }
    /// Elements of each of the key and value buffers.
    ///
    /// Keys fill keys x batch x row width elements.
    ///
    /// ```
    /// use brt_core::desc::{Attention, Mask};
    /// assert_eq!(Attention::new(2, 3, 5, 4, 8, Mask::None, false).unwrap().key_len(), 5 * 2 * (4 * 8));
    /// ```
    pub const fn key_len(&self) -> usize {
        self.keys * self.batch * self.width()
    }
    /// The keys query position `i` may see, as a range of key positions.
    ///
    /// Without a mask every key is visible; a window shows the `W` keys before `i + offset`.
    ///
    /// ```
    /// use brt_core::desc::{Attention, Mask};
    /// assert_eq!(Attention::new(1, 2, 5, 1, 4, Mask::None, false).unwrap().visible_keys(1), 0..5);
    /// let a = Attention::new(1, 4, 8, 1, 4, Mask::Window { offset: 4, window: 4 }, false).unwrap();
    /// assert_eq!(a.visible_keys(0), 0..4);
    /// assert_eq!(a.visible_keys(3), 3..7);
    /// ```
    pub fn visible_keys(&self, i: usize) -> core::ops::Range<usize> {
        match self.mask {
            Mask::None => 0..self.keys,
            Mask::Window { offset, window } => (i + offset - window)..(i + offset),
        }
    }
}

/// Linear attention (SPEC section 7) of `tokens` positions in each of `batch` rows,
/// with a carried state of `(H, dh, dh) + (H, dh)` per row.
///
/// One row's state is an `(H, dh, dh)` sum plus an `(H, dh)` sum.
///
/// ```
/// use brt_core::desc::LinearAttention;
/// let la = LinearAttention::new(2, 3, 4, 8, false).unwrap();
/// assert_eq!(la.state_per_row(), 4 * 8 * 8 + 4 * 8);
/// ```
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
    ///
    /// Zero tokens are allowed; a zero batch or zero heads are not.
    ///
    /// ```
    /// use brt_core::desc::LinearAttention;
    /// assert!(LinearAttention::new(2, 0, 4, 8, false).is_ok());
    /// assert!(LinearAttention::new(0, 3, 4, 8, false).is_err());
    /// assert!(LinearAttention::new(2, 3, 0, 8, false).is_err());
    /// ```
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
    ///
    /// The batch is the first size given.
    ///
    /// ```
    /// use brt_core::desc::LinearAttention;
    /// assert_eq!(LinearAttention::new(2, 3, 4, 8, false).unwrap().batch(), 2);
    /// ```
    pub const fn batch(&self) -> usize {
        self.batch
    }
    /// Token positions per row.
    ///
    /// The token count is the second size given.
    ///
    /// ```
    /// use brt_core::desc::LinearAttention;
    /// assert_eq!(LinearAttention::new(2, 3, 4, 8, false).unwrap().tokens(), 3);
    /// ```
    pub const fn tokens(&self) -> usize {
        self.tokens
    }
    /// Heads.
    ///
    /// The head count is the third size given.
    ///
    /// ```
    /// use brt_core::desc::LinearAttention;
    /// assert_eq!(LinearAttention::new(2, 3, 4, 8, false).unwrap().heads(), 4);
    /// ```
    pub const fn heads(&self) -> usize {
        self.heads
    }
    /// Head width.
    ///
    /// The head width is the fourth size given.
    ///
    /// ```
    /// use brt_core::desc::LinearAttention;
    /// assert_eq!(LinearAttention::new(2, 3, 4, 8, false).unwrap().head_dim(), 8);
    /// ```
    pub const fn head_dim(&self) -> usize {
        self.head_dim
    }
    /// Whether the learned scale is used as `abs(a)`.
    ///
    /// The flag is the one given.
    ///
    /// ```
    /// use brt_core::desc::LinearAttention;
    /// assert!(LinearAttention::new(2, 3, 4, 8, true).unwrap().abs_scale());
    /// ```
    pub const fn abs_scale(&self) -> bool {
        self.abs_scale
    }
    /// Elements of each of `q`, `k`, `v` and `out`.
    ///
    /// Each token buffer holds tokens x batch x heads x head width elements.
    ///
    /// ```
    /// use brt_core::desc::LinearAttention;
    /// assert_eq!(LinearAttention::new(2, 3, 4, 8, false).unwrap().token_len(), 3 * 2 * 4 * 8);
    /// ```
    pub const fn token_len(&self) -> usize {
        self.tokens * self.batch * self.heads * self.head_dim
    }
    /// Elements of one row's state: `H*dh*dh` (sum of `phi(k)^T v`) then `H*dh`
    /// (sum of `phi(k)`).
    ///
    /// A row's state is `H*dh*dh + H*dh` elements.
    ///
    /// ```
    /// use brt_core::desc::LinearAttention;
    /// let (h, dh) = (4, 8);
    /// assert_eq!(LinearAttention::new(2, 3, h, dh, false).unwrap().state_per_row(), h * dh * dh + h * dh);
    /// ```
    pub const fn state_per_row(&self) -> usize {
        self.heads * self.head_dim * (self.head_dim + 1)
    }
    /// Elements of the whole state, row after row.
    ///
    /// The whole state is batch times one row's state.
    ///
    /// ```
    /// use brt_core::desc::LinearAttention;
    /// let la = LinearAttention::new(2, 3, 4, 8, false).unwrap();
    /// assert_eq!(la.state_len(), 2 * (4 * 8 * 8 + 4 * 8));
    /// ```
    pub const fn state_len(&self) -> usize {
        self.batch * self.state_per_row()
    }
}

/// `count` runs of `len` elements, `stride` apart (`stride >= len`).
///
/// 3 runs of 2 elements, 5 apart, touch 3 x 2 elements spread over 2 x 5 + 2.
///
/// ```
/// use brt_core::desc::Strided;
/// let s = Strided::new(3, 2, 5).unwrap();
/// assert_eq!((s.total(), s.extent()), (3 * 2, 2 * 5 + 2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strided {
    count: usize,
    len: usize,
    stride: usize,
}

impl Strided {
    /// Validated constructor.
    ///
    /// A stride shorter than the run is rejected.
    ///
    /// ```
    /// use brt_core::desc::Strided;
    /// assert!(Strided::new(3, 2, 2).is_ok());
    /// assert!(Strided::new(3, 4, 2).is_err());
    /// ```
    pub fn new(count: usize, len: usize, stride: usize) -> CoreResult<Strided> {
        if stride < len {
            return Err(CoreError::InvalidShape { what: "stride shorter than the run" });
        }
        product(&[count, stride], "strided runs")?;
        Ok(Strided { count, len, stride })
    }
    /// Contiguous: one run of `len`.
    ///
    /// A contiguous layout is one run whose stride is its length.
    ///
    /// ```
    /// use brt_core::desc::Strided;
    /// let s = Strided::contiguous(6);
    /// assert_eq!((s.count(), s.len(), s.stride(), s.extent()), (1, 6, 6, 6));
    /// ```
    pub fn contiguous(len: usize) -> Strided {
        Strided { count: 1, len, stride: len }
    }
    /// Number of runs.
    ///
    /// The run count is the first size given.
    ///
    /// ```
    /// use brt_core::desc::Strided;
    /// assert_eq!(Strided::new(3, 2, 5).unwrap().count(), 3);
    /// ```
    pub const fn count(&self) -> usize {
        self.count
    }
    /// Elements per run.
    ///
    /// The run length is the second size given.
    ///
    /// ```
    /// use brt_core::desc::Strided;
    /// assert_eq!(Strided::new(3, 2, 5).unwrap().len(), 2);
    /// ```
    pub const fn len(&self) -> usize {
        self.len
    }
    /// Whether there is nothing to touch.
    ///
    /// No runs, or empty runs, touch nothing.
    ///
    /// ```
    /// use brt_core::desc::Strided;
    /// assert!(Strided::new(0, 2, 5).unwrap().is_empty());
    /// assert!(Strided::new(3, 0, 5).unwrap().is_empty());
    /// assert!(!Strided::new(3, 2, 5).unwrap().is_empty());
    /// ```
    pub const fn is_empty(&self) -> bool {
        self.count == 0 || self.len == 0
    }
    /// Distance between run starts.
    ///
    /// The stride is the third size given.
    ///
    /// ```
    /// use brt_core::desc::Strided;
    /// assert_eq!(Strided::new(3, 2, 5).unwrap().stride(), 5);
    /// ```
    pub const fn stride(&self) -> usize {
        self.stride
    }
    /// Elements from the first to one past the last touched element.
    ///
    /// The extent runs from the first run's start to the last run's end; no runs, no extent.
    ///
    /// ```
    /// use brt_core::desc::Strided;
    /// assert_eq!(Strided::new(3, 2, 5).unwrap().extent(), (3 - 1) * 5 + 2);
    /// assert_eq!(Strided::new(0, 2, 5).unwrap().extent(), 0);
    /// ```
    pub const fn extent(&self) -> usize {
        if self.count == 0 {
            0
        } else {
            (self.count - 1) * self.stride + self.len
        }
    }
    /// Elements touched.
    ///
    /// The touched elements are runs x run length, gaps excluded.
    ///
    /// ```
    /// use brt_core::desc::Strided;
    /// assert_eq!(Strided::new(3, 2, 5).unwrap().total(), 3 * 2);
    /// ```
    pub const fn total(&self) -> usize {
        self.count * self.len
    }
}

/// `positions x batch` rows of `dim`; a per-position vector is added to every batch
/// row of that position.
///
/// 4 positions of 2 batch rows of width 3 fill 4 x 2 x 3 elements.
///
/// ```
/// use brt_core::desc::Positions;
/// assert_eq!(Positions::new(4, 2, 3).unwrap().len(), 4 * 2 * 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Positions {
    positions: usize,
    batch: usize,
    dim: usize,
}

impl Positions {
    /// Validated constructor.
    ///
    /// Zero positions are allowed; a zero batch or zero width are not.
    ///
    /// ```
    /// use brt_core::desc::Positions;
    /// assert!(Positions::new(0, 2, 3).is_ok());
    /// assert!(Positions::new(4, 0, 3).is_err());
    /// assert!(Positions::new(4, 2, 0).is_err());
    /// ```
    pub fn new(positions: usize, batch: usize, dim: usize) -> CoreResult<Positions> {
        positive(batch, "batch must be positive")?;
        positive(dim, "row width must be positive")?;
        product(&[positions, batch, dim], "positions")?;
        Ok(Positions { positions, batch, dim })
    }
    /// Positions.
    ///
    /// The position count is the first size given.
    ///
    /// ```
    /// use brt_core::desc::Positions;
    /// assert_eq!(Positions::new(4, 2, 3).unwrap().positions(), 4);
    /// ```
    pub const fn positions(&self) -> usize {
        self.positions
    }
    /// Batch rows per position.
    ///
    /// The batch is the second size given.
    ///
    /// ```
    /// use brt_core::desc::Positions;
    /// assert_eq!(Positions::new(4, 2, 3).unwrap().batch(), 2);
    /// ```
    pub const fn batch(&self) -> usize {
        self.batch
    }
    /// Row width.
    ///
    /// The row width is the third size given.
    ///
    /// ```
    /// use brt_core::desc::Positions;
    /// assert_eq!(Positions::new(4, 2, 3).unwrap().dim(), 3);
    /// ```
    pub const fn dim(&self) -> usize {
        self.dim
    }
    /// Elements of the activation buffer.
    ///
    /// The buffer holds positions x batch x width elements.
    ///
    /// ```
    /// use brt_core::desc::Positions;
    /// assert_eq!(Positions::new(5, 2, 3).unwrap().len(), 5 * 2 * 3);
    /// ```
    pub const fn len(&self) -> usize {
        self.positions * self.batch * self.dim
    }
    /// Whether there is nothing to touch.
    ///
    /// Without positions there is nothing to touch.
    ///
    /// ```
    /// use brt_core::desc::Positions;
    /// assert!(Positions::new(0, 2, 3).unwrap().is_empty());
    /// assert!(!Positions::new(1, 2, 3).unwrap().is_empty());
    /// ```
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Gathers `count` embedding rows of width `dim` from a `(vocab, dim)` table.
///
/// An embedding lookup keeps the token count, vocabulary and width it was given.
///
/// ```
/// use brt_core::desc::Embed;
/// let e = Embed::new(5, 10, 8).unwrap();
/// assert_eq!((e.count(), e.vocab(), e.dim()), (5, 10, 8));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embed {
    count: usize,
    vocab: usize,
    dim: usize,
}

impl Embed {
    /// Validated constructor.
    ///
    /// Zero tokens are allowed; an empty vocabulary or a zero width are not.
    ///
    /// ```
    /// use brt_core::desc::Embed;
    /// assert!(Embed::new(0, 10, 8).is_ok());
    /// assert!(Embed::new(5, 0, 8).is_err());
    /// assert!(Embed::new(5, 10, 0).is_err());
    /// ```
    pub fn new(count: usize, vocab: usize, dim: usize) -> CoreResult<Embed> {
        positive(vocab, "vocabulary must be positive")?;
        positive(dim, "row width must be positive")?;
        product(&[count, dim], "embedding output")?;
        product(&[vocab, dim], "embedding table")?;
        Ok(Embed { count, vocab, dim })
    }
    /// Tokens to look up.
    ///
    /// The token count is the first size given.
    ///
    /// ```
    /// use brt_core::desc::Embed;
    /// assert_eq!(Embed::new(5, 10, 8).unwrap().count(), 5);
    /// ```
    pub const fn count(&self) -> usize {
        self.count
    }
    /// Rows of the table.
    ///
    /// The table's row count is the second size given.
    ///
    /// ```
    /// use brt_core::desc::Embed;
    /// assert_eq!(Embed::new(5, 10, 8).unwrap().vocab(), 10);
    /// ```
    pub const fn vocab(&self) -> usize {
        self.vocab
    }
    /// Row width.
    ///
    /// The row width is the third size given.
    ///
    /// ```
    /// use brt_core::desc::Embed;
    /// assert_eq!(Embed::new(5, 10, 8).unwrap().dim(), 8);
    /// ```
    pub const fn dim(&self) -> usize {
        self.dim
    }
}
