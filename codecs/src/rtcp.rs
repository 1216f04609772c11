//! RTCP (RFC 3550 section 6): zero-copy views of compound packets, and builders that write one
//! packet into the caller's buffer.
//!
//! Every packet starts with the same 4-byte header; its length field (in 32-bit words, minus one)
//! delimits it within the compound:
//!
//! ```text
//! |V=2|P|  count  |      PT       |             length            |
//! ```
//!
//! [`compound`] walks a datagram packet by packet. Each packet's length, padding and, for SR, RR,
//! SDES and BYE, its body structure are validated before a view is returned, so the views' accessors
//! cannot fail. The RFC 3550 rule that a compound starts with an SR or RR is not enforced:
//! reduced-size RTCP (RFC 5506) sends lone packets.

use thiserror::Error;

/// Packet type of a sender report.
pub const PT_SR: u8 = 200;
/// Packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// Packet type of source description.
pub const PT_SDES: u8 = 202;
/// Packet type of goodbye.
pub const PT_BYE: u8 = 203;
/// Packet type of an application-defined packet.
pub const PT_APP: u8 = 204;
/// SDES item type of the canonical name.
pub const SDES_CNAME: u8 = 1;
/// Most report blocks, SDES chunks or BYE sources in one packet (a 5-bit count).
pub const MAX_COUNT: usize = 31;
/// Length of one report block.
pub const REPORT_BLOCK_LEN: usize = 24;
/// Length of the sender info in an SR.
pub const SENDER_INFO_LEN: usize = 20;

const HEADER_LEN: usize = 4;
const VERSION: u8 = 2;
/// Largest packet the 16-bit length field can describe.
const MAX_PACKET_LEN: usize = (u16::MAX as usize + 1) * 4;

/// Why an RTCP packet could not be parsed or built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// Peer: the packet (or a part its header announces) runs past the bytes available.
    #[error("truncated RTCP packet: need {expected} bytes, have {actual}")]
    Truncated {
        /// Bytes the packet's fields imply.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// Peer: the version field is not 2.
    #[error("unsupported RTCP version {version}")]
    BadVersion {
        /// The version found.
        version: u8,
    },
    /// Peer: the padding bit is set but the padding count (last byte) is zero.
    #[error("RTCP padding bit set with a zero padding count")]
    ZeroPadding,
    /// Peer: the padding count is larger than the packet's body.
    #[error("RTCP padding of {padding} bytes exceeds the {available}-byte body")]
    PaddingTooLong {
        /// The padding count (last byte).
        padding: u8,
        /// Bytes after the 4-byte header.
        available: usize,
    },
    /// Caller: the output buffer is too small for the packet.
    #[error("output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes required.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// Caller: more report blocks, SDES chunks or BYE sources than the 5-bit count holds.
    #[error("{count} entries, at most 31 fit in one RTCP packet")]
    TooMany {
        /// Entries given.
        count: usize,
    },
    /// Caller: an SDES item, BYE reason or packet is longer than its length field allows.
    #[error("{len} bytes is too long for its length field")]
    TooLong {
        /// Length given.
        len: usize,
    },
    /// Caller: SDES item type 0 is the end-of-list marker, not an item; or an APP subtype > 31.
    #[error("invalid type {value}")]
    InvalidType {
        /// The type given.
        value: u8,
    },
    /// Caller: APP data must be a whole number of 32-bit words.
    #[error("APP data of {len} bytes is not a whole number of 32-bit words")]
    Unaligned {
        /// Length given.
        len: usize,
    },
}

impl RtcpError {
    /// A short stable label for counters and logs, e.g. `"truncated"`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::BadVersion { .. } => "bad_version",
            Self::ZeroPadding => "zero_padding",
            Self::PaddingTooLong { .. } => "padding_too_long",
            Self::BufferTooSmall { .. } => "buffer_too_small",
            Self::TooMany { .. } => "too_many",
            Self::TooLong { .. } => "too_long",
            Self::InvalidType { .. } => "invalid_type",
            Self::Unaligned { .. } => "unaligned",
        }
    }
}

