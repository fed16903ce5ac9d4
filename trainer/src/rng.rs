//! The trainer's one source of randomness.
//!
//! Every random decision the trainer makes (weight initialisation, the order of training
//! samples, crop offsets and flips of the augmentation, ...) is drawn from an [`Rng`] that was
//! derived from the run's `--seed`. Nothing uses OS entropy, the clock or thread scheduling, so a
//! run is reproducible from its seed alone.
//!
//! Streams that must not depend on how much randomness another part consumed (e.g. the
//! augmentation of batch 17 of epoch 3, produced on whichever CPU thread is free) are derived
//! with [`Rng::from_parts`]`(seed, &[purpose, epoch, batch])` or [`Rng::fork`], never by sharing
//! one generator between threads.
//!
//! The generator is xoshiro256** (Blackman & Vigna), seeded through splitmix64. It is not
//! cryptographic.

/// One splitmix64 step: advances `state` and returns a well-mixed 64-bit value.
#[inline]
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seedable xoshiro256** generator. Cloning it copies the state (both copies then produce
/// the same sequence); use [`Rng::fork`] for an independent stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
    /// Second value of the last Box-Muller pair, returned by the next [`Rng::normal`].
    spare_normal: Option<u32>,
}

impl Rng {
    /// A generator seeded from `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut s = [0u64; 4];
        for v in &mut s {
            *v = splitmix64(&mut sm);
        }
        // splitmix64 never yields four zero words in a row, but be explicit: the all-zero
        // state is the one state xoshiro cannot leave.
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng {
            s,
            spare_normal: None,
        }
    }

    /// A generator determined by `seed` and a path of integers, e.g.
    /// `Rng::from_parts(seed, &[AUGMENT, epoch, batch])`. Different paths give independent
    /// streams; the result does not depend on any other generator's use.
    pub fn from_parts(seed: u64, parts: &[u64]) -> Self {
        let mut h = seed;
        let mut acc = splitmix64(&mut h);
        for (i, &p) in parts.iter().enumerate() {
            // Mix the position in too, so that [a, b] and [b, a] differ.
            let mut st = acc ^ p.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ (i as u64 + 1);
            acc = splitmix64(&mut st);
        }
        Rng::new(acc)
    }

    /// An independent generator for sub-stream `stream`, derived from this generator's current
    /// state without advancing it. Forking the same state with the same `stream` gives the same
    /// generator; different streams give independent ones.
    pub fn fork(&self, stream: u64) -> Self {
        let mut h = self.s[0] ^ self.s[1].rotate_left(17) ^ self.s[2].rotate_left(31);
        h ^= self.s[3].rotate_left(47);
        let base = splitmix64(&mut h);
        Rng::from_parts(base, &[stream])
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// The next 32 random bits (the high half of [`Rng::next_u64`]).
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `[0, 1)` with 24 bits of precision (every value is exactly representable).
    #[inline]
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in `[0, 1)` as f64, 53 bits of precision.
    #[inline]
    pub fn uniform_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    #[inline]
    pub fn uniform_range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal (mean 0, variance 1) by the Box-Muller transform, computed in f64.
    /// Values come in pairs; the second of each pair is kept for the next call.
    pub fn normal(&mut self) -> f32 {
        if let Some(bits) = self.spare_normal.take() {
            return f32::from_bits(bits);
        }
        // u1 in (0, 1] so that ln(u1) is finite.
        let u1 = 1.0 - self.uniform_f64();
        let u2 = self.uniform_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        self.spare_normal = Some(((r * theta.sin()) as f32).to_bits());
        (r * theta.cos()) as f32
    }

    /// Normal with the given mean and standard deviation.
    #[inline]
    pub fn normal_with(&mut self, mean: f32, std: f32) -> f32 {
        mean + std * self.normal()
    }

    /// Uniform integer in `0..n`, without modulo bias (Lemire's method). Returns 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut m = (self.next_u64() as u128) * (n as u128);
        let mut low = m as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = (self.next_u64() as u128) * (n as u128);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// [`Rng::below`] for `usize`.
    #[inline]
    pub fn below_usize(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// A fair coin.
    #[inline]
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// Fisher-Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below_usize(i + 1);
            items.swap(i, j);
        }
    }

    /// A random permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        self.shuffle(&mut p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_and_distinct() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let mut c = Rng::new(43);
        let va: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let vc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
        assert_ne!(
            Rng::from_parts(1, &[2, 3]).next_u64(),
            Rng::from_parts(1, &[3, 2]).next_u64()
        );
        let r = Rng::new(7);
        assert_eq!(r.fork(1), r.fork(1));
        assert_ne!(r.fork(1), r.fork(2));
    }

    #[test]
    fn distributions() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let (mut s, mut s2) = (0f64, 0f64);
        for _ in 0..n {
            let x = r.normal() as f64;
            s += x;
            s2 += x * x;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[r.below(7) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        for _ in 0..10_000 {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
        }
        let mut p = r.permutation(100);
        p.sort_unstable();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
