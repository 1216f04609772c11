//! Time stretching of 8 kHz speech by whole pitch periods, for a jitter buffer that grows or
//! shrinks its delay without dropping words.
//!
//! Both operations work in place on the front of a sample buffer: [`shorten`] cross-fades one
//! period into the next and removes one period (NetEq's "accelerate"), [`lengthen`] repeats one
//! period with a cross-fade (its "preemptive expand"). A period is only found where the signal
//! repeats itself ([`find_period`]); silence needs no period and may be cut or padded freely.
//! No allocation as long as the buffer has the capacity for [`lengthen`]'s growth.

/// Shortest pitch period searched, in 8 kHz samples (2.5 ms, 400 Hz).
pub const MIN_PERIOD: usize = 20;
/// Longest pitch period searched, in 8 kHz samples (15 ms, 67 Hz).
pub const MAX_PERIOD: usize = 120;
/// Mean square below which a stretch of audio counts as silence (about -60 dBov: quiet speech
/// must not be cut).
const SILENT_MEAN_SQUARE: i64 = 30 * 30;

/// A repeating stretch at the front of a buffer: `period` samples, and how alike one period is to
/// the next (normalized correlation, 1.0 is identical).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Period {
    /// Length in samples.
    pub period: usize,
    /// Normalized correlation of `x[..period]` with `x[period..2 * period]`.
    pub correlation: f32,
}

/// The best pitch period at the front of `x`, searched from [`MIN_PERIOD`] to [`MAX_PERIOD`]
/// (and to half of `x`); `None` when `x` is shorter than two shortest periods.
pub fn find_period(x: &[i16]) -> Option<Period> {
    let max = MAX_PERIOD.min(x.len() / 2);
    if max < MIN_PERIOD {
        return None;
    }
    let mut best: Option<Period> = None;
    for period in MIN_PERIOD..=max {
        let correlation = correlation(&x[..period], &x[period..2 * period]);
        if best.is_none_or(|b| correlation > b.correlation) {
            best = Some(Period {
                period,
                correlation,
            });
        }
    }
    best
}

/// Whether `x` is quiet enough to cut or pad without looking for a period.
pub fn is_silent(x: &[i16]) -> bool {
    if x.is_empty() {
        return true;
    }
    let sum: i64 = x.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    sum / x.len() as i64 <= SILENT_MEAN_SQUARE
}

/// Removes `count` samples near the front of `buf`: `buf[..fade]` cross-fades into
/// `buf[count..count + fade]`, and the `count` samples between are gone. With `count == fade ==
/// period` this drops one pitch period. Returns false (and leaves `buf` alone) when `buf` is
/// shorter than `count + fade`.
pub fn shorten(buf: &mut Vec<i16>, count: usize, fade: usize) -> bool {
    if count == 0 || buf.len() < count + fade {
        return false;
    }
    for i in 0..fade {
        let w = (i + 1) as f32 / (fade + 1) as f32;
        let mixed = f32::from(buf[i]) * (1.0 - w) + f32::from(buf[count + i]) * w;
        buf[i] = mixed as i16;
    }
    buf.drain(fade..fade + count);
    true
}

/// Inserts `count` samples near the front of `buf`: after `buf[..count]` comes a cross-fade from
/// `buf[count..count + fade]` back to `buf[..fade]`, then `buf[fade..]` again. With `count == fade
/// == period` this repeats one pitch period. Returns false (and leaves `buf` alone) when `buf` is
/// shorter than `count + fade` or `fade > count`.
pub fn lengthen(buf: &mut Vec<i16>, count: usize, fade: usize) -> bool {
    let len = buf.len();
    if count == 0 || fade > count || len < count + fade {
        return false;
    }
    buf.resize(len + count, 0);
    buf.copy_within(fade..len, fade + count);
    // buf[..count] still holds the original front; buf[count..count + fade] the original
    // buf[count..count + fade], untouched by the move (it starts at fade + count).
    for i in 0..fade {
        let w = (i + 1) as f32 / (fade + 1) as f32;
        let mixed = f32::from(buf[count + i]) * (1.0 - w) + f32::from(buf[i]) * w;
        buf[count + i] = mixed as i16;
    }
    true
}

fn correlation(a: &[i16], b: &[i16]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0i64, 0i64, 0i64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (i64::from(x), i64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0 || bb == 0 {
        return 0.0;
    }
    (ab as f64 / ((aa as f64) * (bb as f64)).sqrt()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(period: usize, len: usize) -> Vec<i16> {
        (0..len)
            .map(|i| {
                let phase = (i % period) as f32 / period as f32;
                (8000.0 * (2.0 * std::f32::consts::PI * phase).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn finds_the_period_of_a_tone() {
        let x = tone(57, 320);
        let p = find_period(&x).expect("period");
        assert_eq!(p.period, 57);
        assert!(p.correlation > 0.99);
        assert!(find_period(&x[..30]).is_none());
    }

    #[test]
    fn shorten_by_a_period_keeps_the_tone_continuous() {
        let mut x = tone(40, 320);
        assert!(shorten(&mut x, 40, 40));
        assert_eq!(x.len(), 280);
        // Removing a whole period of a pure tone leaves the same tone.
        let reference = tone(40, 280);
        for (a, b) in x.iter().zip(&reference) {
            assert!((i32::from(*a) - i32::from(*b)).abs() <= 2, "{a} vs {b}");
        }
    }

    #[test]
    fn lengthen_by_a_period_keeps_the_tone_continuous() {
        let mut x = tone(40, 320);
        x.reserve(40);
        assert!(lengthen(&mut x, 40, 40));
        assert_eq!(x.len(), 360);
        let reference = tone(40, 360);
        for (a, b) in x.iter().zip(&reference) {
            assert!((i32::from(*a) - i32::from(*b)).abs() <= 2, "{a} vs {b}");
        }
    }

    #[test]
    fn refuses_short_buffers_and_judges_silence() {
        let mut x = vec![5i16; 50];
        assert!(!shorten(&mut x, 40, 20));
        assert!(!lengthen(&mut x, 40, 20));
        assert_eq!(x.len(), 50);
        assert!(is_silent(&x));
        assert!(!is_silent(&tone(40, 160)));
    }
}
