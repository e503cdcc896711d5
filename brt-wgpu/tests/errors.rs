//! The failure paths a user can reach end in clear errors, never panics: no
//! adapter, a lost device, an allocation beyond the adapter's limits.

mod common;

use brt_core::desc::Matmul;
use brt_core::{Kernels, Storage, View, ViewMut, WeightDtype, WeightView};
use brt_wgpu::{testing, wgpu, Wgpu, WgpuError, WgpuOptions};

#[test]
fn no_adapter_is_a_clear_error() {
    // The browser WebGPU backend is not compiled into native builds, so asking
    // for it alone finds no adapter on any machine.
    let options = WgpuOptions { backends: Some(wgpu::Backends::BROWSER_WEBGPU), ..WgpuOptions::default() };
    let err = Wgpu::with_options(&options).unwrap_err();
    assert!(matches!(err, WgpuError::NoAdapter { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("no GPU adapter") && message.contains("WGPU_BACKEND"), "{message}");
    // Without BRT_REQUIRE_GPU the test helpers skip; with it they fail.
    let decided = testing::decide("no adapter", Wgpu::with_options(&options));
    assert_eq!(decided.is_err(), testing::gpu_required());
}

#[test]
fn a_lost_device_fails_every_later_call() {
    let Some(mut k) = testing::backend_or_skip("lost device") else { return };
    let x = k.alloc_tensor(4).unwrap();
    let w = k.alloc_weights(4, WeightDtype::F32).unwrap();
    let mut out = k.alloc_tensor(4).unwrap();
    k.destroy();
    let matmul =
        k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), Matmul::new(2, 2, 2).unwrap());
    assert!(matches!(matmul, Err(WgpuError::DeviceLost(_))), "{matmul:?}");
    assert!(matches!(k.alloc_tensor(4), Err(WgpuError::DeviceLost(_))));
    let mut back = [0f32; 4];
    let read = k.read_tensor(&out, 0, &mut back);
    assert!(matches!(read, Err(WgpuError::DeviceLost(_))), "{read:?}");
    assert!(matches!(k.sync(), Err(WgpuError::DeviceLost(_))));
    assert!(k.sync().unwrap_err().to_string().contains("device was lost"));
}

#[test]
fn buffers_beyond_the_adapter_limit_are_refused() {
    common::with_gpu("too large", |k| {
        let limit = k.adapter().max_binding;
        let elements = (limit / 4 + 1) as usize;
        let err = k.alloc_tensor(elements).unwrap_err();
        assert!(matches!(err, WgpuError::TooLarge { .. }), "{err:?}");
        assert!(err.to_string().contains("binds at most"), "{err}");
        let err = k.alloc_weights(usize::MAX / 2, WeightDtype::F16).unwrap_err();
        assert!(matches!(err, WgpuError::TooLarge { .. }), "{err:?}");
        // The backend is still usable afterwards.
        let t = k.alloc_tensor(3).unwrap();
        let mut back = [1f32; 3];
        k.read_tensor(&t, 0, &mut back).unwrap();
        assert_eq!(back, [0.0; 3], "new buffers are zeroed");
    });
}

#[test]
fn transfers_check_their_extents() {
    common::with_gpu("transfer extents", |k| {
        let mut t = k.alloc_tensor(4).unwrap();
        assert!(k.write_tensor(&mut t, 2, &[1.0; 3]).is_err());
        let mut back = [0f32; 3];
        assert!(k.read_tensor(&t, 2, &mut back).is_err());
        let mut w = k.alloc_weights(3, WeightDtype::F16).unwrap();
        assert!(k.write_weights(&mut w, 1, brt_core::WeightData::F32(&[1.0; 3])).is_err());
        let mut ids = k.alloc_tokens(2).unwrap();
        assert!(k.write_tokens(&mut ids, 1, &[1, 2]).is_err());
        k.write_tensor(&mut t, 1, &[1.0, 2.0, 3.0]).unwrap();
        let mut back = [0f32; 4];
        k.read_tensor(&t, 0, &mut back).unwrap();
        assert_eq!(back, [0.0, 1.0, 2.0, 3.0]);
    });
}
