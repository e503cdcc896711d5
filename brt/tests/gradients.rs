//! Whole-model gradients by the recorder (truncated back-propagation through one
//! training segment) against central finite differences of the loss, all in f64,
//! for every variant of the configuration.

use brt::autodiff::Recorder;
use brt_core::init::{initialize, SplitMix64};
use brt_core::{
    Config, GateKind, LayerSet, Model, Plan, Reference64, StateLayout, Stream, WeightData, WeightDtype, WeightLayout,
};
use brt_heap::Heap;

fn variants() -> Vec<(String, Config)> {
    let base = Config { states: 2, ..Config::plain(11, 6, 2, 3, 8, 3, 2) };
    let mut out = vec![("plain".to_string(), base)];
    for gate in [GateKind::Fixed, GateKind::Lstm] {
        for layout in [StateLayout::Skip, StateLayout::Single, StateLayout::Dual] {
            for feedback in [false, true] {
                out.push((
                    format!("{gate:?}/{layout:?}/feedback={feedback}"),
                    Config { recurrent: LayerSet::EMPTY.with(1), gate, layout, feedback, ..base },
                ));
            }
        }
    }
    out.push((
        "two recurrent layers".into(),
        Config { recurrent: LayerSet::EMPTY.with(0).with(2), gate: GateKind::Lstm, ..base },
    ));
    out.push((
        "linear attention".into(),
        Config { linear: LayerSet::EMPTY.with(0).with(2), recurrent: LayerSet::EMPTY.with(2), ..base },
    ));
    out.push(("abs scales".into(), Config { recurrent: LayerSet::EMPTY.with(1), abs_attention_scale: true, ..base }));
    out
}

type K = Recorder<Reference64<Heap>>;

struct Setup {
    k: K,
    model: Model<K>,
    stream: Stream<K>,
    carried: Vec<f32>,
    position: usize,
    tokens: Vec<u32>,
    resets: Vec<bool>,
    direction: Vec<f32>,
}

/// A model, a first segment run without recording, and the second segment's inputs.
fn setup(config: Config, seed: u64) -> Setup {
    let layout = WeightLayout::new(&config).unwrap();
    let mut flat = vec![0f32; layout.len()];
    initialize(&config, seed, &mut flat).unwrap();
    let mut rng = SplitMix64::new(seed);
    for v in flat.iter_mut() {
        if *v == 1.0 {
            *v = (0.5 + 2.5 * rng.uniform()) as f32; // scales away from 1, like trained ones
        }
    }
    let mut k = Recorder::new(Reference64::new_f64(Heap));
    let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&flat)).unwrap();
    let (batch, first, second) = (2, 4, 6);
    let mut stream = Stream::new(&mut k, &model, Plan::new(&config, batch, second).unwrap()).unwrap();
    let ids = |n: usize, rng: &mut SplitMix64| {
        (0..n * batch).map(|_| (rng.next_u64() % config.vocab as u64) as u32).collect::<Vec<_>>()
    };
    let warm = ids(first, &mut rng);
    stream.forward(&mut k, &model, &warm, &[]).unwrap();
    let mut carried = vec![0f32; stream.plan().saved_state_len()];
    stream.read_state(&mut k, &mut carried).unwrap();
    let position = stream.position_in_block();
    let tokens = ids(second, &mut rng);
    // Exactly representable directions, so the seed loses nothing through f32.
    let direction = (0..second * batch * config.vocab).map(|_| ((rng.next_u64() % 17) as f32 - 8.0) / 8.0).collect();
    Setup { k, model, stream, carried, position, tokens, resets: vec![false, true], direction }
}

/// The loss `direction . logits` of the second segment from the carried state.
fn loss(s: &mut Setup) -> f64 {
    s.stream.restore(&mut s.k, &s.carried, s.position).unwrap();
    s.stream.forward(&mut s.k, &s.model, &s.tokens, &s.resets).unwrap();
    let mut logits = vec![0f64; s.direction.len()];
    let logits_buffer = s.stream.logits().inner();
    s.k.inner().read_exact(logits_buffer, 0, &mut logits).unwrap();
    logits.iter().zip(&s.direction).map(|(l, &d)| l * d as f64).sum()
}

#[test]
fn model_gradients_match_finite_differences_for_every_variant() {
    for (i, (name, config)) in variants().into_iter().enumerate() {
        let mut s = setup(config, 40 + i as u64);
        let n = s.model.layout().len();
        // Gradient by the recorder.
        s.stream.restore(&mut s.k, &s.carried, s.position).unwrap();
        s.k.start();
        s.stream.forward(&mut s.k, &s.model, &s.tokens, &s.resets).unwrap();
        s.k.stop();
        let direction = s.direction.clone();
        s.k.backward(s.model.weights(), s.stream.logits(), 0, &direction).unwrap();
        let mut grad = vec![0f32; n];
        s.k.weight_gradient(s.model.weights(), &mut grad).unwrap();
        assert!(grad.iter().any(|&g| g != 0.0), "{name}: no gradient at all");

        // Central differences on a sample that covers every parameter.
        let mut rng = SplitMix64::new(i as u64);
        let spans: Vec<_> = s.model.layout().params().collect();
        let mut worst = 0f64;
        let mut checked = 0;
        for spec in spans {
            let picks = spec.span.len().min(4);
            for _ in 0..picks {
                let index = spec.offset + (rng.next_u64() as usize % spec.span.len());
                let mut original = [0f64];
                original[0] = s.model.weights().inner().values().expect("the test's weights are held")[index];
                let eps = 1e-6 * (1.0 + original[0].abs());
                let at = |value: f64, s: &mut Setup| {
                    let weights = s.model.weights_mut().inner_mut();
                    s.k.inner().write_weights_exact(weights, index, &[value]).unwrap();
                    loss(s)
                };
                let plus = at(original[0] + eps, &mut s);
                let minus = at(original[0] - eps, &mut s);
                at(original[0], &mut s);
                let numeric = (plus - minus) / (2.0 * eps);
                let err = (numeric - grad[index] as f64).abs() / (1.0 + numeric.abs());
                worst = worst.max(err);
                checked += 1;
                assert!(
                    err < 1e-5,
                    "{name}: parameter {:?} element {index}: finite difference {numeric}, recorder {}",
                    spec.param,
                    grad[index]
                );
            }
        }
        println!(
            "{name}: {checked} parameters checked, worst relative error {worst:.1e}, tape {} calls",
            s.k.tape_len()
        );
    }
}
