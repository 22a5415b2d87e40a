//! The lane-parallel ("multi-buffer") SHA-256 algorithm shared by the AVX2 (8 lanes) and
//! AVX-512 (16 lanes) kernels: one independent message per 32-bit lane.
//!
//! [`multibuffer_kernel!`] expands inside a module that defines the vector type `V`, the lane
//! count `LANES` and the primitives `splat`, `add`, `load`, `store`, `bsig0`, `bsig1`, `ssig0`,
//! `ssig1`, `ch` and `maj`, all compiled for the same target features. The expanded functions
//! are safe `#[target_feature]` functions: callers outside the module must check detection.

/// One SHA-256 round on lane vectors; updates `$d` and `$h` in place (names rotate per round).
macro_rules! mb_round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $wk:expr) => {
        let t1 = add(add(add($h, bsig1($e)), ch($e, $f, $g)), $wk);
        let t2 = add(bsig0($a), maj($a, $b, $c));
        $d = add($d, t1);
        $h = add(t1, t2);
    };
}

/// Sixteen rounds on the state array `$s`; `$wk!(base, r)` yields `W + K` of round `base + r`.
macro_rules! mb_rounds16 {
    ($s:ident, $wk:ident, $base:expr) => {
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = $s;
        mb_round!(a, b, c, d, e, f, g, h, $wk!($base, 0));
        mb_round!(h, a, b, c, d, e, f, g, $wk!($base, 1));
        mb_round!(g, h, a, b, c, d, e, f, $wk!($base, 2));
        mb_round!(f, g, h, a, b, c, d, e, $wk!($base, 3));
        mb_round!(e, f, g, h, a, b, c, d, $wk!($base, 4));
        mb_round!(d, e, f, g, h, a, b, c, $wk!($base, 5));
        mb_round!(c, d, e, f, g, h, a, b, $wk!($base, 6));
        mb_round!(b, c, d, e, f, g, h, a, $wk!($base, 7));
        mb_round!(a, b, c, d, e, f, g, h, $wk!($base, 8));
        mb_round!(h, a, b, c, d, e, f, g, $wk!($base, 9));
        mb_round!(g, h, a, b, c, d, e, f, $wk!($base, 10));
        mb_round!(f, g, h, a, b, c, d, e, $wk!($base, 11));
        mb_round!(e, f, g, h, a, b, c, d, $wk!($base, 12));
        mb_round!(d, e, f, g, h, a, b, c, $wk!($base, 13));
        mb_round!(c, d, e, f, g, h, a, b, $wk!($base, 14));
        mb_round!(b, c, d, e, f, g, h, a, $wk!($base, 15));
        $s = [a, b, c, d, e, f, g, h];
    };
}

