//! Every kernel available on this CPU against the `sha2` crate and published vectors.

use proptest::prelude::*;
use sha2::Digest;
use warppool_hash::kernel::{self, Kernel};
use warppool_hash::{Midstate, Sha256};

fn ref_sha256(x: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(x).into()
}

fn ref_sha256d(x: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(sha2::Sha256::digest(x)).into()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn available() -> Vec<Kernel> {
    Kernel::ALL
        .into_iter()
        .filter(|k| k.is_available())
        .collect()
}

/// Kernels to exercise: all of them, available or not (unavailable ones must fall back).
fn all_kernels() -> [Kernel; 5] {
    Kernel::ALL
}

const GENESIS: &str = concat!(
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd",
    "7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
);
const GENESIS_HASH: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
const B100000: &str = concat!(
    "0100000050120119172a610421a6c3011dd330d9df07b63616c2cc1f1cd00200000000006657a925",
    "2aacd5c0b2940996ecff952228c3067cc38d4885efb5a4ac4247e9f337221b4d4c86041b0f2b5710",
);
const B100000_HASH: &str = "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506";

fn header(hexstr: &str) -> [u8; 80] {
    hex(hexstr).try_into().unwrap()
}

fn reversed(hexstr: &str) -> [u8; 32] {
    let mut v: [u8; 32] = hex(hexstr).try_into().unwrap();
    v.reverse();
    v
}

#[test]
fn fips_vectors() {
    let abc = hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(warppool_hash::sha256(b"abc").to_vec(), abc);
    let m448 = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    let d448 = hex("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    assert_eq!(warppool_hash::sha256(m448).to_vec(), d448);
    for k in all_kernels() {
        // Single-block "abc" through each kernel's compress.
        let mut block = [0u8; 64];
        block[..3].copy_from_slice(b"abc");
        block[3] = 0x80;
        block[63] = 24;
        let mut s = warppool_hash::IV;
        k.compress(&mut s, &[block]);
        let got: Vec<u8> = s.iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(got, abc, "{}", k.name());
    }
}

#[test]
fn bitcoin_headers() {
    for (h, want) in [(GENESIS, GENESIS_HASH), (B100000, B100000_HASH)] {
        let h = header(h);
        let want = reversed(want);
        assert_eq!(warppool_hash::sha256d_header(&h), want);
        assert_eq!(warppool_hash::sha256d(&h), want);
        for k in all_kernels() {
            let mut out = [[0u8; 32]; 1];
            k.sha256d_headers(&[h], &mut out);
            assert_eq!(out[0], want, "{}", k.name());
            let mid = Midstate::from_header(&h);
            let tail: [u8; 16] = h[64..].try_into().unwrap();
            k.sha256d_headers_midstate(&mid, &[tail], &mut out);
            assert_eq!(out[0], want, "{} midstate", k.name());
            // A full batch of the same header in every position.
            let hs = [h; 37];
            let mut outs = [[0u8; 32]; 37];
            k.sha256d_headers(&hs, &mut outs);
            assert!(outs.iter().all(|o| *o == want), "{} batch", k.name());
        }
    }
}

#[test]
fn selection_is_available_and_stable() {
    let k = kernel::selected();
    assert!(k.is_available());
    assert_eq!(k, kernel::selected());
    assert!(available().contains(&k));
    #[cfg(target_arch = "x86_64")]
    if Kernel::ShaNi.is_available() {
        assert_eq!(k, Kernel::ShaNi);
    }
    eprintln!(
        "selected kernel: {}; available: {:?}",
        k.name(),
        available()
    );
}

#[test]
fn mismatched_lengths_hash_the_minimum() {
    let hs = [[7u8; 80]; 5];
    let want = ref_sha256d(&hs[0]);
    for k in all_kernels() {
        let mut out = [[0u8; 32]; 3];
        k.sha256d_headers(&hs, &mut out);
        assert!(out.iter().all(|o| *o == want));
        let mut out = [[1u8; 32]; 9];
        k.sha256d_headers(&hs, &mut out);
        assert!(out[..5].iter().all(|o| *o == want));
        assert!(
            out[5..].iter().all(|o| *o == [1u8; 32]),
            "{} wrote past the inputs",
            k.name()
        );
        k.sha256d_64(&[], &mut out);
        k.sha256d_headers(&hs, &mut []);
    }
}

fn arb_headers() -> impl Strategy<Value = Vec<[u8; 80]>> {
    prop::collection::vec(prop::array::uniform32(any::<u8>()), 0..=40 * 3).prop_map(|v| {
        v.chunks(3)
            .filter(|c| c.len() == 3)
            .map(|c| {
                let mut h = [0u8; 80];
                h[..32].copy_from_slice(&c[0]);
                h[32..64].copy_from_slice(&c[1]);
                h[64..].copy_from_slice(&c[2][..16]);
                h
            })
            .collect()
    })
}

fn arb_nodes() -> impl Strategy<Value = Vec<[u8; 64]>> {
    prop::collection::vec(
        (
            prop::array::uniform32(any::<u8>()),
            prop::array::uniform32(any::<u8>()),
        ),
        0..=40,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(a, b)| {
                let mut n = [0u8; 64];
                n[..32].copy_from_slice(&a);
                n[32..].copy_from_slice(&b);
                n
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn headers_match_sha2(hs in arb_headers()) {
        let want: Vec<[u8; 32]> = hs.iter().map(|h| ref_sha256d(h)).collect();
        for k in all_kernels() {
            let mut out = vec![[0u8; 32]; hs.len()];
            k.sha256d_headers(&hs, &mut out);
            prop_assert_eq!(&out, &want, "{}", k.name());
        }
        let mut out = vec![[0u8; 32]; hs.len()];
        warppool_hash::sha256d_headers(&hs, &mut out);
        prop_assert_eq!(&out, &want);
        for (h, w) in hs.iter().zip(&want) {
            prop_assert_eq!(&warppool_hash::sha256d_header(h), w);
        }
    }

    #[test]
    fn nodes_match_sha2(ns in arb_nodes()) {
        let want: Vec<[u8; 32]> = ns.iter().map(|n| ref_sha256d(n)).collect();
        for k in all_kernels() {
            let mut out = vec![[0u8; 32]; ns.len()];
            k.sha256d_64(&ns, &mut out);
            prop_assert_eq!(&out, &want, "{}", k.name());
        }
        let mut out = vec![[0u8; 32]; ns.len()];
        warppool_hash::sha256d_64_batch(&ns, &mut out);
        prop_assert_eq!(&out, &want);
        for (n, w) in ns.iter().zip(&want) {
            prop_assert_eq!(&warppool_hash::sha256d_64(n), w);
        }
    }

    #[test]
    fn midstate_headers_match_sha2(
        first in prop::collection::vec(any::<u8>(), 64),
        tails in prop::collection::vec(prop::array::uniform16(any::<u8>()), 0..=40),
    ) {
        let first: [u8; 64] = first.try_into().unwrap();
        let mid = Midstate::from_blocks(&[first]);
        let want: Vec<[u8; 32]> = tails.iter().map(|t| {
            let mut h = [0u8; 80];
            h[..64].copy_from_slice(&first);
            h[64..].copy_from_slice(t);
            ref_sha256d(&h)
        }).collect();
        for k in all_kernels() {
            let mut out = vec![[0u8; 32]; tails.len()];
            k.sha256d_headers_midstate(&mid, &tails, &mut out);
            prop_assert_eq!(&out, &want, "{}", k.name());
        }
        let mut out = vec![[0u8; 32]; tails.len()];
        warppool_hash::sha256d_headers_midstate(&mid, &tails, &mut out);
        prop_assert_eq!(&out, &want);
    }

    /// A midstate over several blocks: the tail's length field must count the whole prefix.
    #[test]
    fn long_midstate_matches_sha2(
        prefix in prop::collection::vec(any::<u8>(), 0..=5usize).prop_flat_map(|_| {
            (1usize..=4).prop_flat_map(|n| prop::collection::vec(any::<u8>(), 64 * n))
        }),
        tails in prop::collection::vec(prop::array::uniform16(any::<u8>()), 0..=20),
    ) {
        let (mid, rest) = Midstate::from_prefix(&prefix);
        prop_assert!(rest.is_empty());
        let want: Vec<[u8; 32]> = tails.iter().map(|t| {
            let mut m = prefix.clone();
            m.extend_from_slice(t);
            ref_sha256d(&m)
        }).collect();
        for k in all_kernels() {
            let mut out = vec![[0u8; 32]; tails.len()];
            k.sha256d_headers_midstate(&mid, &tails, &mut out);
            prop_assert_eq!(&out, &want, "{}", k.name());
        }
    }

    #[test]
    fn streaming_matches_sha2(
        data in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(0usize..200, 0..8),
    ) {
        let mut h = Sha256::new();
        let mut rest = &data[..];
        for c in cuts {
            let c = c.min(rest.len());
            h.update(&rest[..c]);
            rest = &rest[c..];
        }
        h.update(rest);
        prop_assert_eq!(h.finalize(), ref_sha256(&data));
        prop_assert_eq!(warppool_hash::sha256d(&data), ref_sha256d(&data));
        // Streaming from a midstate of the whole-block prefix.
        let (mid, tail) = Midstate::from_prefix(&data);
        let mut h = Sha256::from_midstate(mid);
        h.update(tail);
        prop_assert_eq!(h.finalize(), ref_sha256(&data));
    }

    #[test]
    fn compress_matches_sha2(
        blocks in prop::collection::vec(prop::array::uniform32(any::<u8>()), 0..10),
    ) {
        let blocks: Vec<[u8; 64]> = blocks.chunks(2).map(|c| {
            let mut b = [0u8; 64];
            b[..32].copy_from_slice(&c[0]);
            b[32..].copy_from_slice(c.get(1).unwrap_or(&c[0]));
            b
        }).collect();
        let mut want = warppool_hash::IV;
        sha2::block_api::compress256(&mut want, &blocks);
        for k in all_kernels() {
            let mut s = warppool_hash::IV;
            k.compress(&mut s, &blocks);
            prop_assert_eq!(s, want, "{}", k.name());
        }
    }
}

#[test]
fn every_batch_length_0_to_40() {
    let mut hs = [[0u8; 80]; 40];
    let mut ns = [[0u8; 64]; 40];
    let mut ts = [[0u8; 16]; 40];
    for i in 0..40 {
        for (j, b) in hs[i].iter_mut().enumerate() {
            *b = (i * 131 + j * 7) as u8;
        }
        for (j, b) in ns[i].iter_mut().enumerate() {
            *b = (i * 17 + j * 3) as u8;
        }
        ts[i].copy_from_slice(&hs[i][64..]);
    }
    let first: [u8; 64] = hs[0][..64].try_into().unwrap();
    let mid = Midstate::from_blocks(&[first]);
    for k in all_kernels() {
        for len in 0..=40 {
            let mut out = [[0u8; 32]; 40];
            k.sha256d_headers(&hs[..len], &mut out[..len]);
            for i in 0..len {
                assert_eq!(
                    out[i],
                    ref_sha256d(&hs[i]),
                    "{} headers len {len}",
                    k.name()
                );
            }
            k.sha256d_64(&ns[..len], &mut out[..len]);
            for i in 0..len {
                assert_eq!(out[i], ref_sha256d(&ns[i]), "{} nodes len {len}", k.name());
            }
            k.sha256d_headers_midstate(&mid, &ts[..len], &mut out[..len]);
            for i in 0..len {
                let mut h = hs[0];
                h[64..].copy_from_slice(&ts[i]);
                assert_eq!(out[i], ref_sha256d(&h), "{} midstate len {len}", k.name());
            }
        }
    }
}
