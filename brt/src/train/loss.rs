//! The training loss: each predicted position's cross-entropy against its
//! target, and its gradient with respect to the logits (the seed of the
//! backward pass), computed in f64 from the f32 logits.

use super::parts::run_parts;

/// The positions a chunk of logits scores: one target per row of logits.
pub(crate) struct Positions<'a> {
    /// The token each position should predict.
    pub targets: &'a [u32],
    /// Whether the position counts (a document's first token predicts nothing).
    pub predicted: &'a [bool],
    /// Predicted positions in the whole step: the loss is their mean.
    pub count: usize,
}

/// Rows below which [`cross_entropy`] stays on one thread (a thread costs tens
/// of microseconds to start; a row of 256 logits takes about one).
const PARALLEL_ROWS: usize = 128;

/// For each row of `logits` (`losses.len()` rows, a target each) that is
/// predicted: its cross-entropy into `losses` and its gradient divided by the
/// step's predicted count into `seed` (`vocab` values a row); rows not predicted
/// are left alone. Split over up to `threads` threads by rows; each row takes
/// the same operations on any split.
pub(crate) fn cross_entropy(logits: &[f32], at: Positions<'_>, seed: &mut [f32], losses: &mut [f64], threads: usize) {
    let rows = losses.len();
    let vocab = logits.len() / rows.max(1);
    if rows == 0 || vocab == 0 {
        return;
    }
    let per_thread = if rows < PARALLEL_ROWS { rows } else { rows.div_ceil(threads.max(1)) };
    let scale = at.count.max(1) as f64;
    let parts = logits
        .chunks(per_thread * vocab)
        .zip(seed.chunks_mut(per_thread * vocab))
        .zip(losses.chunks_mut(per_thread))
        .zip(at.targets.chunks(per_thread).zip(at.predicted.chunks(per_thread)));
    run_parts(parts.map(|(((logits, seed), losses), (targets, predicted))| {
        move || {
            // A row's exponentials, computed once for the sum and the probabilities.
            let mut exps = vec![0f64; vocab];
            let rows = logits.chunks_exact(vocab).zip(seed.chunks_exact_mut(vocab));
            for (((row, g), loss), (&target, &counts)) in rows.zip(losses).zip(targets.iter().zip(predicted)) {
                if counts {
                    *loss = row_cross_entropy(row, target as usize, scale, &mut exps, g);
                }
            }
        }
    }));
}

/// One row's cross-entropy against `target`; `g` gets its gradient divided by
/// `scale`, `softmax(row) - onehot(target)`.
fn row_cross_entropy(row: &[f32], target: usize, scale: f64, exps: &mut [f64], g: &mut [f32]) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let mut sum = 0f64;
    for (e, &v) in exps.iter_mut().zip(row) {
        *e = (v as f64 - max).exp();
        sum += *e;
    }
    for (j, (g, &e)) in g.iter_mut().zip(&*exps).enumerate() {
        let p = e / sum;
        *g = ((p - (j == target) as u8 as f64) / scale) as f32;
    }
    max + sum.ln() - row.get(target).copied().unwrap_or(f32::NAN) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two logits rows, the second not predicted: the first row's loss is
    /// `logsumexp - logit[target]` and its gradient `(softmax - onehot) / count`;
    /// the second is left alone. Then the same on many rows: every split over
    /// threads gives the same bits.
    #[test]
    fn cross_entropy_of_rows_and_their_split() {
        let logits = [1.0f32, 2.0, 3.0, 5.0, 5.0, 5.0];
        let (targets, predicted) = ([2u32, 0], [true, false]);
        let (mut seed, mut losses) = ([9f32; 6], [7f64; 2]);
        let at = Positions { targets: &targets, predicted: &predicted, count: 2 };
        cross_entropy(&logits, at, &mut seed, &mut losses, 2);
        let z: f64 = [1f64, 2.0, 3.0].iter().map(|v| v.exp()).sum();
        assert!((losses[0] - (z.ln() - 3.0)).abs() < 1e-12);
        assert_eq!(losses[1], 7.0);
        for (j, &got) in seed[..3].iter().enumerate() {
            let p = (j as f64 + 1.0).exp() / z;
            let want = (p - (j == 2) as u8 as f64) / 2.0;
            assert!((got as f64 - want).abs() < 1e-7, "{j}: {got} against {want}");
        }
        assert_eq!(seed[3..], [9.0; 3]);

        let (rows, vocab) = (1000, 37);
        let logits: Vec<f32> = (0..rows * vocab).map(|i| ((i * 7919) % 1000) as f32 * 0.01 - 5.0).collect();
        let targets: Vec<u32> = (0..rows).map(|r| (r % vocab) as u32).collect();
        let predicted: Vec<bool> = (0..rows).map(|r| r % 7 != 0).collect();
        let run = |threads| {
            let (mut seed, mut losses) = (vec![0f32; rows * vocab], vec![0f64; rows]);
            let at = Positions { targets: &targets, predicted: &predicted, count: rows };
            cross_entropy(&logits, at, &mut seed, &mut losses, threads);
            (seed, losses)
        };
        let one = run(1);
        assert!(one.1.iter().zip(&predicted).all(|(&l, &p)| (l > 0.0) == p));
        for threads in [2, 3, 8] {
            assert!(run(threads) == one, "{threads} threads");
        }
    }
}
