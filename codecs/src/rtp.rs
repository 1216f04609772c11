//! RTP (RFC 3550 section 5): a zero-copy packet view, header builders that write into the caller's
//! buffer, RTP/RTCP demultiplexing (RFC 5761), and 64-bit extended sequence numbers.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |                             SSRC                              |
//! |                     CSRC list (CC x 32 bits)                  |
//! |   profile (X=1)               |   length in 32-bit words      |
//! |                     extension data                            |
//! |                     payload ...   | padding ... | pad count   |
//! ```
//!
//! Parsing checks everything a receiver relies on, so a [`RtpPacket`] never indexes out of bounds:
//! version 2, the CSRC list, the extension and the padding must fit in the buffer.

use thiserror::Error;

/// Length of the fixed RTP header.
pub const HEADER_LEN: usize = 12;
/// The only RTP version in use (RFC 3550).
pub const VERSION: u8 = 2;
/// Most CSRCs a header can carry (a 4-bit count).
pub const MAX_CSRCS: usize = 15;

/// Why an RTP packet could not be parsed or built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Peer: the packet ends before a part its header announces (fixed header, CSRCs, extension).
    #[error("truncated RTP packet: need {expected} bytes, have {actual}")]
    Truncated {
        /// Bytes the header implies.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// Peer: the version field is not 2.
    #[error("unsupported RTP version {version}")]
    BadVersion {
        /// The version found.
        version: u8,
    },
    /// Peer: the padding bit is set but the padding count (last byte) is zero.
    #[error("RTP padding bit set with a zero padding count")]
    ZeroPadding,
    /// Peer: the padding count is larger than what follows the header.
    #[error("RTP padding of {padding} bytes exceeds the {available} bytes after the header")]
    PaddingTooLong {
        /// The padding count (last byte).
        padding: u8,
        /// Bytes after the header (payload and padding).
        available: usize,
    },
    /// Caller: the output buffer is too small for what is to be written.
    #[error("output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes required.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// Caller: the payload type does not fit in 7 bits.
    #[error("payload type {payload_type} out of range 0..=127")]
    PayloadTypeOutOfRange {
        /// The payload type given.
        payload_type: u8,
    },
    /// Caller: more than 15 CSRCs.
    #[error("{count} CSRCs, at most 15 fit in an RTP header")]
    TooManyCsrcs {
        /// CSRCs given.
        count: usize,
    },
    /// Caller: header extension data must be a whole number of 32-bit words, at most 65,535.
    #[error("header extension of {len} bytes is not a whole number of 32-bit words (max 65535)")]
    BadExtensionLength {
        /// Length of the extension data given.
        len: usize,
    },
}

impl RtpError {
    /// A short stable label for counters and logs, e.g. `"truncated"`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::BadVersion { .. } => "bad_version",
            Self::ZeroPadding => "zero_padding",
            Self::PaddingTooLong { .. } => "padding_too_long",
            Self::BufferTooSmall { .. } => "buffer_too_small",
            Self::PayloadTypeOutOfRange { .. } => "payload_type_out_of_range",
            Self::TooManyCsrcs { .. } => "too_many_csrcs",
            Self::BadExtensionLength { .. } => "bad_extension_length",
        }
    }
}

/// A validated, zero-copy view of one RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    /// Offset of the header extension's 4-byte header, if X is set.
    extension_at: Option<usize>,
    /// Offset of the payload (end of the header).
    payload_at: usize,
    /// Offset just past the payload (start of the padding).
    payload_end: usize,
}

