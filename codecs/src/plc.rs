//! Packet loss concealment for 8 kHz speech from a G.711 leg, in the manner of ITU-T G.711
//! Appendix I: a lost stretch is filled by repeating the last pitch period of what was received
//! (widening to two, then three periods so a long loss does not buzz), fading out after 10 ms and
//! silent after 60 ms; the first received audio after the loss is cross-faded from the repetition,
//! so the join does not click.
//!
//! The encoder downstream then codes speech-like audio where the gap was, instead of leaving the
//! Opus receiver to conceal a CELT or SILK stream it never saw. No allocation.

/// Received (and concealed) audio kept for pitch search and repetition: 48.75 ms, enough for
/// three of the longest periods plus the search window.
const HISTORY: usize = 390;
/// Shortest pitch period searched (5 ms, 200 Hz), as in Appendix I.
const MIN_PITCH: usize = 40;
/// Longest pitch period searched (15 ms, 67 Hz).
const MAX_PITCH: usize = 120;
/// Search window compared against one period earlier.
const WINDOW: usize = 120;
/// Full level for the first 10 ms of a loss.
const FULL_LEVEL: usize = 80;
/// Silent from 60 ms into a loss.
const SILENT_AFTER: usize = 480;
/// Longest cross-fade into received audio (10 ms).
const MAX_FADE: usize = 80;

/// Concealment state of one G.711 input stream.
#[derive(Clone, Debug)]
pub struct G711Plc {
    history: [i16; HISTORY],
    /// How much of `history` holds audio (the rest is silence from the start).
    filled: usize,
    /// Pitch period of the current loss.
    pitch: usize,
    /// Samples concealed in the current loss; 0 between losses.
    erased: usize,
    /// Read position in the repeated periods.
    offset: usize,
    /// The last three pitch periods before the loss.
    periods: [i16; 3 * MAX_PITCH],
}

impl Default for G711Plc {
    fn default() -> Self {
        Self::new()
    }
}

impl G711Plc {
    /// No history yet: a loss before any audio conceals with silence.
    pub fn new() -> Self {
        Self {
            history: [0; HISTORY],
            filled: 0,
            pitch: MIN_PITCH,
            erased: 0,
            offset: 0,
            periods: [0; 3 * MAX_PITCH],
        }
    }

    /// Whether a loss is being concealed (the next [`Self::good`] cross-fades).
    pub fn in_loss(&self) -> bool {
        self.erased > 0
    }

    /// Received audio, in order. Right after a loss its start is cross-faded from the
    /// concealment (the fade is longer the longer the loss was).
    pub fn good(&mut self, pcm: &mut [i16]) {
        if self.erased > 0 {
            let fade = (self.pitch / 4 + self.erased / 80 * 16)
                .min(MAX_FADE)
                .min(pcm.len());
            for (i, s) in pcm.iter_mut().take(fade).enumerate() {
                let synthetic = self.next_synthetic();
                let w = (i + 1) as f32 / (fade + 1) as f32;
                *s = (synthetic * (1.0 - w) + f32::from(*s) * w) as i16;
            }
            self.erased = 0;
        }
        self.remember(pcm);
    }

    /// Fills `out` with concealment for lost audio, continuing any loss already begun.
    pub fn conceal(&mut self, out: &mut [i16]) {
        if self.erased == 0 {
            self.begin();
        }
        for s in out.iter_mut() {
            let synthetic = self.next_synthetic();
            self.erased += 1;
            *s = synthetic as i16;
        }
        self.remember(out);
    }

    /// A new loss: the pitch of the last audio, and its last three periods to repeat.
    fn begin(&mut self) {
        self.pitch = self.find_pitch();
        let span = 3 * self.pitch;
        self.periods[..span].copy_from_slice(&self.history[HISTORY - span..]);
        self.offset = 0;
    }

    /// The next sample of the repetition at the loss's current level: one period for the first
    /// 10 ms, two to 20 ms, then three; full level for 10 ms, then a linear fade to silence at
    /// 60 ms.
    fn next_synthetic(&mut self) -> f32 {
        let used = match self.erased {
            0..80 => 1,
            80..160 => 2,
            _ => 3,
        };
        let span = used * self.pitch;
        let start = 3 * self.pitch - span;
        let sample = f32::from(self.periods[start + self.offset % span]);
        self.offset += 1;
        let gain = match self.erased {
            e if e < FULL_LEVEL => 1.0,
            e if e >= SILENT_AFTER => 0.0,
            e => 1.0 - (e - FULL_LEVEL) as f32 / (SILENT_AFTER - FULL_LEVEL) as f32,
        };
        sample * gain
    }