/// One reception report block (RFC 3550 6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, a 24-bit signed field: written clamped to
    /// `-0x80_0000..=0x7F_FFFF`, read sign-extended.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (LSR), 0 if none.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s (DLSR).
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn read(b: &[u8]) -> Self {
        let lost = u32::from_be_bytes([0, b[5], b[6], b[7]]);
        Self {
            ssrc: read_u32(b, 0),
            fraction_lost: b[4],
            // Sign-extend the 24-bit field.
            cumulative_lost: ((lost << 8) as i32) >> 8,
            highest_seq: read_u32(b, 8),
            jitter: read_u32(b, 12),
            last_sr: read_u32(b, 16),
            delay_since_last_sr: read_u32(b, 20),
        }
    }

    fn write(&self, out: &mut [u8]) {
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32;
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        out[4] = self.fraction_lost;
        out[5..8].copy_from_slice(&lost.to_be_bytes()[1..]);
        out[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        out[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

/// The sender info of an SR (RFC 3550 6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// Wallclock time when the report was sent, 64-bit NTP format.
    pub ntp_timestamp: u64,
    /// The same instant in the stream's RTP timestamp units.
    pub rtp_timestamp: u32,
    /// RTP packets sent by this source.
    pub packet_count: u32,
    /// Payload octets sent by this source.
    pub octet_count: u32,
}

impl SenderInfo {
    fn read(b: &[u8]) -> Self {
        Self {
            ntp_timestamp: (u64::from(read_u32(b, 0)) << 32) | u64::from(read_u32(b, 4)),
            rtp_timestamp: read_u32(b, 8),
            packet_count: read_u32(b, 12),
            octet_count: read_u32(b, 16),
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.ntp_timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.rtp_timestamp.to_be_bytes());
        out[12..16].copy_from_slice(&self.packet_count.to_be_bytes());
        out[16..20].copy_from_slice(&self.octet_count.to_be_bytes());
    }
}

/// Middle 32 bits of an NTP timestamp, as used in LSR.
pub fn ntp_middle32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Iterates over the packets of a compound RTCP datagram.
pub fn compound(buf: &[u8]) -> RtcpIter<'_> {
    RtcpIter {
        raw: compound_raw(buf),
    }
}

/// Iterates over the packets of a compound RTCP datagram with only the common header checked.
pub fn compound_raw(buf: &[u8]) -> RawIter<'_> {
    RawIter { rest: buf }
}

/// Iterator over a compound's packets: `Result<RtcpPacket, RtcpError>`, ending after the first
/// error.
#[derive(Clone, Debug)]
pub struct RtcpIter<'a> {
    raw: RawIter<'a>,
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        let parsed = self.raw.next()?.and_then(RtcpPacket::from_raw);
        if parsed.is_err() {
            self.raw.rest = &[];
        }
        Some(parsed)
    }
}

/// Iterator over a compound's packets as [`RawPacket`]s, ending after the first error.
#[derive(Clone, Debug)]
pub struct RawIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RawIter<'a> {
    type Item = Result<RawPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = RawPacket::parse(self.rest);
        self.rest = match &parsed {
            Ok(packet) => &self.rest[packet.bytes.len()..],
            Err(_) => &[],
        };
        Some(parsed)
    }
}

/// One RTCP packet with its common header validated: version, length, padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPacket<'a> {
    bytes: &'a [u8],
    body_end: usize,
}

impl<'a> RawPacket<'a> {
    /// Parses the packet at the start of `buf` (which may hold more packets after it).
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtcpError> {
        check_len(buf, HEADER_LEN)?;
        let version = buf[0] >> 6;
        if version != VERSION {
            return Err(RtcpError::BadVersion { version });
        }
        let len = (usize::from(read_u16(buf, 2)) + 1) * 4;
        check_len(buf, len)?;
        let bytes = &buf[..len];
        let mut body_end = len;
        if bytes[0] & 0x20 != 0 {
            let padding = bytes[len - 1];
            if padding == 0 {
                return Err(RtcpError::ZeroPadding);
            }
            if usize::from(padding) > len - HEADER_LEN {
                return Err(RtcpError::PaddingTooLong {
                    padding,
                    available: len - HEADER_LEN,
                });
            }
            body_end -= usize::from(padding);
        }
        Ok(Self { bytes, body_end })
    }

