//! The sampler's arithmetic: jemalloc's per-thread random numbers and the
//! geometric draw of the bytes until the next sample, and the natural
//! logarithm and exponential they need (`core` has neither; the crate
//! links no math library).

/// One step of jemalloc's 64-bit linear congruential generator; returns
/// the top `lg_range` bits (1..=64) of the new state.
pub(crate) fn prng_lg_range(state: &mut u64, lg_range: u32) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> (64 - lg_range)
}

/// Bytes until the next sample, drawn as jemalloc 5.3 draws them: a
/// geometric variable with mean 2^`lg_sample` (each byte starts a sample
/// with probability 2^-`lg_sample`), i.e. floor(ln(u) / ln(1 - p)) + 1 for
/// `u` uniform in (0, 1]. `lg_sample` 0 samples every allocation.
pub(crate) fn sample_wait(state: &mut u64, lg_sample: u32) -> u64 {
    if lg_sample == 0 {
        return 1;
    }
    let u = uniform(state);
    let p = 1.0 / (1u64 << lg_sample.min(63)) as f64;
    let w = ln(u) / ln1m(p);
    // Saturating: a u of 2^-53 at lg_sample 62 is still finite.
    (w as u64).saturating_add(1)
}

/// Pops of a class of `size` bytes until its next sample, for the thread
/// caches' per-class sampling (`tcache::sample`): a geometric variable
/// with success probability 1 - e^(-size / 2^`lg_sample`), drawn as
/// floor(-ln(u) 2^`lg_sample` / size) + 1 for `u` uniform in (0, 1] (the
/// number of `size`-byte steps that an exponential wait of mean
/// 2^`lg_sample` bytes reaches into). `lg_sample` 0 samples every pop.
pub(crate) fn sample_pops(state: &mut u64, lg_sample: u32, size: usize) -> u64 {
    if lg_sample == 0 {
        return 1;
    }
    let u = uniform(state);
    let mean = (1u64 << lg_sample.min(63)) as f64;
    let w = -ln(u) * (mean / size.max(1) as f64);
    // Saturating (`as`): u = 2^-53 at lg_sample 63 is above 2^64.
    (w as u64).saturating_add(1)
}

/// A uniform draw in (0, 1], from 53 random bits (0 stands for 1).
fn uniform(state: &mut u64) -> f64 {
    let r = prng_lg_range(state, 53);
    if r == 0 {
        1.0
    } else {
        r as f64 * (1.0 / 9007199254740992.0)
    }
}

/// ln(1 - p) for small p, without losing p to rounding (series).
fn ln1m(p: f64) -> f64 {
    if p > 0.25 {
        return ln(1.0 - p);
    }
    // -(p + p^2/2 + p^3/3 + ...): p <= 1/4, 40 terms reach 2^-80.
    let mut sum = 0.0;
    let mut term = p;
    for k in 1..=40 {
        sum += term / k as f64;
        term *= p;
    }
    -sum
}

const LN2: f64 = core::f64::consts::LN_2;

/// Natural logarithm of a positive finite `x` (relative error below
/// 1e-15): x = m * 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s)
/// with s = (m - 1) / (m + 1), |s| < 0.172.
pub(crate) fn ln(x: f64) -> f64 {
    if x <= 0.0 || x.is_nan() {
        return f64::NEG_INFINITY;
    }
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64;
    let mut mbits = bits & ((1u64 << 52) - 1);
    if e == 0 {
        // Subnormal: normalise.
        let shift = mbits.leading_zeros() as i64 - 11;
        mbits = (mbits << shift) & ((1u64 << 52) - 1);
        e = 1 - shift;
    }
    let mut m = f64::from_bits(mbits | (1023u64 << 52));
    let mut exp = e - 1023;
    if m > core::f64::consts::SQRT_2 {
        m /= 2.0;
        exp += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    // atanh(s) = s (1 + s^2/3 + s^4/5 + ...); s^2 < 0.03, 14 terms suffice.
    let mut sum = 0.0;
    let mut pow = 1.0;
    for k in 0..14 {
        sum += pow / (2 * k + 1) as f64;
        pow *= s2;
    }
    2.0 * s * sum + exp as f64 * LN2
}

/// e^x for x in a range where it is finite (relative error below 1e-15):
/// x = k ln 2 + r with |r| <= ln2/2, e^r by its Taylor series.
pub(crate) fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    if x < -745.0 {
        return 0.0;
    }
    let k = round(x / LN2);
    // ln 2 in two parts, so that k ln 2 is exact enough for large k.
    let r = (x - k * 6.931_471_803_691_238e-1) - k * 1.908_214_929_270_587_7e-10;
    let mut sum = 1.0;
    let mut term = 1.0;
    for n in 1..=20 {
        term *= r / n as f64;
        sum += term;
    }
    // Scale by 2^k in two steps, so that neither factor overflows.
    let k = k as i64;
    let half = k / 2;
    sum * pow2(half) * pow2(k - half)
}