impl<'a> RtpPacket<'a> {
    /// Parses and validates a packet: version 2, CSRC list, extension and padding within bounds.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        if buf.len() < HEADER_LEN {
            return Err(RtpError::Truncated {
                expected: HEADER_LEN,
                actual: buf.len(),
            });
        }
        let version = buf[0] >> 6;
        if version != VERSION {
            return Err(RtpError::BadVersion { version });
        }
        let mut at = HEADER_LEN + 4 * usize::from(buf[0] & 0x0F);
        check_len(buf, at)?;
        let extension_at = if buf[0] & 0x10 != 0 {
            let ext = at;
            check_len(buf, ext + 4)?;
            at = ext + 4 + 4 * usize::from(read_u16(buf, ext + 2));
            check_len(buf, at)?;
            Some(ext)
        } else {
            None
        };
        let mut payload_end = buf.len();
        if buf[0] & 0x20 != 0 {
            let padding = buf[buf.len() - 1];
            let available = buf.len() - at;
            if padding == 0 {
                return Err(RtpError::ZeroPadding);
            }
            if usize::from(padding) > available {
                return Err(RtpError::PaddingTooLong { padding, available });
            }
            payload_end -= usize::from(padding);
        }
        Ok(Self {
            buf,
            extension_at,
            payload_at: at,
            payload_end,
        })
    }

    /// The padding bit.
    pub fn has_padding(&self) -> bool {
        self.buf[0] & 0x20 != 0
    }

    /// Bytes of padding after the payload (0 without the padding bit).
    pub fn padding(&self) -> u8 {
        (self.buf.len() - self.payload_end) as u8
    }

    /// The marker bit.
    pub fn marker(&self) -> bool {
        self.buf[1] & 0x80 != 0
    }

    /// The 7-bit payload type.
    pub fn payload_type(&self) -> u8 {
        self.buf[1] & 0x7F
    }

    /// The 16-bit sequence number as sent; see [`SeqExtender`] for wraparound.
    pub fn sequence_number(&self) -> u16 {
        read_u16(self.buf, 2)
    }

    /// The RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        read_u32(self.buf, 4)
    }

    /// The synchronisation source.
    pub fn ssrc(&self) -> u32 {
        read_u32(self.buf, 8)
    }

    /// Number of contributing sources (0..=15).
    pub fn csrc_count(&self) -> usize {
        usize::from(self.buf[0] & 0x0F)
    }

    /// The contributing sources, in order.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let end = HEADER_LEN + 4 * self.csrc_count();
        self.buf[HEADER_LEN..end]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The header extension as `(profile, data)`, if the X bit is set.
    pub fn extension(&self) -> Option<(u16, &'a [u8])> {
        let buf = self.buf;
        self.extension_at
            .map(|at| (read_u16(buf, at), &buf[at + 4..self.payload_at]))
    }

    /// The payload, padding removed.
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.payload_at..self.payload_end]
    }

    /// Length of the header including CSRCs and extension (the payload's offset).
    pub fn header_len(&self) -> usize {
        self.payload_at
    }

    /// The whole packet as parsed.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The fixed-header fields, ready to be modified and written again.
    pub fn header(&self) -> RtpHeader {
        RtpHeader {
            marker: self.marker(),
            payload_type: self.payload_type(),
            sequence_number: self.sequence_number(),
            timestamp: self.timestamp(),
            ssrc: self.ssrc(),
        }
    }
}

/// The fields of a fixed 12-byte RTP header (no CSRCs, extension or padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// The marker bit (first packet of a talkspurt for audio).
    pub marker: bool,
    /// Payload type, 0..=127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes the 12-byte header; returns [`HEADER_LEN`]. Error if out is too small or
    /// payload_type > 127. The caller writes the payload at `out[HEADER_LEN..]`.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtpError> {
        self.write_first_byte(out, 0)
    }

    /// Writes the fixed header with `first` as the P, X and CC bits (version added here).
    fn write_first_byte(&self, out: &mut [u8], first: u8) -> Result<usize, RtpError> {
        if self.payload_type > 0x7F {
            return Err(RtpError::PayloadTypeOutOfRange {
                payload_type: self.payload_type,
            });
        }
        let available = out.len();
        let out = out.get_mut(..HEADER_LEN).ok_or(RtpError::BufferTooSmall {
            needed: HEADER_LEN,
            available,
        })?;
        out[0] = (VERSION << 6) | first;
        out[1] = (u8::from(self.marker) << 7) | self.payload_type;
        out[2..4].copy_from_slice(&self.sequence_number.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        Ok(HEADER_LEN)
    }
}

/// Builds a complete RTP packet (CSRCs, extension, payload, padding) into the caller's buffer.
///
/// For the common case of a bare header followed by a payload encoded in place, use
/// [`RtpHeader::write`] instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpBuilder<'a> {
    header: RtpHeader,
    csrcs: &'a [u32],
    extension: Option<(u16, &'a [u8])>,
    payload: &'a [u8],
    padding: u8,
}

impl<'a> RtpBuilder<'a> {
    /// A packet with these fixed-header fields, no CSRCs, no extension, empty payload, no padding.
    pub fn new(header: RtpHeader) -> Self {
        Self {
            header,
            csrcs: &[],
            extension: None,
            payload: &[],
            padding: 0,
        }
    }

