//! RFC 4733 telephone-event payload (DTMF and other named events).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |     event     |E|R|  volume   |          duration             |
//! ```
//!
//! The reserved bit R is ignored on parse and written as zero. The duration is in RTP timestamp
//! units of the stream's clock; rescaling it between clocks is the session's job.

use thiserror::Error;

/// Why a telephone-event payload could not be parsed or written.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TelephoneEventError {
    /// Peer: the payload is shorter than 4 bytes.
    #[error("truncated telephone-event: need {expected} bytes, have {actual}")]
    Truncated {
        /// Bytes required.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// Caller: the output buffer is shorter than 4 bytes.
    #[error("output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes required.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// Caller: the volume does not fit in 6 bits.
    #[error("volume {volume} out of range 0..=63")]
    VolumeOutOfRange {
        /// The volume given.
        volume: u8,
    },
}

/// One telephone-event payload block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// The event code: 0-9, 10 `*`, 11 `#`, 12-15 `A`-`D` for DTMF (RFC 4733 3.2).
    pub event: u8,
    /// The E bit: this packet ends the event (it is usually sent three times).
    pub end: bool,
    /// Power level in -dBm0, 0..=63 (larger is quieter).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units, from the event's timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Length of one event block.
    pub const LEN: usize = 4;

    /// Reads the first 4 bytes of `payload`; shorter is an error, extra bytes are ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, TelephoneEventError> {
        let &[event, flags, d0, d1] =
            payload
                .first_chunk::<4>()
                .ok_or(TelephoneEventError::Truncated {
                    expected: Self::LEN,
                    actual: payload.len(),
                })?;
        Ok(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// Writes the 4-byte block at `out[0..]`; returns [`Self::LEN`].
    pub fn write(&self, out: &mut [u8]) -> Result<usize, TelephoneEventError> {
        if self.volume > 0x3F {
            return Err(TelephoneEventError::VolumeOutOfRange {
                volume: self.volume,
            });
        }
        let available = out.len();
        let out = out
            .first_chunk_mut::<4>()
            .ok_or(TelephoneEventError::BufferTooSmall {
                needed: Self::LEN,
                available,
            })?;
        let [d0, d1] = self.duration.to_be_bytes();
        *out = [self.event, (u8::from(self.end) << 7) | self.volume, d0, d1];
        Ok(Self::LEN)
    }

    /// The DTMF key of this event (`0`-`9`, `*`, `#`, `A`-`D`), if it is one.
    pub fn dtmf(&self) -> Option<char> {
        match self.event {
            0..=9 => Some(char::from(b'0' + self.event)),
            10 => Some('*'),
            11 => Some('#'),
            12..=15 => Some(char::from(b'A' + self.event - 12)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_bit_is_ignored() {
        let event = TelephoneEvent::parse(&[5, 0xCA, 0x01, 0x90]).unwrap();
        assert_eq!(
            event,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 400
            }
        );
        let mut out = [0u8; 4];
        assert_eq!(event.write(&mut out), Ok(4));
        assert_eq!(out, [5, 0x8A, 0x01, 0x90]);
    }

    #[test]
    fn dtmf_keys() {
        let key = |event| {
            TelephoneEvent {
                event,
                end: false,
                volume: 0,
                duration: 0,
            }
            .dtmf()
        };
        let keys: String = (0..16).filter_map(key).collect();
        assert_eq!(keys, "0123456789*#ABCD");
        assert_eq!(key(16), None);
    }
}