    /// The packet type (200 SR, 201 RR, 202 SDES, 203 BYE, 204 APP, ...).
    pub fn packet_type(&self) -> u8 {
        self.bytes[1]
    }

    /// The 5-bit count field (report blocks, chunks, sources, or the APP subtype).
    pub fn count(&self) -> u8 {
        self.bytes[0] & 0x1F
    }

    /// Bytes after the 4-byte header, padding removed.
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..self.body_end]
    }

    /// Bytes of padding (0 without the padding bit).
    pub fn padding(&self) -> u8 {
        (self.bytes.len() - self.body_end) as u8
    }

    /// The whole packet, header and padding included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// One parsed RTCP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// Sender report (PT 200).
    SenderReport(SenderReport<'a>),
    /// Receiver report (PT 201).
    ReceiverReport(ReceiverReport<'a>),
    /// Source description (PT 202).
    Sdes(Sdes<'a>),
    /// Goodbye (PT 203).
    Bye(Bye<'a>),
    /// Any other packet type (APP, feedback, XR, ...): see [`App::parse`] and [`compound_raw`].
    Other {
        /// The packet type.
        packet_type: u8,
        /// Bytes after the 4-byte header, padding removed.
        body: &'a [u8],
    },
}

impl<'a> RtcpPacket<'a> {
    /// Validates the body of a packet whose common header is already checked.
    pub fn from_raw(raw: RawPacket<'a>) -> Result<Self, RtcpError> {
        let (body, count) = (raw.body(), raw.count());
        Ok(match raw.packet_type() {
            PT_SR => Self::SenderReport(SenderReport::parse(body, count)?),
            PT_RR => Self::ReceiverReport(ReceiverReport::parse(body, count)?),
            PT_SDES => Self::Sdes(Sdes::parse(body, count)?),
            PT_BYE => Self::Bye(Bye::parse(body, count)?),
            packet_type => Self::Other { packet_type, body },
        })
    }
}

/// A sender report: the sender's SSRC and info, then report blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderReport<'a> {
    body: &'a [u8],
    count: u8,
}

impl<'a> SenderReport<'a> {
    fn parse(body: &'a [u8], count: u8) -> Result<Self, RtcpError> {
        let needed = 4 + SENDER_INFO_LEN + REPORT_BLOCK_LEN * usize::from(count);
        check_len(body, needed)?;
        Ok(Self { body, count })
    }

    /// The sender's SSRC.
    pub fn ssrc(&self) -> u32 {
        read_u32(self.body, 0)
    }

    /// The sender info.
    pub fn sender_info(&self) -> SenderInfo {
        SenderInfo::read(&self.body[4..4 + SENDER_INFO_LEN])
    }

    /// Number of report blocks (the count field).
    pub fn report_count(&self) -> usize {
        usize::from(self.count)
    }

    /// The report blocks.
    pub fn report_blocks(&self) -> impl Iterator<Item = ReportBlock> + 'a {
        report_blocks(&self.body[4 + SENDER_INFO_LEN..], self.count)
    }

    /// Profile-specific extension after the report blocks (usually empty).
    pub fn extension(&self) -> &'a [u8] {
        &self.body[4 + SENDER_INFO_LEN + REPORT_BLOCK_LEN * self.report_count()..]
    }
}

/// A receiver report: the reporter's SSRC, then report blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiverReport<'a> {
    body: &'a [u8],
    count: u8,
}

impl<'a> ReceiverReport<'a> {
    fn parse(body: &'a [u8], count: u8) -> Result<Self, RtcpError> {
        check_len(body, 4 + REPORT_BLOCK_LEN * usize::from(count))?;
        Ok(Self { body, count })
    }

    /// The reporter's SSRC.
    pub fn ssrc(&self) -> u32 {
        read_u32(self.body, 0)
    }

    /// Number of report blocks (the count field).
    pub fn report_count(&self) -> usize {
        usize::from(self.count)
    }

