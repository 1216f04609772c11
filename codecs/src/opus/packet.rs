//! What an Opus packet says about itself, read from its bytes (RFC 6716 section 3) without a
//! decoder: duration, and whether it carries in-band FEC for the previous frame.

use super::{OpusError, SampleRate};

/// Samples per channel the packet decodes to at `rate`.
pub fn packet_samples(payload: &[u8], rate: SampleRate) -> Result<usize, OpusError> {
    let toc = *payload
        .first()
        .ok_or(OpusError::InvalidPacket("empty payload"))?;
    let units = frame_count(payload)? * frame_units(toc);
    // RFC 6716 3.2.5: a packet carries at most 120 ms.
    if units > 4800 {
        return Err(OpusError::InvalidPacket("packet longer than 120 ms"));
    }
    Ok(units * rate.hz() as usize / 40_000)
}

/// Whether the packet's first frame carries LBRR (in-band FEC) data for the previous frame.
/// CELT-only packets never do. For SILK and hybrid frames the LBRR flags follow the per-frame
/// VAD flags among the first range-coded bits, which are coded with flat probabilities and so
/// equal the top bits of the frame's first byte.
pub fn packet_has_fec(payload: &[u8]) -> bool {
    let Some(&toc) = payload.first() else {
        return false;
    };
    let config = toc >> 3;
    if config >= 16 {
        return false; // CELT-only
    }
    let Some(first) = first_frame_byte(payload) else {
        return false;
    };
    // SILK frames per Opus frame: 10 ms and 20 ms carry one, 40 ms two, 60 ms three.
    let silk_frames = match config & 3 {
        2 => 2,
        3 => 3,
        _ => 1,
    };
    let stereo = toc & 0x04 != 0;
    let mid = (first >> (7 - silk_frames)) & 1 == 1;
    let side = stereo && (first >> (6 - 2 * silk_frames)) & 1 == 1;
    mid || side
}

/// Frame duration in units of 1/40000 s (2.5 ms = 100).
fn frame_units(toc: u8) -> usize {
    let config = toc >> 3;
    match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [400, 800, 1600, 2400][usize::from(config & 3)],
        // Hybrid: 10, 20 ms.
        12..=15 => [400, 800][usize::from(config & 1)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [100, 200, 400, 800][usize::from(config & 3)],
    }
}

fn frame_count(payload: &[u8]) -> Result<usize, OpusError> {
    match payload[0] & 3 {
        0 => Ok(1),
        1 | 2 => Ok(2),
        _ => {
            let count = payload.get(1).ok_or(OpusError::InvalidPacket(
                "code 3 packet without frame count",
            ))? & 0x3F;
            if count == 0 {
                return Err(OpusError::InvalidPacket("code 3 packet with zero frames"));
            }
            Ok(usize::from(count))
        }
    }
}

/// The first byte of the first frame's data, if that frame is not empty.
fn first_frame_byte(payload: &[u8]) -> Option<u8> {
    let mut i = 1;
    match payload[0] & 3 {
        0 | 1 => {}
        2 => {
            let len = *payload.get(i)?;
            i += if len >= 252 { 2 } else { 1 };
            let first_len = if len >= 252 {
                usize::from(len) + 4 * usize::from(*payload.get(2)?)
            } else {
                usize::from(len)
            };
            if first_len == 0 {
                return None;
            }
        }
        _ => {
            let header = *payload.get(i)?;
            i += 1;
            let vbr = header & 0x80 != 0;
            let padded = header & 0x40 != 0;
            let count = usize::from(header & 0x3F);
            if padded {
                loop {
                    let p = *payload.get(i)?;
                    i += 1;
                    if p != 255 {
                        break;
                    }
                }
            }
            if vbr {
                let mut first_len = None;
                for _ in 1..count {
                    let len = *payload.get(i)?;
                    let (size, used) = if len >= 252 {
                        (usize::from(len) + 4 * usize::from(*payload.get(i + 1)?), 2)
                    } else {
                        (usize::from(len), 1)
                    };
                    first_len.get_or_insert(size);
                    i += used;
                }
                if first_len == Some(0) {
                    return None;
                }
            }
        }
    }
    payload.get(i).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_from_the_toc() {
        // SILK NB 20 ms, one frame.
        assert_eq!(
            packet_samples(&[(1 << 3), 0xAA], SampleRate::Hz8000),
            Ok(160)
        );
        assert_eq!(
            packet_samples(&[(1 << 3), 0xAA], SampleRate::Hz48000),
            Ok(960)
        );
        // SILK NB 60 ms.
        assert_eq!(
            packet_samples(&[(3 << 3), 0xAA], SampleRate::Hz8000),
            Ok(480)
        );
        // CELT 2.5 ms, code 3 with 4 frames = 10 ms.
        assert_eq!(
            packet_samples(&[(16 << 3) | 3, 4, 0, 0], SampleRate::Hz8000),
            Ok(80)
        );
        // Two 20 ms frames (code 1) = 40 ms.
        assert_eq!(
            packet_samples(&[(1 << 3) | 1, 1, 2], SampleRate::Hz8000),
            Ok(320)
        );
        // 60 ms x 3 frames = 180 ms: too long.
        assert!(packet_samples(&[(3 << 3) | 3, 3, 0], SampleRate::Hz8000).is_err());
        assert!(packet_samples(&[], SampleRate::Hz8000).is_err());
        assert!(packet_samples(&[3], SampleRate::Hz8000).is_err());
    }

    #[test]
    fn fec_flag_position() {
        // SILK 20 ms mono: VAD bit then LBRR bit (bit 6 of the first byte).
        assert!(packet_has_fec(&[(1 << 3), 0b0100_0000]));
        assert!(!packet_has_fec(&[(1 << 3), 0b1000_0000]));
        // CELT-only never.
        assert!(!packet_has_fec(&[(16 << 3), 0xFF]));
        // Truncated or empty.
        assert!(!packet_has_fec(&[(1 << 3)]));
        assert!(!packet_has_fec(&[]));
    }
}
