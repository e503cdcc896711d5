//! The backend's scratch per thread is exactly what the README's "Memory" table
//! says: the largest of its per-kernel formulas. A kernel that asks for more
//! than its formula takes memory no one can count (one wrong operator in the
//! attention's formula, a surviving mutant, took 57 MB per thread instead of 4.3
//! with AVX-512's default tiles and heads of 64), and one that asks for less
//! writes past its scratch; the arena tests cannot see the first, as they size
//! their memory with the same function.
//!
//! The formulas are restated here from the README, in f32 values, and every
//! row of the table except the forward linear attention's (always below its
//! backward's) is shown to decide the size in at least one case.

use brt_cpu::{Options, SimdLevel, Tiles};
use std::collections::BTreeSet;

/// The README's rows, by name: `(row, f32 values)`.
fn formulas(tiles: &Tiles, level: SimdLevel, dh: usize, g: usize) -> [(&'static str, usize); 6] {
    let (mr, nr) = level.micro_tile();
    let dp = dh.div_ceil(nr) * nr;
    let (kc, mc, nc, v) = (tiles.gemm_kc, tiles.gemm_mc, tiles.gemm_nc, tiles.gemv_columns);
    let (q, k) = (tiles.attention_queries, tiles.attention_keys);
    let (bq, bk, cached) = (tiles.backward_queries, tiles.backward_keys, tiles.backward_cached_tiles);
    let c = tiles.linear_chunk;
    [
        ("products", (mc + nc) * kc),
        ("products of at most 4 rows", 4 * v),
        ("attention", q * dh + k * dh + dp * k + q * k + mr * k + q * dp + 2 * q + 128),
        ("linear attention", 2 * c * dh + dh),
        (
            "attention backward",
            2 * bq * dh
                + 2 * bq * dp
                + 2 * bk * dh
                + bk * dp
                + 2 * cached * bq * bk
                + mr * bq.max(bk)
                + 3 * bq
                + 2 * bk
                + 256
                + g,
        ),
        ("linear attention backward", dh * dh + dh + 5 * c * dh + 2 * c * c + 2 * c + g),
    ]
}

/// Tiles that let each row of the table be the largest: the defaults (the
/// products), and the smallest tiles with one kernel's sizes raised.
fn tile_cases(level: SimdLevel) -> Vec<Tiles> {
    let (mr, nr) = level.micro_tile();
    let small = Tiles::smallest(level);
    vec![
        Tiles::default_for(level),
        small,
        Tiles { gemv_columns: 512 * level.lanes(), ..small },
        Tiles { attention_queries: 16 * mr, attention_keys: 16 * nr, ..small },
        Tiles { backward_queries: 8 * mr, backward_keys: 8 * nr, backward_cached_tiles: 4, ..small },
        // More queries than keys per tile: the one A panel then holds a query
        // tile's (`MR max(bq, bk)`; every other case has `bq <= bk`).
        Tiles { backward_queries: 4 * mr * nr, backward_keys: nr, ..small },
        Tiles { linear_chunk: 64, ..small },
    ]
}

#[test]
fn the_scratch_per_thread_is_the_largest_formula_of_the_readme() {
    let mut deciding = BTreeSet::new();
    for level in SimdLevel::available() {
        for tiles in tile_cases(level) {
            for dh in [1, 32, 64, 100, 256] {
                for g in [0, 5000] {
                    let options = Options {
                        level: Some(level),
                        tiles: Some(tiles),
                        max_head_dim: dh,
                        gradient_sums: g,
                        threads: 1,
                    };
                    let rows = formulas(&tiles, level, dh, g);
                    let (row, want) = rows.iter().copied().max_by_key(|&(_, len)| len).unwrap();
                    let got = options.scratch_per_thread().unwrap();
                    assert_eq!(
                        got, want,
                        "{level}, head width {dh}, gradient sums {g}, {tiles:?}: the README's largest row is {row:?}"
                    );
                    assert_eq!(options.scratch_len().unwrap(), want);
                    deciding.insert(row);
                }
            }
        }
    }
    let every_row_but_the_forward_linear_attention = BTreeSet::from([
        "products",
        "products of at most 4 rows",
        "attention",
        "attention backward",
        "linear attention backward",
    ]);
    assert_eq!(deciding, every_row_but_the_forward_linear_attention, "the cases must let every row decide");
}