    /// Sets the contributing sources (at most 15).
    pub fn csrcs(mut self, csrcs: &'a [u32]) -> Self {
        self.csrcs = csrcs;
        self
    }

    /// Sets the header extension (`data` is a whole number of 32-bit words).
    pub fn extension(mut self, profile: u16, data: &'a [u8]) -> Self {
        self.extension = Some((profile, data));
        self
    }

    /// Sets the payload.
    pub fn payload(mut self, payload: &'a [u8]) -> Self {
        self.payload = payload;
        self
    }

    /// Appends `len` bytes of padding (0 means none; zeros then the count, as RFC 3550 says).
    pub fn padding(mut self, len: u8) -> Self {
        self.padding = len;
        self
    }

    /// Total length of the packet this builder writes.
    pub fn len(&self) -> usize {
        HEADER_LEN
            + 4 * self.csrcs.len()
            + self.extension.map_or(0, |(_, data)| 4 + data.len())
            + self.payload.len()
            + usize::from(self.padding)
    }

    /// Whether [`len`](Self::len) is zero: never, the fixed header is always written.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the packet at `out[0..]`; returns its length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtpError> {
        if self.csrcs.len() > MAX_CSRCS {
            return Err(RtpError::TooManyCsrcs {
                count: self.csrcs.len(),
            });
        }
        if let Some((_, data)) = self.extension
            && (!data.len().is_multiple_of(4) || data.len() / 4 > usize::from(u16::MAX))
        {
            return Err(RtpError::BadExtensionLength { len: data.len() });
        }
        let len = self.len();
        let available = out.len();
        let out = out.get_mut(..len).ok_or(RtpError::BufferTooSmall {
            needed: len,
            available,
        })?;
        let first = (u8::from(self.padding > 0) << 5)
            | (u8::from(self.extension.is_some()) << 4)
            | self.csrcs.len() as u8;
        let mut at = self.header.write_first_byte(out, first)?;
        for csrc in self.csrcs {
            out[at..at + 4].copy_from_slice(&csrc.to_be_bytes());
            at += 4;
        }
        if let Some((profile, data)) = self.extension {
            out[at..at + 2].copy_from_slice(&profile.to_be_bytes());
            out[at + 2..at + 4].copy_from_slice(&((data.len() / 4) as u16).to_be_bytes());
            out[at + 4..at + 4 + data.len()].copy_from_slice(data);
            at += 4 + data.len();
        }
        out[at..at + self.payload.len()].copy_from_slice(self.payload);
        at += self.payload.len();
        if self.padding > 0 {
            let end = at + usize::from(self.padding);
            out[at..end - 1].fill(0);
            out[end - 1] = self.padding;
            at = end;
        }
        Ok(at)
    }
}

/// A sequence number extended to 64 bits, so wraparound is handled once, where packets arrive.
///
/// Values from a [`SeqExtender`] start in cycle 1 (`65_536 + first`), so a packet reordered from
/// before the first one seen still gets a smaller number instead of underflowing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeqNo(u64);

impl SeqNo {
    /// Wraps an extended value.
    pub const fn new(extended: u64) -> Self {
        Self(extended)
    }

    /// The extended value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The 16-bit value on the wire.
    pub const fn wire(self) -> u16 {
        self.0 as u16
    }

    /// The number of 16-bit cycles (the value above the low 16 bits).
    pub const fn cycles(self) -> u64 {
        self.0 >> 16
    }

    /// The following sequence number.
    pub const fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }
}

impl From<SeqNo> for u64 {
    fn from(seq: SeqNo) -> Self {
        seq.0
    }
}

/// Extends received 16-bit sequence numbers to [`SeqNo`] (the str0m approach): each value is
/// placed within half the sequence space (32,768) of the highest one seen, so wraparound in either
/// direction (a new cycle, or a late packet from the previous one) comes out right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqExtender {
    first: Option<u64>,
    highest: u64,
}

impl SeqExtender {
    /// An extender that has seen no packet.
    pub const fn new() -> Self {
        Self {
            first: None,
            highest: 0,
        }
    }

    /// Extends `seq` and, if it is the highest so far, remembers it.
    pub fn extend(&mut self, seq: u16) -> SeqNo {
        let extended = self.peek(seq);
        if self.first.is_none() {
            self.first = Some(extended.0);
        }
        self.highest = self.highest.max(extended.0);
        extended
    }

