//! Golden byte vectors for RTP, RTCP and RFC 4733, built by hand from the RFC layouts.
//!
//! Shared by the `rtp`, `rtcp`, `telephone_event` and `malformed` tests through
//! `#[path = "rtp_vectors.rs"] mod vectors;`; as a test target of its own it holds no tests.
#![allow(dead_code)]

/// RTP (RFC 3550 5.1) with two CSRCs, a header extension and 3 bytes of padding.
pub(crate) const RTP_FULL: &[u8] = &[
    0xB2, // V=2, P=1, X=1, CC=2
    0xEF, // M=1, PT=111
    0xAB, 0xCD, // sequence number
    0x00, 0x01, 0x23, 0x45, // timestamp
    0xCA, 0xFE, 0xBA, 0xBE, // SSRC
    0x11, 0x11, 0x11, 0x11, // CSRC 1
    0x22, 0x22, 0x22, 0x22, // CSRC 2
    0xBE, 0xDE, 0x00, 0x01, // extension profile 0xBEDE (RFC 8285 one-byte), 1 word
    0x10, 0xAA, 0x00, 0x00, // extension data: id 1, len 1, value 0xAA, padding
    0x01, 0x02, 0x03, // payload
    0x00, 0x00, 0x03, // padding, count 3
];

/// A 20 ms PCMU packet: plain header and 160 bytes of mu-law silence.
pub(crate) fn rtp_pcmu() -> Vec<u8> {
    let mut packet = vec![
        0x80, 0x00, // V=2, no P/X/CC; M=0, PT=0
        0x00, 0x07, // sequence number 7
        0x00, 0x00, 0x04, 0x60, // timestamp 1120
        0x01, 0x02, 0x03, 0x04, // SSRC
    ];
    packet.extend([0xFF; 160]);
    packet
}

/// SR (RFC 3550 6.4.1) with one report block; cumulative loss -3 (duplicates).
pub(crate) const RTCP_SR: &[u8] = &[
    0x81, 0xC8, 0x00, 0x0C, // V=2, RC=1, PT=200, length 12 (52 bytes)
    0x12, 0x34, 0x56, 0x78, // sender SSRC
    0xE1, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, // NTP timestamp
    0x00, 0x00, 0x1F, 0x40, // RTP timestamp 8000
    0x00, 0x00, 0x00, 0x64, // packet count 100
    0x00, 0x00, 0x3E, 0x80, // octet count 16000
    0x87, 0x65, 0x43, 0x21, // report block: SSRC
    0x40, 0xFF, 0xFF, 0xFD, // fraction lost 64/256, cumulative lost -3
    0x00, 0x01, 0x00, 0x05, // extended highest sequence number
    0x00, 0x00, 0x00, 0x20, // jitter
    0x45, 0x67, 0x89, 0xAB, // LSR
    0x00, 0x01, 0x80, 0x00, // DLSR 1.5 s
];

/// SDES (RFC 3550 6.5) with one chunk holding a CNAME.
pub(crate) const RTCP_SDES_CNAME: &[u8] = &[
    0x81, 0xCA, 0x00, 0x05, // V=2, SC=1, PT=202, length 5 (24 bytes)
    0x12, 0x34, 0x56, 0x78, // SSRC
    0x01, 0x0A, b'u', b's', b'e', b'r', b'@', b'h', b'o', b's', b't', b'1', // CNAME, 10 bytes
    0x00, 0x00, 0x00, 0x00, // end of items, padding to 32 bits
];

/// BYE (RFC 3550 6.6) with a reason.
pub(crate) const RTCP_BYE: &[u8] = &[
    0x81, 0xCB, 0x00, 0x02, // V=2, SC=1, PT=203, length 2 (12 bytes)
    0x12, 0x34, 0x56, 0x78, // SSRC
    0x03, b'b', b'y', b'e', // reason length 3, "bye"
];

/// Compound: RR with no blocks, then SDES CNAME "ab".
pub(crate) const RTCP_RR_SDES: &[u8] = &[
    0x80, 0xC9, 0x00, 0x01, // V=2, RC=0, PT=201, length 1 (8 bytes)
    0x0A, 0x0B, 0x0C, 0x0D, // reporter SSRC
    0x81, 0xCA, 0x00, 0x03, // V=2, SC=1, PT=202, length 3 (16 bytes)
    0x0A, 0x0B, 0x0C, 0x0D, // SSRC
    0x01, 0x02, b'a', b'b', // CNAME "ab"
    0x00, 0x00, 0x00, 0x00, // end of items, padding
];

/// RR with the padding bit: 4 bytes of padding after the SSRC.
pub(crate) const RTCP_RR_PADDED: &[u8] = &[
    0xA0, 0xC9, 0x00, 0x02, // V=2, P=1, RC=0, PT=201, length 2 (12 bytes)
    0x0A, 0x0B, 0x0C, 0x0D, // reporter SSRC
    0x00, 0x00, 0x00, 0x04, // padding, count 4
];

/// APP (RFC 3550 6.7), subtype 5, name "TEST", one word of data.
pub(crate) const RTCP_APP: &[u8] = &[
    0x85, 0xCC, 0x00, 0x03, // V=2, subtype 5, PT=204, length 3 (16 bytes)
    0x12, 0x34, 0x56, 0x78, // SSRC
    b'T', b'E', b'S', b'T', // name
    0xDE, 0xAD, 0xBE, 0xEF, // data
];

/// RFC 4733 event "1", volume 10, duration 400, not ended.
pub(crate) const EVENT_DIGIT_1: &[u8] = &[0x01, 0x0A, 0x01, 0x90];
/// RFC 4733 event "#", end bit set, volume 7, duration 800.
pub(crate) const EVENT_HASH_END: &[u8] = &[0x0B, 0x87, 0x03, 0x20];

/// Every RTCP vector, each a valid compound on its own.
pub(crate) const RTCP_ALL: &[&[u8]] = &[
    RTCP_SR,
    RTCP_SDES_CNAME,
    RTCP_BYE,
    RTCP_RR_SDES,
    RTCP_RR_PADDED,
    RTCP_APP,
];
