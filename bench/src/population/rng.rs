//! The population's random numbers: SplitMix64 and the hash that seeds it
//! from (seed, authority code, index), so that any record can be drawn
//! again on its own, and the same seed gives the same population for as long
//! as benchmark results are compared.
use chrono::NaiveDate;

use super::draw::add_days;

pub(super) const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser: a bijection that spreads every input bit over the output.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(super) fn hash(seed: u64, code: &str, index: u64) -> u64 {
    let h = code
        .bytes()
        .fold(mix(seed.wrapping_add(GOLDEN_GAMMA)), |h, b| {
            mix(h ^ u64::from(b))
        });
    mix(h ^ mix(index.wrapping_add(GOLDEN_GAMMA)))
}

/// SplitMix64 (Steele, Lea and Flood, 2014), written out rather than taken from the `rand`
/// crate, whose generators and distributions may change output between versions: the same seed
/// must give the same population for as long as benchmark results are compared.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n` > 0) by multiply and shift; the bias is negligible for small `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64) < p * (1u64 << 53) as f64
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// From a list in order of popularity: the smaller of two draws, so earlier is likelier.
    pub(super) fn popular<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let n = items.len() as u64;
        items[self.below(n).min(self.below(n)) as usize]
    }

    /// A day from `first` to `last` inclusive (`first` if `last` is earlier).
    pub(super) fn between(&mut self, first: NaiveDate, last: NaiveDate) -> NaiveDate {
        let span = last.signed_duration_since(first).num_days().max(0) as u64;
        add_days(first, self.below(span + 1))
    }
}
