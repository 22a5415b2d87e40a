//! SHA-256d throughput: `warppool-hash` kernels against `sha2` 0.11 (SHA-NI at run time) and
//! `sha2` 0.10 with `force-soft` (portable), all in one process.
//!
//! Every benchmark hashes a batch of [`BATCH`] items per iteration and declares
//! `Throughput::Elements(BATCH)`; `bench/report.py` turns the estimates into ns/item and ratios.
//!
//! Run: `cargo bench -p warppool-bench --bench hash && python3 bench/report.py`.
//!
//! The default measurement is the CPU time of the benchmarking thread
//! (`CLOCK_THREAD_CPUTIME_ID`), because the development machine is shared with other compile
//! jobs and wall time there mostly measures the scheduler. Set `WARPPOOL_BENCH_WALL=1` to
//! measure wall-clock time instead.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::Measurement;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use sha2::Digest as _;
use sha2_soft::Digest as _;
use warppool_bench::ThreadCpuTime;
use warppool_hash::kernel::{self, Kernel};
use warppool_hash::{IV, Midstate};

/// Items per iteration.
const BATCH: usize = 1024;

fn headers() -> Vec<[u8; 80]> {
    let mut h = [0u8; 80];
    for (i, b) in h.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    (0..BATCH as u32)
        .map(|n| {
            let mut x = h;
            x[76..].copy_from_slice(&n.to_le_bytes());
            x
        })
        .collect()
}

fn nodes() -> Vec<[u8; 64]> {
    (0..BATCH as u32)
        .map(|n| {
            let mut x = [0u8; 64];
            for (i, b) in x.iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(13) ^ (n as u8);
            }
            x[..4].copy_from_slice(&n.to_le_bytes());
            x
        })
        .collect()
}

/// The final block of an 80-byte message from its 16-byte tail.
fn tail_block(tail: &[u8]) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[..16].copy_from_slice(tail);
    b[16] = 0x80;
    b[56..].copy_from_slice(&640u64.to_be_bytes());
    b
}

/// The block hashing a 32-byte digest given as state words.
fn digest_block(state: &[u32; 8]) -> [u8; 64] {
    let mut b = [0u8; 64];
    for (c, w) in b.chunks_exact_mut(4).zip(state) {
        c.copy_from_slice(&w.to_be_bytes());
    }
    b[32] = 0x80;
    b[56..].copy_from_slice(&256u64.to_be_bytes());
    b
}

fn state_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut o = [0u8; 32];
    for (c, w) in o.chunks_exact_mut(4).zip(state) {
        c.copy_from_slice(&w.to_be_bytes());
    }
    o
}

/// Midstate sha256d with `sha2` 0.11's raw `compress256` (the pre-existing best practice).
fn sha2_midstate(mid: &[u32; 8], tail: &[u8]) -> [u8; 32] {
    let mut s = *mid;
    sha2::block_api::compress256(&mut s, &[tail_block(tail)]);
    let mut s2 = IV;
    sha2::block_api::compress256(&mut s2, &[digest_block(&s)]);
    state_bytes(&s2)
}

/// The same with `sha2` 0.10 `force-soft`.
fn sha2_soft_midstate(mid: &[u32; 8], tail: &[u8]) -> [u8; 32] {
    use sha2_soft::digest::generic_array::GenericArray;
    let mut s = *mid;
    let b = tail_block(tail);
    sha2_soft::compress256(&mut s, &[*GenericArray::from_slice(&b)]);
    let mut s2 = IV;
    let b = digest_block(&s);
    sha2_soft::compress256(&mut s2, &[*GenericArray::from_slice(&b)]);
    state_bytes(&s2)
}

fn available() -> Vec<Kernel> {
    Kernel::ALL
        .into_iter()
        .filter(|k| k.is_available())
        .collect()
}

fn group<'a, M: Measurement>(c: &'a mut Criterion<M>, name: &str) -> BenchmarkGroup<'a, M> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(BATCH as u64));
    g
}