    /// The report blocks.
    pub fn report_blocks(&self) -> impl Iterator<Item = ReportBlock> + 'a {
        report_blocks(&self.body[4..], self.count)
    }

    /// Profile-specific extension after the report blocks (usually empty).
    pub fn extension(&self) -> &'a [u8] {
        &self.body[4 + REPORT_BLOCK_LEN * self.report_count()..]
    }
}

fn report_blocks(blocks: &[u8], count: u8) -> impl Iterator<Item = ReportBlock> + '_ {
    blocks
        .chunks_exact(REPORT_BLOCK_LEN)
        .take(usize::from(count))
        .map(ReportBlock::read)
}

/// Source description: chunks of (SSRC, items).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sdes<'a> {
    body: &'a [u8],
    count: u8,
}

impl<'a> Sdes<'a> {
    fn parse(body: &'a [u8], count: u8) -> Result<Self, RtcpError> {
        let mut at = 0;
        for _ in 0..count {
            at = sdes_chunk_end(body, at)?.1;
        }
        Ok(Self { body, count })
    }

    /// Number of chunks (the count field).
    pub fn chunk_count(&self) -> usize {
        usize::from(self.count)
    }

    /// The chunks, each as `(ssrc, items)`.
    pub fn chunks(&self) -> SdesChunks<'a> {
        SdesChunks {
            body: self.body,
            at: 0,
            remaining: self.count,
        }
    }
}

/// Walks one SDES chunk starting at `at`: returns where its item list ends (the null octet) and
/// where the next chunk starts (after padding to 32 bits).
fn sdes_chunk_end(body: &[u8], at: usize) -> Result<(usize, usize), RtcpError> {
    let mut item = at + 4;
    check_len(body, item)?;
    loop {
        check_len(body, item + 1)?;
        if body[item] == 0 {
            break;
        }
        check_len(body, item + 2)?;
        item += 2 + usize::from(body[item + 1]);
        check_len(body, item)?;
    }
    // The null octet, then null padding to the next 32-bit boundary; a padded packet's body may
    // end before that boundary.
    let next = ((item + 1).next_multiple_of(4)).min(body.len());
    Ok((item, next))
}

/// Iterator over SDES chunks, yielding `(ssrc, items)`.
#[derive(Clone, Debug)]
pub struct SdesChunks<'a> {
    body: &'a [u8],
    at: usize,
    remaining: u8,
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = (u32, SdesItems<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let (items_end, next) = sdes_chunk_end(self.body, self.at).ok()?;
        let ssrc = read_u32(self.body, self.at);
        let items = SdesItems {
            rest: &self.body[self.at + 4..items_end],
        };
        self.at = next;
        Some((ssrc, items))
    }
}

/// Iterator over the items of one SDES chunk, yielding `(item_type, data)`.
#[derive(Clone, Debug)]
pub struct SdesItems<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for SdesItems<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&[item_type, len], rest) = self.rest.split_first_chunk::<2>()?;
        let data = rest.get(..usize::from(len))?;
        self.rest = &rest[data.len()..];
        Some((item_type, data))
    }
}

/// Goodbye: the sources leaving, and an optional reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bye<'a> {
    body: &'a [u8],
    count: u8,
}

impl<'a> Bye<'a> {
    fn parse(body: &'a [u8], count: u8) -> Result<Self, RtcpError> {
        let ssrcs_end = 4 * usize::from(count);
        check_len(body, ssrcs_end)?;
        if let Some(&len) = body.get(ssrcs_end) {
            check_len(body, ssrcs_end + 1 + usize::from(len))?;
        }
        Ok(Self { body, count })
    }

    /// The sources leaving.
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.body[..4 * usize::from(self.count)]
            .chunks_exact(4)
            .map(|c| read_u32(c, 0))
    }

    /// The reason for leaving, if given.
    pub fn reason(&self) -> Option<&'a [u8]> {
        let at = 4 * usize::from(self.count);
        let len = usize::from(*self.body.get(at)?);
        self.body.get(at + 1..at + 1 + len)
    }
}

