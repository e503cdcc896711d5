//! Moving test data in and out of a backend through [`Storage`] only: the suite
//! never assumes a backend's buffers are host memory.

use crate::failure::Failure;
use brt_core::half::{bf16, f16};
use brt_core::{Kernels, Storage, Stream, WeightData, WeightDtype};

/// Rounds `values` to what `dtype` can hold (identity for f32), so the reference
/// sees exactly the parameters a half-precision backend stores. Q8_0 rounds per
/// tensor, which needs the model's layout: [`crate::backend::TensorData`] does it
/// (`checks::quantized`); here the values are left as they are.
pub fn round_to(dtype: WeightDtype, values: &mut [f32]) {
    match dtype {
        WeightDtype::F32 | WeightDtype::Q8_0 => {}
        WeightDtype::F16 => values.iter_mut().for_each(|v| *v = f16::from_f32(*v).to_f32()),
        WeightDtype::Bf16 => values.iter_mut().for_each(|v| *v = bf16::from_f32(*v).to_f32()),
    }
}

/// Calls `f` with `values` in the host representation of `dtype`.
pub fn with_weight_data<R>(dtype: WeightDtype, values: &[f32], f: impl FnOnce(WeightData<'_>) -> R) -> R {
    match dtype {
        // Q8_0 is written from f32 values (and refused by backends that hold
        // values one by one).
        WeightDtype::F32 | WeightDtype::Q8_0 => f(WeightData::F32(values)),
        WeightDtype::F16 => {
            let v: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
            f(WeightData::F16(&v))
        }
        WeightDtype::Bf16 => {
            let v: Vec<bf16> = values.iter().map(|&x| bf16::from_f32(x)).collect();
            f(WeightData::Bf16(&v))
        }
    }
}

/// A new activation buffer holding `values`.
pub fn tensor<K: Storage>(k: &mut K, values: &[f32]) -> Result<K::Tensor, Failure> {
    let mut t = k.alloc_tensor(values.len()).map_err(|e| Failure::backend("alloc_tensor", e))?;
    k.write_tensor(&mut t, 0, values).map_err(|e| Failure::backend("write_tensor", e))?;
    Ok(t)
}

/// A new parameter buffer of type `dtype` holding `values` (already rounded to it).
pub fn weights<K: Storage>(k: &mut K, values: &[f32], dtype: WeightDtype) -> Result<K::Weights, Failure> {
    let mut w = k.alloc_weights(values.len(), dtype).map_err(|e| Failure::backend("alloc_weights", e))?;
    with_weight_data(dtype, values, |data| k.write_weights(&mut w, 0, data))
        .map_err(|e| Failure::backend("write_weights", e))?;
    Ok(w)
}

/// A new token buffer holding `ids`.
pub fn tokens<K: Storage>(k: &mut K, ids: &[u32]) -> Result<K::Tokens, Failure> {
    let mut t = k.alloc_tokens(ids.len()).map_err(|e| Failure::backend("alloc_tokens", e))?;
    k.write_tokens(&mut t, 0, ids).map_err(|e| Failure::backend("write_tokens", e))?;
    Ok(t)
}

/// The whole content of an activation buffer.
pub fn read<K: Storage>(k: &mut K, t: &K::Tensor) -> Result<Vec<f32>, Failure> {
    let mut out = vec![0f32; K::tensor_len(t)];
    k.read_tensor(t, 0, &mut out).map_err(|e| Failure::backend("read_tensor", e))?;
    Ok(out)
}

/// The carried state of `stream`, in the saved layout.
pub fn read_state<K: Kernels>(k: &mut K, stream: &Stream<K>) -> Result<Vec<f32>, Failure> {
    let mut out = vec![0f32; stream.plan().saved_state_len()];
    stream.read_state(k, &mut out).map_err(|e| Failure::backend("Stream::read_state", e))?;
    Ok(out)
}

/// Elements `offset .. offset + len` of an activation buffer.
pub fn read_range<K: Storage>(k: &mut K, t: &K::Tensor, offset: usize, len: usize) -> Result<Vec<f32>, Failure> {
    let mut out = vec![0f32; len];
    k.read_tensor(t, offset, &mut out).map_err(|e| Failure::backend("read_tensor", e))?;
    Ok(out)
}

/// Maps a backend error of the call `during` to a [`Failure`].
pub fn call<T, E: std::fmt::Display>(during: &str, r: Result<T, E>) -> Result<T, Failure> {
    r.map_err(|e| Failure::backend(during, e))
}
