//! How alike two recordings are, for tests and the loadgen: the degraded signal is aligned to the
//! reference (a transcoder adds delay), then compared second by second, each second allowed to
//! shift a little (concealment and playout adjustments move audio by a few milliseconds).

/// The outcome of a comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Similarity {
    /// Samples the degraded signal lags the reference by (negative: it leads).
    pub lag: isize,
    /// Energy-weighted mean of per-second normalized correlations (1.0: identical shape).
    pub correlation: f64,
    /// Signal to error ratio at the global lag, after matching gain, in dB.
    pub snr_db: f64,
}

/// Per-second refinement around the global lag, in samples.
const LOCAL_SHIFT: isize = 80;
/// Coarse search works on the signal averaged over this many samples.
const DECIMATE: usize = 8;
/// Fine search around the coarse lag, in samples.
const FINE_SPAN: isize = 64;

/// Aligns `degraded` to `reference` (searching lags within `max_lag` samples both ways) and
/// compares them. Allocates; not for the packet path.
pub fn align_and_compare(reference: &[i16], degraded: &[i16], max_lag: usize) -> Similarity {
    let r: Vec<f64> = reference.iter().map(|&s| f64::from(s)).collect();
    let d: Vec<f64> = degraded.iter().map(|&s| f64::from(s)).collect();
    let lag = global_lag(&r, &d, max_lag as isize);
    let second = 8000usize.min(r.len().max(1));
    let mut weighted = 0.0;
    let mut weights = 0.0;
    for start in (0..r.len()).step_by(second) {
        let end = (start + second).min(r.len());
        let seg = &r[start..end];
        let energy: f64 = seg.iter().map(|x| x * x).sum();
        if energy < 1e3 * seg.len() as f64 {
            continue; // silence says nothing about shape
        }
        let best = (-LOCAL_SHIFT..=LOCAL_SHIFT)
            .map(|shift| correlation_at(seg, &d, start as isize + lag + shift))
            .fold(f64::MIN, f64::max);
        weighted += best.max(0.0) * energy;
        weights += energy;
    }
    Similarity {
        lag,
        correlation: if weights > 0.0 {
            weighted / weights
        } else {
            0.0
        },
        snr_db: snr_at(&r, &d, lag),
    }
}

fn global_lag(r: &[f64], d: &[f64], max_lag: isize) -> isize {
    let decimate = |x: &[f64]| -> Vec<f64> {
        x.chunks(DECIMATE)
            .map(|c| c.iter().sum::<f64>() / c.len() as f64)
            .collect()
    };
    // The first ten seconds are plenty to find the delay.
    let window = r.len().min(80_000);
    let rc = decimate(&r[..window]);
    let dc = decimate(d);
    let coarse_max = max_lag / DECIMATE as isize;
    let coarse = (-coarse_max..=coarse_max)
        .max_by(|a, b| correlation_at(&rc, &dc, *a).total_cmp(&correlation_at(&rc, &dc, *b)))
        .unwrap_or(0)
        * DECIMATE as isize;
    // The coarse lag can be off by a pitch period (averaging keeps the voice's fundamental), so
    // the fine search spans more than one: 8 ms covers pitches down to 125 Hz.
    let fine_window = &r[..window];
    (coarse - FINE_SPAN..=coarse + FINE_SPAN)
        .max_by(|a, b| {
            correlation_at(fine_window, d, *a).total_cmp(&correlation_at(fine_window, d, *b))
        })
        .unwrap_or(coarse)
}

/// Normalized correlation of `seg` against `d` starting at `offset` (out-of-range samples are 0).
fn correlation_at(seg: &[f64], d: &[f64], offset: isize) -> f64 {
    let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
    for (i, x) in seg.iter().enumerate() {
        let j = offset + i as isize;
        let y = if j >= 0 {
            d.get(j as usize).copied().unwrap_or(0.0)
        } else {
            0.0
        };
        xy += x * y;
        xx += x * x;
        yy += y * y;
    }
    if xx == 0.0 || yy == 0.0 {
        0.0
    } else {
        xy / (xx * yy).sqrt()
    }
}

fn snr_at(r: &[f64], d: &[f64], lag: isize) -> f64 {
    let aligned = |i: usize| {
        let j = lag + i as isize;
        if j >= 0 {
            d.get(j as usize).copied().unwrap_or(0.0)
        } else {
            0.0
        }
    };
    let (mut xy, mut yy) = (0.0, 0.0);
    for (i, x) in r.iter().enumerate() {
        let y = aligned(i);
        xy += x * y;
        yy += y * y;
    }
    let gain = if yy > 0.0 { xy / yy } else { 0.0 };
    let (mut signal, mut noise) = (0.0, 0.0);
    for (i, x) in r.iter().enumerate() {
        let e = x - gain * aligned(i);
        signal += x * x;
        noise += e * e;
    }
    if noise == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (signal / noise).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voice(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let env = (t * 2.0 * std::f64::consts::TAU).sin().abs();
                ((t * 300.0 * std::f64::consts::TAU).sin() * 8000.0 * env
                    + (t * 1130.0 * std::f64::consts::TAU).sin() * 3000.0 * env)
                    as i16
            })
            .collect()
    }

    #[test]
    fn finds_the_delay_and_scores_identity_high() {
        let r = voice(40_000);
        let mut d = vec![0i16; 237];
        d.extend_from_slice(&r);
        let s = align_and_compare(&r, &d, 2000);
        assert_eq!(s.lag, 237);
        assert!(s.correlation > 0.999, "{s:?}");
        assert!(s.snr_db > 60.0, "{s:?}");
    }

    #[test]
    fn unrelated_audio_scores_low() {
        let r = voice(40_000);
        let noise: Vec<i16> = (0..40_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 16) as i16)
            .collect();
        let s = align_and_compare(&r, &noise, 2000);
        assert!(s.correlation < 0.3, "{s:?}");
    }
}