macro_rules! multibuffer_kernel {
    ($feat:literal) => {
        use $crate::IV;
        use $crate::kernel::consts::{DIGEST_PAD, HEADER_BITS, K, PAD64_WK, tail_words};

        /// Sixteen message words per lane, word-major.
        type Msg = [V; 16];

        /// Compresses one data block per lane into `st` (with the feed-forward).
        #[inline]
        #[target_feature(enable = $feat)]
        fn compress(st: &mut [V; 8], w: &mut Msg) {
            let mut s = *st;
            macro_rules! data_wk {
                ($base:expr, $r:literal) => {
                    add(w[$r], splat(K[$base + $r]))
                };
            }
            for blk in 0..4 {
                if blk > 0 {
                    for i in 0..16 {
                        let s0 = ssig0(w[(i + 1) & 15]);
                        let s1 = ssig1(w[(i + 14) & 15]);
                        w[i] = add(add(w[i], s0), add(w[(i + 9) & 15], s1));
                    }
                }
                mb_rounds16!(s, data_wk, 16 * blk);
            }
            for (x, v) in st.iter_mut().zip(s) {
                *x = add(*x, v);
            }
        }

        /// Compresses a block whose `W + K` is a compile-time constant.
        #[inline]
        #[target_feature(enable = $feat)]
        fn compress_const(st: &mut [V; 8], wk: &[u32; 64]) {
            let mut s = *st;
            macro_rules! const_wk {
                ($base:expr, $r:literal) => {
                    splat(wk[$base + $r])
                };
            }
            for blk in 0..4 {
                mb_rounds16!(s, const_wk, 16 * blk);
            }
            for (x, v) in st.iter_mut().zip(s) {
                *x = add(*x, v);
            }
        }

        /// Transposes `LANES` blocks of big-endian words into lane vectors. `words(j, i)` is
        /// word `i` of lane `j`'s block.
        #[inline]
        #[target_feature(enable = $feat)]
        fn transpose(words: &[[u32; 16]; LANES]) -> Msg {
            let mut t = [[0u32; LANES]; 16];
            for (j, lane) in words.iter().enumerate() {
                for (i, &x) in lane.iter().enumerate() {
                    t[i][j] = x;
                }
            }
            let mut w = [splat(0); 16];
            for (v, row) in w.iter_mut().zip(&t) {
                *v = load(row);
            }
            w
        }

        fn be_words<const B: usize>(bytes: &[u8; B], out: &mut [u32]) {
            let (c, _) = bytes.as_chunks::<4>();
            for (o, b) in out.iter_mut().zip(c) {
                *o = u32::from_be_bytes(*b);
            }
        }

        /// The lane vector of a message whose every lane has the same word.
        #[inline]
        #[target_feature(enable = $feat)]
        fn tail_block(tails: &[[u8; 16]; LANES], len_bits: u64) -> Msg {
            let mut words = [[0u32; 16]; LANES];
            for (w, t) in words.iter_mut().zip(tails) {
                be_words(t, &mut w[..4]);
            }
            let mut m = transpose(&words);
            let pad = tail_words(len_bits);
            for (v, &p) in m[4..].iter_mut().zip(&pad) {
                *v = splat(p);
            }
            m
        }

        /// Second SHA-256 over the digests in `st`, byte-serialised into `out`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn finish(st: &[V; 8], out: &mut [[u8; 32]; LANES]) {
            let mut w = [splat(0); 16];
            w[..8].copy_from_slice(st);
            for (v, &p) in w[8..].iter_mut().zip(&DIGEST_PAD) {
                *v = splat(p);
            }
            let mut s2 = [splat(0); 8];
            for (v, &x) in s2.iter_mut().zip(&IV) {
                *v = splat(x);
            }
            compress(&mut s2, &mut w);
            for (i, v) in s2.iter().enumerate() {
                let lanes = store(*v);
                for (o, x) in out.iter_mut().zip(lanes) {
                    let (c, _) = o.as_chunks_mut::<4>();
                    c[i] = x.to_be_bytes();
                }
            }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn iv() -> [V; 8] {
            let mut s = [splat(0); 8];
            for (v, &x) in s.iter_mut().zip(&IV) {
                *v = splat(x);
            }
            s
        }

        /// sha256d of `LANES` 80-byte headers.
        #[target_feature(enable = $feat)]
        pub(crate) fn headers(h: &[[u8; 80]; LANES], out: &mut [[u8; 32]; LANES]) {
            let mut words = [[0u32; 16]; LANES];
            for (w, x) in words.iter_mut().zip(h) {
                be_words(x, w);
            }
            let mut st = iv();
            let mut m = transpose(&words);
            compress(&mut st, &mut m);
            let mut tails = [[0u8; 16]; LANES];
            for (t, x) in tails.iter_mut().zip(h) {
                let (_, last) = x.split_last_chunk::<16>().unwrap_or((&[], &[0; 16]));
                *t = *last;
            }
            let mut m = tail_block(&tails, HEADER_BITS);
            compress(&mut st, &mut m);
            finish(&st, out);
        }

        /// sha256d of `LANES` 64-byte nodes.
        #[target_feature(enable = $feat)]
        pub(crate) fn nodes(n: &[[u8; 64]; LANES], out: &mut [[u8; 32]; LANES]) {
            let mut words = [[0u32; 16]; LANES];
            for (w, x) in words.iter_mut().zip(n) {
                be_words(x, w);
            }
            let mut st = iv();
            let mut m = transpose(&words);
            compress(&mut st, &mut m);
            compress_const(&mut st, &PAD64_WK);
            finish(&st, out);
        }

        /// sha256d of `LANES` messages sharing the midstate `mid`, each ending in a 16-byte
        /// tail; the whole message is `len_bits` long.
        #[target_feature(enable = $feat)]
        pub(crate) fn headers_midstate(
            mid: &[u32; 8],
            len_bits: u64,
            tails: &[[u8; 16]; LANES],
            out: &mut [[u8; 32]; LANES],
        ) {
            let mut st = [splat(0); 8];
            for (v, &x) in st.iter_mut().zip(mid) {
                *v = splat(x);
            }
            let mut m = tail_block(tails, len_bits);
            compress(&mut st, &mut m);
            finish(&st, out);
        }
    };
}
