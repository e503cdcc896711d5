//! Prints the f32 product rate of every SIMD level on 1 and 2 threads:
//! `cargo run --release -p brt-cpu --example gemm_rate [n]`.

use brt_cpu::{sgemm_gflops, SimdLevel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(1536);
    for level in SimdLevel::available() {
        for threads in [1, 2] {
            let g = sgemm_gflops(Some(level), threads, n, 8)?;
            println!("{level:>7} {threads} thread(s) {n}^3: {g:8.1} GFLOP/s");
        }
    }
    Ok(())
}
