//! The metadata keys of a brt model file and the tensor type codes it uses.
//!
//! Keys follow GGUF's naming: `general.*` for what every GGUF reader knows, and the
//! architecture's own namespace (`brt.*`) for the configuration.

/// The architecture (`"brt"`).
pub const ARCHITECTURE: &str = "general.architecture";
/// The model's name (optional).
pub const NAME: &str = "general.name";
/// The tokenizer the model was trained with (optional; brt's tokenizer
/// identity: `bytes`, or `tokenizer.json:` and a hash of its vocabulary).
pub const TOKENIZER: &str = "brt.tokenizer";
/// Alignment of the tensor data in bytes (GGUF's default is 32 when absent).
pub const ALIGNMENT: &str = "general.alignment";
/// The brt file format version.
pub const FORMAT_VERSION: &str = "brt.format_version";
/// CRC-32 (IEEE) of the tensor data section: from its first byte to the end of
/// the last tensor, gaps included.
pub const DATA_CRC32: &str = "brt.data_crc32";
/// Vocabulary size `V`.
pub const VOCAB: &str = "brt.vocab_size";
/// Model width `d`.
pub const D_MODEL: &str = "brt.embedding_length";
/// Attention heads `H`.
pub const HEADS: &str = "brt.attention.head_count";
/// Head width `dh`.
pub const HEAD_DIM: &str = "brt.attention.key_length";
/// MLP hidden width.
pub const MLP_HIDDEN: &str = "brt.feed_forward_length";
/// Number of layers.
pub const LAYERS: &str = "brt.block_count";
/// Block length = attention window `W`.
pub const WINDOW: &str = "brt.window";
/// Number of state vectors `S`.
pub const STATES: &str = "brt.state_count";
/// The recurrent layers (array of integers).
pub const RECURRENT: &str = "brt.recurrent_layers";
/// The linear-attention layers (array of integers).
pub const LINEAR: &str = "brt.linear_layers";
/// The gate: `"fixed"` or `"lstm"`.
pub const GATE: &str = "brt.gate";
/// The state layout: `"skip"`, `"single"` or `"dual"`.
pub const STATE_LAYOUT: &str = "brt.state_layout";
/// Feedback mode (boolean).
pub const FEEDBACK: &str = "brt.feedback";
/// Learned attention scales used as `abs(a)` (boolean).
pub const ABS_ATTENTION_SCALE: &str = "brt.abs_attention_scale";

/// GGML tensor type codes (the `ggml_type` enumeration) of the storage types brt
/// writes.
pub mod tensor_type {
    /// IEEE single precision.
    pub const F32: u32 = 0;
    /// IEEE half precision.
    pub const F16: u32 = 1;
    /// bfloat16.
    pub const BF16: u32 = 30;
    /// GGML's Q8_0: blocks of 32 signed bytes with one f16 scale.
    pub const Q8_0: u32 = 8;
}