    /// The lag, 40 to 120 samples, at which the last audio best matches itself.
    fn find_pitch(&self) -> usize {
        if self.filled < WINDOW + MAX_PITCH {
            return MIN_PITCH;
        }
        let recent = &self.history[HISTORY - WINDOW..];
        let mut best = (MIN_PITCH, f64::MIN);
        for lag in MIN_PITCH..=MAX_PITCH {
            let earlier = &self.history[HISTORY - WINDOW - lag..HISTORY - lag];
            let (mut xy, mut yy) = (0.0f64, 0.0f64);
            for (&x, &y) in recent.iter().zip(earlier) {
                xy += f64::from(x) * f64::from(y);
                yy += f64::from(y) * f64::from(y);
            }
            let score = if yy > 0.0 { xy / yy.sqrt() } else { 0.0 };
            if score > best.1 {
                best = (lag, score);
            }
        }
        best.0
    }

    fn remember(&mut self, pcm: &[i16]) {
        let n = pcm.len().min(HISTORY);
        self.history.copy_within(n.., 0);
        self.history[HISTORY - n..].copy_from_slice(&pcm[pcm.len() - n..]);
        self.filled = (self.filled + n).min(HISTORY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voiced(period: usize, len: usize, from: usize) -> Vec<i16> {
        (from..from + len)
            .map(|i| {
                let p = (i % period) as f32 / period as f32;
                let x = 2.0 * std::f32::consts::PI * p;
                (6000.0 * x.sin() + 2000.0 * (2.0 * x).sin()) as i16
            })
            .collect()
    }

    fn correlation(a: &[i16], b: &[i16]) -> f64 {
        let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (f64::from(x), f64::from(y));
            xy += x * y;
            xx += x * x;
            yy += y * y;
        }
        xy / (xx * yy).sqrt()
    }

    #[test]
    fn a_short_loss_continues_the_voice() {
        let mut plc = G711Plc::new();
        let mut before = voiced(73, 400, 0);
        plc.good(&mut before);
        assert!(!plc.in_loss());
        let mut hidden = [0i16; 80];
        plc.conceal(&mut hidden);
        assert!(plc.in_loss());
        assert_eq!(plc.pitch, 73);
        let truth = voiced(73, 80, 400);
        assert!(correlation(&hidden, &truth) > 0.95);
    }

    #[test]
    fn a_long_loss_fades_to_silence() {
        let mut plc = G711Plc::new();
        plc.good(&mut voiced(50, 400, 0));
        let mut hidden = [0i16; 560];
        plc.conceal(&mut hidden);
        let peak = |s: &[i16]| s.iter().map(|x| x.unsigned_abs()).max().unwrap_or(0);
        assert!(peak(&hidden[..80]) > 5000);
        assert!(peak(&hidden[300..380]) < peak(&hidden[..80]) / 2);
        assert_eq!(peak(&hidden[480..]), 0);
    }

    #[test]
    fn recovery_is_cross_faded_and_clean_audio_untouched() {
        let mut plc = G711Plc::new();
        let mut first = voiced(60, 400, 0);
        let original = first.clone();
        plc.good(&mut first);
        assert_eq!(first, original, "no loss: received audio is left alone");
        let mut hidden = [0i16; 160];
        plc.conceal(&mut hidden);
        // The next packet starts half a period off the repetition's phase: the fade hides it.
        let mut next = voiced(60, 160, 590);
        let raw = next.clone();
        plc.good(&mut next);
        assert!(!plc.in_loss());
        assert_ne!(next[..10], raw[..10]);
        let step = (i32::from(next[0]) - i32::from(hidden[159])).abs();
        let raw_step = (i32::from(raw[0]) - i32::from(hidden[159])).abs();
        assert!(step < raw_step, "{step} vs {raw_step}");
        assert_eq!(next[100..], raw[100..]);
    }

    #[test]
    fn a_loss_before_any_audio_is_silence() {
        let mut plc = G711Plc::new();
        let mut hidden = [1i16; 160];
        plc.conceal(&mut hidden);
        assert!(hidden.iter().all(|&s| s == 0));
    }
}