/// An application-defined packet (PT 204): subtype, SSRC, 4-character name, data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct App<'a> {
    /// The 5-bit subtype (the count field).
    pub subtype: u8,
    /// The sender's SSRC.
    pub ssrc: u32,
    /// The 4-character ASCII name.
    pub name: [u8; 4],
    /// Application data.
    pub data: &'a [u8],
}

impl<'a> App<'a> {
    /// Reads an APP packet; `Ok(None)` if `raw` is not one.
    pub fn parse(raw: &RawPacket<'a>) -> Result<Option<Self>, RtcpError> {
        if raw.packet_type() != PT_APP {
            return Ok(None);
        }
        let body = raw.body();
        check_len(body, 8)?;
        Ok(Some(Self {
            subtype: raw.count(),
            ssrc: read_u32(body, 0),
            name: [body[4], body[5], body[6], body[7]],
            data: &body[8..],
        }))
    }
}

/// Writes a sender report at `out[0..]`; returns its length.
pub fn write_sender_report(
    out: &mut [u8],
    ssrc: u32,
    info: &SenderInfo,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    let count = checked_count(blocks.len())?;
    let len = HEADER_LEN + 4 + SENDER_INFO_LEN + REPORT_BLOCK_LEN * blocks.len();
    let out = start_packet(out, len, PT_SR, count)?;
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    info.write(&mut out[8..8 + SENDER_INFO_LEN]);
    write_blocks(&mut out[8 + SENDER_INFO_LEN..], blocks);
    Ok(len)
}

/// Writes a receiver report at `out[0..]`; returns its length.
pub fn write_receiver_report(
    out: &mut [u8],
    ssrc: u32,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    let count = checked_count(blocks.len())?;
    let len = HEADER_LEN + 4 + REPORT_BLOCK_LEN * blocks.len();
    let out = start_packet(out, len, PT_RR, count)?;
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    write_blocks(&mut out[8..], blocks);
    Ok(len)
}

fn write_blocks(out: &mut [u8], blocks: &[ReportBlock]) {
    for (block, out) in blocks.iter().zip(out.chunks_exact_mut(REPORT_BLOCK_LEN)) {
        block.write(out);
    }
}

/// Writes an SDES packet with one chunk holding only a CNAME; returns its length.
pub fn write_sdes_cname(out: &mut [u8], ssrc: u32, cname: &[u8]) -> Result<usize, RtcpError> {
    write_sdes(out, &[(ssrc, &[(SDES_CNAME, cname)])])
}

/// One SDES item to write: `(item_type, data)`, as [`SdesItems`] yields them.
pub type SdesItem<'a> = (u8, &'a [u8]);

