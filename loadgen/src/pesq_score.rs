//! Listening-quality scores of a received stream against the speech that was sent: ITU-T P.862
//! raw score and its P.862.1 MOS-LQO (narrowband, 8 kHz), and the P.862.2 wideband MOS-LQO
//! (16 kHz), with the pure-Rust `pesq` crate (it passes the P.862 Annex A conformance data).
//!
//! The degraded signal is cut to the reference's span at the lag the correlation search found
//! ([`bridgepool_codecs::quality::align_and_compare`]), so PESQ's own alignment starts near the
//! answer; PESQ still realigns per utterance.

use serde::{Deserialize, Serialize};

/// PESQ of one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PesqScores {
    /// P.862 raw score (-0.5 to 4.5).
    pub raw: f64,
    /// P.862.1 MOS-LQO, narrowband (1 to 4.5 about).
    pub nb: f64,
    /// P.862.2 MOS-LQO, wideband (only for streams decoded to 16 kHz).
    pub wb: Option<f64>,
}

/// `signal` as the reference sees it: delayed by `lag` samples (positive: it lags), `len` long,
/// zero padded where it has nothing.
pub fn aligned(signal: &[i16], lag: isize, len: usize) -> Vec<i16> {
    (0..len)
        .map(|i| {
            let j = i as isize + lag;
            if j < 0 {
                0
            } else {
                signal.get(j as usize).copied().unwrap_or(0)
            }
        })
        .collect()
}

/// Peak level below which a signal counts as silence (about -72 dBFS): P.862's level alignment
/// has nothing to scale and the model would score digital silence as a perfect copy.
const SILENCE_PEAK: i16 = 8;

/// Refuses to score a silent signal (PESQ would call silence against speech excellent).
fn audible(reference: &[i16], degraded: &[i16]) -> Result<(), String> {
    let silent = |s: &[i16]| s.iter().all(|x| x.unsigned_abs() < SILENCE_PEAK as u16);
    if silent(reference) {
        return Err("the reference is silent".into());
    }
    if silent(degraded) {
        return Err("the received audio is silent".into());
    }
    Ok(())
}

/// P.862 and P.862.1 of `degraded` against `reference`, both 8 kHz and aligned.
pub fn narrowband(reference: &[i16], degraded: &[i16]) -> Result<(f64, f64), String> {
    audible(reference, degraded)?;
    let raw = pesq::pesq_8k(reference, degraded).map_err(|e| format!("P.862: {e}"))?;
    let raw = f64::from(raw);
    Ok((raw, f64::from(pesq::score::mos_lqo(raw))))
}

/// P.862.2 MOS-LQO of `degraded` against `reference`, both 16 kHz and aligned.
pub fn wideband(reference: &[i16], degraded: &[i16]) -> Result<f64, String> {
    audible(reference, degraded)?;
    pesq::pesq_wb(reference, degraded)
        .map(f64::from)
        .map_err(|e| format!("P.862.2: {e}"))
}

/// Narrowband scores, and wideband when both 16 kHz signals are given.
pub fn score(
    reference_8k: &[i16],
    degraded_8k: &[i16],
    wide: Option<(&[i16], &[i16])>,
) -> Result<PesqScores, String> {
    let (raw, nb) = narrowband(reference_8k, degraded_8k)?;
    let wb = match wide {
        Some((r, d)) => Some(wideband(r, d)?),
        None => None,
    };
    Ok(PesqScores { raw, nb, wb })
}
