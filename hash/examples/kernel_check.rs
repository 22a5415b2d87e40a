//! Cross-checks every kernel available on this CPU against the `sha2` crate without the test
//! harness, for targets where only a plain binary can run (e.g. aarch64 under
//! `qemu-aarch64 -cpu max`, where libtest binaries hung; see `docs/performance.md`).
//!
//! `cargo run -p warppool-hash --example kernel_check` exits 0 when every digest matches.

use sha2::Digest;
use warppool_hash::Midstate;
use warppool_hash::kernel::{self, Kernel};

fn reference(x: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(sha2::Sha256::digest(x)).into()
}

/// xorshift32, so the check needs no extra dependency.
struct Rng(u32);

impl Rng {
    fn byte(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0 as u8
    }
}

fn check(k: Kernel, rng: &mut Rng) -> usize {
    let mut bad = 0;
    for len in 0..=40usize {
        let mut hs = [[0u8; 80]; 40];
        let mut ns = [[0u8; 64]; 40];
        let mut ts = [[0u8; 16]; 40];
        hs.iter_mut().flatten().for_each(|b| *b = rng.byte());
        ns.iter_mut().flatten().for_each(|b| *b = rng.byte());
        ts.iter_mut().flatten().for_each(|b| *b = rng.byte());
        let mut out = [[0u8; 32]; 40];
        k.sha256d_headers(&hs[..len], &mut out[..len]);
        bad += (0..len).filter(|&i| out[i] != reference(&hs[i])).count();
        k.sha256d_64(&ns[..len], &mut out[..len]);
        bad += (0..len).filter(|&i| out[i] != reference(&ns[i])).count();
        let mut first = [0u8; 64];
        first.copy_from_slice(&hs[0][..64]);
        let mid = Midstate::from_blocks(&[first]);
        k.sha256d_headers_midstate(&mid, &ts[..len], &mut out[..len]);
        bad += (0..len)
            .filter(|&i| {
                let mut h = hs[0];
                h[64..].copy_from_slice(&ts[i]);
                out[i] != reference(&h)
            })
            .count();
        let blocks = &ns[..len.min(5)];
        let (mut a, mut b) = (warppool_hash::IV, warppool_hash::IV);
        k.compress(&mut a, blocks);
        sha2::block_api::compress256(&mut b, blocks);
        bad += usize::from(a != b);
    }
    bad
}

fn main() {
    let mut rng = Rng(0x1234_5678);
    let mut bad = 0;
    println!("selected: {}", kernel::selected().name());
    for k in Kernel::ALL.into_iter().filter(|k| k.is_available()) {
        let n = check(k, &mut rng);
        println!("{:>10}: {} mismatches", k.name(), n);
        bad += n;
    }
    for len in [0usize, 1, 55, 56, 63, 64, 65, 119, 120, 200, 1000] {
        let mut data = [0u8; 1000];
        data.iter_mut().for_each(|b| *b = rng.byte());
        let data = &data[..len];
        bad += usize::from(warppool_hash::sha256d(data) != reference(data));
    }
    std::process::exit(i32::from(bad != 0));
}