fn pow2(k: i64) -> f64 {
    f64::from_bits(((k + 1023).clamp(1, 2046) as u64) << 52)
}

/// Rounds half away from zero.
pub(crate) fn round(x: f64) -> f64 {
    let t = x as i64 as f64;
    if x - t >= 0.5 {
        t + 1.0
    } else if t - x >= 0.5 {
        t - 1.0
    } else {
        t
    }
}

/// jeprof's and jemalloc's unbiasing of sampled counts: a sample stands
/// for 1 / (1 - e^(-avg / period)) allocations of its average size.
pub(crate) fn scale(objs: u64, bytes: u64, period: u64) -> (u64, u64) {
    if objs == 0 || period <= 1 {
        return (objs, bytes);
    }
    let ratio = (bytes as f64 / objs as f64) / period as f64;
    let factor = 1.0 / (1.0 - exp(-ratio));
    (
        round(objs as f64 * factor) as u64,
        round(bytes as f64 * factor) as u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_and_exp_are_accurate() {
        for &x in &[
            1e-300f64, 1e-10, 0.001, 0.5, 0.9999, 1.0, 1.5, 2.0, 10.0, 1e10, 1e300,
        ] {
            let want = x.ln();
            assert!(
                (ln(x) - want).abs() <= 1e-14 * want.abs().max(1.0),
                "ln {x}"
            );
        }
        for &x in &[
            -700.0f64, -20.0, -1.0, -1e-9, 0.0, 1e-9, 0.5, 1.0, 5.0, 300.0,
        ] {
            let want = x.exp();
            assert!((exp(x) - want).abs() <= 1e-14 * want, "exp {x}");
        }
        let p = 1.0f64 / 524288.0;
        let want = (-p).ln_1p();
        assert!((ln1m(p) - want).abs() <= 1e-15 * want.abs());
    }

    #[test]
    fn waits_have_the_mean_of_the_rate() {
        let mut st = 42;
        for lg in [4u32, 10, 19] {
            let n = 200_000;
            let sum: f64 = (0..n).map(|_| sample_wait(&mut st, lg) as f64).sum();
            let mean = sum / n as f64;
            let want = (1u64 << lg) as f64;
            // The mean of n draws has standard deviation want / sqrt(n).
            assert!(
                (mean - want).abs() < 5.0 * want / (n as f64).sqrt(),
                "{lg}: {mean}"
            );
        }
        assert_eq!(sample_wait(&mut st, 0), 1);
    }

    #[test]
    fn pops_are_geometric_with_the_class_probability() {
        let mut st = 7;
        for (lg, size) in [(10u32, 16usize), (19, 8), (19, 3072), (14, 40960)] {
            let n = 200_000;
            let p = 1.0 - exp(-(size as f64) / (1u64 << lg) as f64);
            let want = 1.0 / p;
            let draws: std::vec::Vec<u64> =
                (0..n).map(|_| sample_pops(&mut st, lg, size)).collect();
            let mean = draws.iter().map(|&w| w as f64).sum::<f64>() / n as f64;
            // Standard deviation of the mean: sqrt(1 - p) / p / sqrt(n).
            let sd = (1.0 - p).sqrt() / p / (n as f64).sqrt();
            assert!(
                (mean - want).abs() < 5.0 * sd.max(1e-9),
                "{lg} {size}: {mean} vs {want}"
            );
            // P(W = 1) = p.
            let ones = draws.iter().filter(|&&w| w == 1).count() as f64 / n as f64;
            let sd1 = (p * (1.0 - p) / n as f64).sqrt();
            assert!(
                (ones - p).abs() < 5.0 * sd1.max(1e-9),
                "{lg} {size}: P(1) {ones} vs {p}"
            );
            assert!(draws.iter().all(|&w| w >= 1));
        }
        assert_eq!(sample_pops(&mut st, 0, 8), 1);
        assert!(sample_pops(&mut st, 63, 8) >= 1);
    }

    #[test]
    fn scaling_as_jeprof() {
        // One sample of the sampling period stands for 1 / (1 - 1/e).
        let (o, b) = scale(1, 524288, 524288);
        assert_eq!(o, 2);
        assert_eq!(b, 829411);
        assert_eq!(scale(0, 0, 524288), (0, 0));
    }
}