fn bench_headers<M: Measurement>(c: &mut Criterion<M>) {
    let hs = headers();
    let mut out = vec![[0u8; 32]; BATCH];
    let mut g = group(c, "headers");

    g.bench_function("sha2-naive", |b| {
        b.iter(|| {
            for (h, o) in black_box(&hs).iter().zip(out.iter_mut()) {
                *o = sha2::Sha256::digest(sha2::Sha256::digest(h)).into();
            }
            black_box(&mut out);
        });
    });
    let mut mid = IV;
    sha2::block_api::compress256(&mut mid, &[hs[0][..64].try_into().unwrap()]);
    g.bench_function("sha2-midstate", |b| {
        b.iter(|| {
            for (h, o) in black_box(&hs).iter().zip(out.iter_mut()) {
                *o = sha2_midstate(black_box(&mid), &h[64..]);
            }
            black_box(&mut out);
        });
    });
    g.bench_function("sha2soft-naive", |b| {
        b.iter(|| {
            for (h, o) in black_box(&hs).iter().zip(out.iter_mut()) {
                *o = sha2_soft::Sha256::digest(sha2_soft::Sha256::digest(h)).into();
            }
            black_box(&mut out);
        });
    });
    g.bench_function("sha2soft-midstate", |b| {
        b.iter(|| {
            for (h, o) in black_box(&hs).iter().zip(out.iter_mut()) {
                *o = sha2_soft_midstate(black_box(&mid), &h[64..]);
            }
            black_box(&mut out);
        });
    });

    for k in available() {
        g.bench_function(format!("kernel-{}", k.name()), |b| {
            b.iter(|| k.sha256d_headers(black_box(&hs), &mut out));
        });
    }
    g.bench_function(format!("best-{}", kernel::selected().name()), |b| {
        b.iter(|| warppool_hash::sha256d_headers(black_box(&hs), &mut out));
    });

    let ours = Midstate::from_header(&hs[0]);
    let tails: Vec<[u8; 16]> = hs.iter().map(|h| h[64..].try_into().unwrap()).collect();
    for k in available() {
        g.bench_function(format!("midstate-{}", k.name()), |b| {
            b.iter(|| k.sha256d_headers_midstate(black_box(&ours), black_box(&tails), &mut out));
        });
    }
    g.bench_function(
        format!("midstate-best-{}", kernel::selected().name()),
        |b| {
            b.iter(|| {
                warppool_hash::sha256d_headers_midstate(
                    black_box(&ours),
                    black_box(&tails),
                    &mut out,
                )
            });
        },
    );
    g.finish();
}

fn bench_nodes<M: Measurement>(c: &mut Criterion<M>) {
    let ns = nodes();
    let mut out = vec![[0u8; 32]; BATCH];
    let mut g = group(c, "nodes");
    g.bench_function("sha2-naive", |b| {
        b.iter(|| {
            for (n, o) in black_box(&ns).iter().zip(out.iter_mut()) {
                *o = sha2::Sha256::digest(sha2::Sha256::digest(n)).into();
            }
            black_box(&mut out);
        });
    });
    g.bench_function("sha2soft-naive", |b| {
        b.iter(|| {
            for (n, o) in black_box(&ns).iter().zip(out.iter_mut()) {
                *o = sha2_soft::Sha256::digest(sha2_soft::Sha256::digest(n)).into();
            }
            black_box(&mut out);
        });
    });
    for k in available() {
        g.bench_function(format!("kernel-{}", k.name()), |b| {
            b.iter(|| k.sha256d_64(black_box(&ns), &mut out));
        });
    }
    g.bench_function(format!("best-{}", kernel::selected().name()), |b| {
        b.iter(|| warppool_hash::sha256d_64_batch(black_box(&ns), &mut out));
    });
    g.finish();
}

/// Checks, once, that every path benchmarked computes the same digests.
fn cross_check() {
    let hs = headers();
    let mut mid = IV;
    sha2::block_api::compress256(&mut mid, &[hs[0][..64].try_into().unwrap()]);
    let ours = Midstate::from_header(&hs[0]);
    for h in hs.iter().take(64) {
        let want: [u8; 32] = sha2::Sha256::digest(sha2::Sha256::digest(h)).into();
        assert_eq!(sha2_midstate(&mid, &h[64..]), want);
        assert_eq!(sha2_soft_midstate(&mid, &h[64..]), want);
        for k in available() {
            let mut o = [[0u8; 32]; 1];
            k.sha256d_headers(std::slice::from_ref(h), &mut o);
            assert_eq!(o[0], want);
            k.sha256d_headers_midstate(&ours, &[h[64..].try_into().unwrap()], &mut o);
            assert_eq!(o[0], want);
        }
    }
    for n in nodes().iter().take(64) {
        let want: [u8; 32] = sha2::Sha256::digest(sha2::Sha256::digest(n)).into();
        assert_eq!(
            sha2_soft::Sha256::digest(sha2_soft::Sha256::digest(n)).as_slice(),
            want
        );
        for k in available() {
            let mut o = [[0u8; 32]; 1];
            k.sha256d_64(std::slice::from_ref(n), &mut o);
            assert_eq!(o[0], want);
        }
    }
}

fn configure<M: Measurement>(c: Criterion<M>) -> Criterion<M> {
    c.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args()
}

fn main() {
    cross_check();
    if std::env::var_os("WARPPOOL_BENCH_WALL").is_some() {
        let mut c = configure(Criterion::default());
        bench_headers(&mut c);
        bench_nodes(&mut c);
        c.final_summary();
    } else {
        let mut c = configure(Criterion::default().with_measurement(ThreadCpuTime));
        bench_headers(&mut c);
        bench_nodes(&mut c);
        c.final_summary();
    }
}
