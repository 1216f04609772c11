//! RTP golden vectors: parse them field by field, and build them again byte for byte.

#[path = "rtp_vectors.rs"]
mod vectors;

use bridgepool_codecs::rtp::{HEADER_LEN, RtpBuilder, RtpError, RtpHeader, RtpPacket, is_rtcp};

use vectors::{RTCP_SR, RTP_FULL, rtp_pcmu};

#[test]
fn parses_csrcs_extension_and_padding() {
    let packet = RtpPacket::parse(RTP_FULL).unwrap();
    assert!(packet.marker());
    assert_eq!(packet.payload_type(), 111);
    assert_eq!(packet.sequence_number(), 0xABCD);
    assert_eq!(packet.timestamp(), 0x0001_2345);
    assert_eq!(packet.ssrc(), 0xCAFE_BABE);
    assert_eq!(packet.csrc_count(), 2);
    assert_eq!(
        packet.csrcs().collect::<Vec<_>>(),
        [0x1111_1111, 0x2222_2222]
    );
    assert_eq!(
        packet.extension(),
        Some((0xBEDE, &[0x10, 0xAA, 0x00, 0x00][..]))
    );
    assert_eq!(packet.payload(), [1, 2, 3]);
    assert!(packet.has_padding());
    assert_eq!(packet.padding(), 3);
    assert_eq!(packet.header_len(), 28);
    assert_eq!(packet.as_bytes(), RTP_FULL);
}

#[test]
fn builds_csrcs_extension_and_padding() {
    let header = RtpHeader {
        marker: true,
        payload_type: 111,
        sequence_number: 0xABCD,
        timestamp: 0x0001_2345,
        ssrc: 0xCAFE_BABE,
    };
    let builder = RtpBuilder::new(header)
        .csrcs(&[0x1111_1111, 0x2222_2222])
        .extension(0xBEDE, &[0x10, 0xAA, 0x00, 0x00])
        .payload(&[1, 2, 3])
        .padding(3);
    assert_eq!(builder.len(), RTP_FULL.len());
    let mut out = [0xEEu8; 64];
    assert_eq!(builder.write(&mut out), Ok(RTP_FULL.len()));
    assert_eq!(&out[..RTP_FULL.len()], RTP_FULL);
}

#[test]
fn pcmu_packet_header_then_payload_in_place() {
    let golden = rtp_pcmu();
    let packet = RtpPacket::parse(&golden).unwrap();
    assert_eq!(packet.payload_type(), 0);
    assert!(!packet.marker());
    assert_eq!(packet.payload().len(), 160);
    assert_eq!(packet.extension(), None);
    assert_eq!(packet.csrcs().count(), 0);

    // The worker's hot path: write the header, then encode straight after it.
    let mut out = [0u8; 172];
    let n = packet.header().write(&mut out).unwrap();
    assert_eq!(n, HEADER_LEN);
    out[n..].fill(0xFF);
    assert_eq!(out[..], golden[..]);
}

#[test]
fn builder_rejects_caller_mistakes() {
    let header = RtpPacket::parse(&rtp_pcmu()).unwrap().header();
    let csrcs = [0u32; 16];
    assert_eq!(
        RtpBuilder::new(header).csrcs(&csrcs).write(&mut [0; 200]),
        Err(RtpError::TooManyCsrcs { count: 16 })
    );
    assert_eq!(
        RtpBuilder::new(header)
            .extension(1, &[0; 3])
            .write(&mut [0; 200]),
        Err(RtpError::BadExtensionLength { len: 3 })
    );
    assert_eq!(
        RtpBuilder::new(header)
            .payload(&[0; 10])
            .write(&mut [0; 21]),
        Err(RtpError::BufferTooSmall {
            needed: 22,
            available: 21
        })
    );
    let bad = RtpHeader {
        payload_type: 200,
        ..header
    };
    assert_eq!(
        RtpBuilder::new(bad).write(&mut [0; 200]),
        Err(RtpError::PayloadTypeOutOfRange { payload_type: 200 })
    );
}

#[test]
fn malformed_headers_are_errors_with_context() {
    assert_eq!(
        RtpPacket::parse(&RTP_FULL[..11]),
        Err(RtpError::Truncated {
            expected: 12,
            actual: 11
        })
    );
    let mut bad_version = RTP_FULL.to_vec();
    bad_version[0] = (bad_version[0] & 0x3F) | 0x40;
    assert_eq!(
        RtpPacket::parse(&bad_version),
        Err(RtpError::BadVersion { version: 1 })
    );
    // CSRC list cut short.
    assert_eq!(
        RtpPacket::parse(&RTP_FULL[..18]),
        Err(RtpError::Truncated {
            expected: 20,
            actual: 18
        })
    );
    // Extension header cut short, then extension data cut short.
    assert_eq!(
        RtpPacket::parse(&RTP_FULL[..22]),
        Err(RtpError::Truncated {
            expected: 24,
            actual: 22
        })
    );
    assert_eq!(
        RtpPacket::parse(&RTP_FULL[..26]),
        Err(RtpError::Truncated {
            expected: 28,
            actual: 26
        })
    );
    let mut zero_padding = RTP_FULL.to_vec();
    *zero_padding.last_mut().unwrap() = 0;
    assert_eq!(RtpPacket::parse(&zero_padding), Err(RtpError::ZeroPadding));
    let mut long_padding = RTP_FULL.to_vec();
    *long_padding.last_mut().unwrap() = 7;
    assert_eq!(
        RtpPacket::parse(&long_padding),
        Err(RtpError::PaddingTooLong {
            padding: 7,
            available: 6
        })
    );
    assert_eq!(RtpError::ZeroPadding.reason(), "zero_padding");
}

#[test]
fn padding_may_take_the_whole_payload() {
    let mut packet = rtp_pcmu()[..HEADER_LEN].to_vec();
    packet[0] |= 0x20;
    packet.extend([0, 0, 0, 4]);
    let parsed = RtpPacket::parse(&packet).unwrap();
    assert!(parsed.payload().is_empty());
    assert_eq!(parsed.padding(), 4);
}

#[test]
fn demultiplexes_rtp_and_rtcp() {
    assert!(is_rtcp(RTCP_SR));
    assert!(!is_rtcp(RTP_FULL));
    assert!(!is_rtcp(&rtp_pcmu()));
    assert!(!is_rtcp(&[]));
}
