//! What the CPU backend's backward kernels promise beyond the gradient contract.
//!
//! Every backward kernel is checked against the f64 reference, at every SIMD
//! level, with f32, f16 and bf16 weights and on two threads, on generated shapes
//! and on the large shapes that cross this backend's blocking boundaries, by the
//! conformance suite (`conformance/tests/gradients.rs`, `conformance::gradients`),
//! error paths included. What is left here is specific to this backend: its
//! capacity limit, and that a rejected `embed_backward` writes nothing (it checks
//! every id first; the contract only asks for the error).

use brt_core::desc::{Attention, Embed, Mask};
use brt_core::{CoreError, Gradients, Storage, View, ViewMut, WeightDtype, WeightView};
use brt_cpu::{Cpu, CpuError, Heap, Options};

#[test]
fn a_head_wider_than_the_capacity_is_an_error() {
    let mut k = Cpu::with_options(Heap, Options { max_head_dim: 8, ..Options::default() }).unwrap();
    let t = k.alloc_tensor(64).unwrap();
    let mut g: Vec<Vec<f32>> = (0..4).map(|_| k.alloc_tensor(64).unwrap()).collect();
    let scale = k.alloc_weights(1, WeightDtype::F32).unwrap();
    let [dq, dk, dv, ds] = &mut g[..] else { unreachable!() };
    let wide = Attention::new(1, 2, 2, 1, 16, Mask::None, false).unwrap();
    let e = k
        .attention_backward(
            View::new(&t, 0),
            View::new(&t, 0),
            View::new(&t, 0),
            WeightView::new(&scale, 0),
            None,
            View::new(&t, 0),
            ViewMut::new(dq, 0),
            ViewMut::new(dk, 0),
            ViewMut::new(dv, 0),
            ViewMut::new(ds, 0),
            None,
            wide,
        )
        .unwrap_err();
    assert!(matches!(e, CpuError::Capacity { needed: 16, limit: 8, .. }), "{e}");
}

#[test]
fn a_rejected_embed_backward_writes_nothing() {
    for threads in [1, 2] {
        let mut k = Cpu::with_options(Heap, Options::threads(threads)).unwrap();
        let mut t = k.alloc_tokens(3).unwrap();
        k.write_tokens(&mut t, 0, &[0, 1, 9]).unwrap();
        let mut dy = k.alloc_tensor(6).unwrap();
        k.write_tensor(&mut dy, 0, &[1.0; 6]).unwrap();
        let mut table = k.alloc_tensor(8).unwrap();
        let e = k
            .embed_backward(&t, 0, View::new(&dy, 0), ViewMut::new(&mut table, 0), Embed::new(3, 4, 2).unwrap())
            .unwrap_err();
        assert!(matches!(e, CpuError::Core(CoreError::TokenOutOfRange { index: 2, id: 9, vocab: 4 })), "{e}");
        assert!(table.iter().all(|&v| v == 0.0), "{threads} thread(s): wrote before the error");
    }
}