    /// Extends `seq` without remembering it (e.g. to judge a packet before accepting it).
    pub fn peek(&self, seq: u16) -> SeqNo {
        if self.first.is_none() {
            return SeqNo((1 << 16) + u64::from(seq));
        }
        // Signed distance from the highest, within -32768..=32767.
        let delta = seq.wrapping_sub(self.highest as u16) as i16;
        SeqNo(self.highest.wrapping_add_signed(i64::from(delta)))
    }

    /// The first extended number seen, if any.
    pub fn first(&self) -> Option<SeqNo> {
        self.first.map(SeqNo)
    }

    /// The highest extended number seen, if any.
    pub fn highest(&self) -> Option<SeqNo> {
        self.first.map(|_| SeqNo(self.highest))
    }

    /// Packets expected from the first to the highest inclusive (RFC 3550 A.3); 0 before any.
    pub fn expected(&self) -> u64 {
        self.first.map_or(0, |first| self.highest - first + 1)
    }

    /// The "extended highest sequence number received" of an RTCP report block: cycles counted
    /// from 0 in the high 16 bits (RFC 3550 A.1); 0 before any packet.
    pub fn report_highest(&self) -> u32 {
        self.first.map_or(0, |_| (self.highest - (1 << 16)) as u32)
    }

    /// Forgets everything (e.g. on an SSRC change).
    pub fn reset(&mut self) {
        *self = Self::new();
    }
}

/// RFC 5761 demultiplexing of RTP and RTCP on one port: second byte in 192..=223 (PT 64..95 with
/// marker) is RTCP.
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!(buf.get(1), Some(192..=223))
}

fn check_len(buf: &[u8], expected: usize) -> Result<(), RtpError> {
    if buf.len() < expected {
        Err(RtpError::Truncated {
            expected,
            actual: buf.len(),
        })
    } else {
        Ok(())
    }
}

fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RtpHeader {
        RtpHeader {
            marker: true,
            payload_type: 0,
            sequence_number: 0x1234,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x0102_0304,
        }
    }

    #[test]
    fn header_round_trip() {
        let mut buf = [0u8; 12];
        assert_eq!(header().write(&mut buf), Ok(12));
        let packet = RtpPacket::parse(&buf).unwrap();
        assert_eq!(packet.header(), header());
        assert!(packet.payload().is_empty());
    }

    #[test]
    fn write_rejects_small_buffer_and_big_payload_type() {
        let mut buf = [0u8; 11];
        assert_eq!(
            header().write(&mut buf),
            Err(RtpError::BufferTooSmall {
                needed: 12,
                available: 11
            })
        );
        let bad = RtpHeader {
            payload_type: 128,
            ..header()
        };
        assert_eq!(
            bad.write(&mut [0u8; 12]),
            Err(RtpError::PayloadTypeOutOfRange { payload_type: 128 })
        );
    }

    #[test]
    fn demultiplexes_rtcp() {
        assert!(is_rtcp(&[0x80, 200]));
        assert!(is_rtcp(&[0x80, 223]));
        assert!(!is_rtcp(&[0x80, 0]));
        assert!(!is_rtcp(&[0x80, 0x80 | 8]));
        assert!(!is_rtcp(&[0x80, 224]));
        assert!(!is_rtcp(&[0x80]));
    }

    #[test]
    fn extends_across_wraparound_both_ways() {
        let mut ext = SeqExtender::new();
        assert_eq!(ext.highest(), None);
        let a = ext.extend(65_534);
        assert_eq!(a.get(), 65_536 + 65_534);
        let b = ext.extend(1);
        assert_eq!(b.get(), a.get() + 3);
        assert_eq!(b.cycles(), 2);
        // Late packet from the previous cycle.
        let late = ext.extend(65_535);
        assert_eq!(late.get(), a.get() + 1);
        assert_eq!(ext.highest(), Some(b));
        assert_eq!(ext.expected(), 4);
        assert_eq!(ext.report_highest(), (1 << 16) | 1);
        // Reordered from before the first packet.
        assert_eq!(ext.peek(65_530).get(), a.get() - 4);
    }

    #[test]
    fn extender_starts_in_cycle_one_and_resets() {
        let mut ext = SeqExtender::new();
        assert_eq!(ext.report_highest(), 0);
        assert_eq!(ext.extend(5).get(), 65_541);
        assert_eq!(ext.peek(65_000).get(), 65_000);
        assert_eq!(ext.report_highest(), 5);
        ext.reset();
        assert_eq!(ext, SeqExtender::new());
        assert_eq!(SeqNo::new(0x1_FFFF).next().wire(), 0);
    }
}