/// Writes an SDES packet with any chunks `(ssrc, items)`; returns its length.
pub fn write_sdes(out: &mut [u8], chunks: &[(u32, &[SdesItem<'_>])]) -> Result<usize, RtcpError> {
    let count = checked_count(chunks.len())?;
    let mut len = HEADER_LEN;
    for (_, items) in chunks {
        let mut chunk = 4 + 1;
        for &(item_type, data) in *items {
            if item_type == 0 {
                return Err(RtcpError::InvalidType { value: item_type });
            }
            if data.len() > usize::from(u8::MAX) {
                return Err(RtcpError::TooLong { len: data.len() });
            }
            chunk += 2 + data.len();
        }
        len += chunk.next_multiple_of(4);
    }
    let out = start_packet(out, len, PT_SDES, count)?;
    let mut at = HEADER_LEN;
    for (ssrc, items) in chunks {
        out[at..at + 4].copy_from_slice(&ssrc.to_be_bytes());
        at += 4;
        for &(item_type, data) in *items {
            out[at] = item_type;
            out[at + 1] = data.len() as u8;
            out[at + 2..at + 2 + data.len()].copy_from_slice(data);
            at += 2 + data.len();
        }
        // The null item ends the list; null octets pad the chunk to 32 bits.
        let next = (at + 1).next_multiple_of(4);
        out[at..next].fill(0);
        at = next;
    }
    Ok(len)
}

/// Writes a BYE for `ssrcs` with an optional reason; returns its length.
pub fn write_bye(out: &mut [u8], ssrcs: &[u32], reason: Option<&[u8]>) -> Result<usize, RtcpError> {
    let count = checked_count(ssrcs.len())?;
    if let Some(reason) = reason
        && reason.len() > usize::from(u8::MAX)
    {
        return Err(RtcpError::TooLong { len: reason.len() });
    }
    let reason_len = reason.map_or(0, |r| (1 + r.len()).next_multiple_of(4));
    let len = HEADER_LEN + 4 * ssrcs.len() + reason_len;
    let out = start_packet(out, len, PT_BYE, count)?;
    let mut at = HEADER_LEN;
    for ssrc in ssrcs {
        out[at..at + 4].copy_from_slice(&ssrc.to_be_bytes());
        at += 4;
    }
    if let Some(reason) = reason {
        out[at] = reason.len() as u8;
        out[at + 1..at + 1 + reason.len()].copy_from_slice(reason);
        out[at + 1 + reason.len()..len].fill(0);
    }
    Ok(len)
}

/// Writes an APP packet; `data` must be a whole number of 32-bit words. Returns its length.
pub fn write_app(out: &mut [u8], app: &App<'_>) -> Result<usize, RtcpError> {
    if usize::from(app.subtype) > MAX_COUNT {
        return Err(RtcpError::InvalidType { value: app.subtype });
    }
    if !app.data.len().is_multiple_of(4) {
        return Err(RtcpError::Unaligned {
            len: app.data.len(),
        });
    }
    let len = HEADER_LEN + 8 + app.data.len();
    let out = start_packet(out, len, PT_APP, app.subtype)?;
    out[4..8].copy_from_slice(&app.ssrc.to_be_bytes());
    out[8..12].copy_from_slice(&app.name);
    out[12..].copy_from_slice(app.data);
    Ok(len)
}

fn checked_count(count: usize) -> Result<u8, RtcpError> {
    if count > MAX_COUNT {
        Err(RtcpError::TooMany { count })
    } else {
        Ok(count as u8)
    }
}

/// Checks sizes and writes the common header; returns `out[..len]`.
fn start_packet(
    out: &mut [u8],
    len: usize,
    packet_type: u8,
    count: u8,
) -> Result<&mut [u8], RtcpError> {
    if len > MAX_PACKET_LEN {
        return Err(RtcpError::TooLong { len });
    }
    let available = out.len();
    let out = out.get_mut(..len).ok_or(RtcpError::BufferTooSmall {
        needed: len,
        available,
    })?;
    out[0] = (VERSION << 6) | count;
    out[1] = packet_type;
    out[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    Ok(out)
}

fn check_len(buf: &[u8], expected: usize) -> Result<(), RtcpError> {
    if buf.len() < expected {
        Err(RtcpError::Truncated {
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

    #[test]
    fn cumulative_loss_is_24_bit_signed_and_clamped() {
        for (given, read_back) in [
            (0, 0),
            (1, 1),
            (-1, -1),
            (0x7F_FFFF, 0x7F_FFFF),
            (0x100_0000, 0x7F_FFFF),
            (-0x80_0000, -0x80_0000),
            (i32::MIN, -0x80_0000),
        ] {
            let block = ReportBlock {
                cumulative_lost: given,
                ..ReportBlock::default()
            };
            let mut out = [0u8; REPORT_BLOCK_LEN];
            block.write(&mut out);
            assert_eq!(
                ReportBlock::read(&out).cumulative_lost,
                read_back,
                "{given}"
            );
        }
    }

    #[test]
    fn ntp_middle() {
        assert_eq!(ntp_middle32(0x1122_3344_5566_7788), 0x3344_5566);
    }

    #[test]
    fn iteration_stops_after_an_error() {
        let mut buf = [0u8; 16];
        let len = write_receiver_report(&mut buf, 7, &[]).unwrap();
        buf[len] = 0x40; // version 1
        let mut packets = compound(&buf);
        assert!(matches!(
            packets.next(),
            Some(Ok(RtcpPacket::ReceiverReport(_)))
        ));
        assert_eq!(
            packets.next(),
            Some(Err(RtcpError::BadVersion { version: 1 }))
        );
        assert_eq!(packets.next(), None);
    }
}
