//! RTCP golden vectors: parse them field by field, and build them again byte for byte.

#[path = "rtp_vectors.rs"]
mod vectors;

use bridgepool_codecs::rtcp::{
    App, PT_APP, RawPacket, ReportBlock, RtcpError, RtcpPacket, SDES_CNAME, SdesItem, SenderInfo,
    compound, compound_raw, ntp_middle32, write_app, write_bye, write_receiver_report, write_sdes,
    write_sdes_cname, write_sender_report,
};

use vectors::{RTCP_APP, RTCP_BYE, RTCP_RR_PADDED, RTCP_RR_SDES, RTCP_SDES_CNAME, RTCP_SR};

fn only(buf: &[u8]) -> RtcpPacket<'_> {
    let mut packets = compound(buf);
    let packet = packets.next().expect("one packet").expect("valid");
    assert!(packets.next().is_none());
    packet
}

fn golden_info() -> SenderInfo {
    SenderInfo {
        ntp_timestamp: 0xE123_4567_89AB_CDEF,
        rtp_timestamp: 8000,
        packet_count: 100,
        octet_count: 16000,
    }
}

fn golden_block() -> ReportBlock {
    ReportBlock {
        ssrc: 0x8765_4321,
        fraction_lost: 64,
        cumulative_lost: -3,
        highest_seq: 0x0001_0005,
        jitter: 32,
        last_sr: 0x4567_89AB,
        delay_since_last_sr: 0x0001_8000,
    }
}

#[test]
fn sender_report() {
    let RtcpPacket::SenderReport(sr) = only(RTCP_SR) else {
        panic!("not an SR");
    };
    assert_eq!(sr.ssrc(), 0x1234_5678);
    assert_eq!(sr.sender_info(), golden_info());
    assert_eq!(sr.report_count(), 1);
    assert_eq!(sr.report_blocks().collect::<Vec<_>>(), [golden_block()]);
    assert!(sr.extension().is_empty());
    assert_eq!(ntp_middle32(sr.sender_info().ntp_timestamp), 0x4567_89AB);

    let mut out = [0u8; 64];
    let n = write_sender_report(&mut out, 0x1234_5678, &golden_info(), &[golden_block()]);
    assert_eq!(n, Ok(RTCP_SR.len()));
    assert_eq!(&out[..RTCP_SR.len()], RTCP_SR);
}

#[test]
fn sdes_cname() {
    let RtcpPacket::Sdes(sdes) = only(RTCP_SDES_CNAME) else {
        panic!("not SDES");
    };
    assert_eq!(sdes.chunk_count(), 1);
    let chunks: Vec<(u32, Vec<SdesItem<'_>>)> = sdes
        .chunks()
        .map(|(ssrc, items)| (ssrc, items.collect()))
        .collect();
    assert_eq!(
        chunks,
        [(0x1234_5678, vec![(SDES_CNAME, &b"user@host1"[..])])]
    );

    let mut out = [0u8; 64];
    let n = write_sdes_cname(&mut out, 0x1234_5678, b"user@host1");
    assert_eq!(n, Ok(RTCP_SDES_CNAME.len()));
    assert_eq!(&out[..RTCP_SDES_CNAME.len()], RTCP_SDES_CNAME);
}

#[test]
fn bye_with_reason() {
    let RtcpPacket::Bye(bye) = only(RTCP_BYE) else {
        panic!("not BYE");
    };
    assert_eq!(bye.ssrcs().collect::<Vec<_>>(), [0x1234_5678]);
    assert_eq!(bye.reason(), Some(&b"bye"[..]));

    let mut out = [0u8; 64];
    let n = write_bye(&mut out, &[0x1234_5678], Some(b"bye"));
    assert_eq!(n, Ok(RTCP_BYE.len()));
    assert_eq!(&out[..RTCP_BYE.len()], RTCP_BYE);
}

#[test]
fn bye_without_reason_and_with_padded_reason() {
    let mut out = [0u8; 64];
    let n = write_bye(&mut out, &[1, 2], None).unwrap();
    assert_eq!(n, 12);
    let RtcpPacket::Bye(bye) = only(&out[..n]) else {
        panic!("not BYE");
    };
    assert_eq!(bye.ssrcs().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(bye.reason(), None);

    let n = write_bye(&mut out, &[], Some(b"timeout")).unwrap();
    assert_eq!(&out[..n], b"\x80\xCB\x00\x02\x07timeout");
    let n = write_bye(&mut out, &[], Some(b"done")).unwrap();
    assert_eq!(&out[..n], b"\x80\xCB\x00\x02\x04done\0\0\0");
}

#[test]
fn compound_rr_then_sdes() {
    let packets: Vec<_> = compound(RTCP_RR_SDES).collect();
    assert_eq!(packets.len(), 2);
    let Ok(RtcpPacket::ReceiverReport(rr)) = packets[0] else {
        panic!("not an RR");
    };
    assert_eq!(rr.ssrc(), 0x0A0B_0C0D);
    assert_eq!(rr.report_blocks().count(), 0);
    let Ok(RtcpPacket::Sdes(sdes)) = packets[1] else {
        panic!("not SDES");
    };
    let (ssrc, mut items) = sdes.chunks().next().unwrap();
    assert_eq!(ssrc, 0x0A0B_0C0D);
    assert_eq!(items.next(), Some((SDES_CNAME, &b"ab"[..])));
    assert_eq!(items.next(), None);

    // Chained builders make the same compound.
    let mut out = [0u8; 64];
    let a = write_receiver_report(&mut out, 0x0A0B_0C0D, &[]).unwrap();
    let b = write_sdes_cname(&mut out[a..], 0x0A0B_0C0D, b"ab").unwrap();
    assert_eq!(&out[..a + b], RTCP_RR_SDES);
}

#[test]
fn padded_receiver_report() {
    let raw = compound_raw(RTCP_RR_PADDED).next().unwrap().unwrap();
    assert_eq!(raw.padding(), 4);
    assert_eq!(raw.body(), [0x0A, 0x0B, 0x0C, 0x0D]);
    let RtcpPacket::ReceiverReport(rr) = only(RTCP_RR_PADDED) else {
        panic!("not an RR");
    };
    assert_eq!(rr.ssrc(), 0x0A0B_0C0D);
}

#[test]
fn app_packet() {
    let raw = RawPacket::parse(RTCP_APP).unwrap();
    assert_eq!(raw.packet_type(), PT_APP);
    let app = App::parse(&raw).unwrap().unwrap();
    assert_eq!(
        app,
        App {
            subtype: 5,
            ssrc: 0x1234_5678,
            name: *b"TEST",
            data: &[0xDE, 0xAD, 0xBE, 0xEF],
        }
    );
    assert_eq!(
        only(RTCP_APP),
        RtcpPacket::Other {
            packet_type: PT_APP,
            body: &RTCP_APP[4..],
        }
    );
    let mut out = [0u8; 16];
    assert_eq!(write_app(&mut out, &app), Ok(16));
    assert_eq!(out, RTCP_APP);
    assert_eq!(App::parse(&RawPacket::parse(RTCP_BYE).unwrap()), Ok(None));
}

#[test]
fn sdes_with_several_chunks_and_items() {
    let mut out = [0u8; 128];
    let n = write_sdes(
        &mut out,
        &[
            (1, &[(1, b"a"), (2, b"Alice")]),
            (2, &[]),
            (3, &[(1, b"bcd")]),
        ],
    )
    .unwrap();
    assert_eq!(n % 4, 0);
    let RtcpPacket::Sdes(sdes) = only(&out[..n]) else {
        panic!("not SDES");
    };
    let chunks: Vec<(u32, Vec<SdesItem<'_>>)> = sdes
        .chunks()
        .map(|(ssrc, items)| (ssrc, items.collect()))
        .collect();
    assert_eq!(
        chunks,
        [
            (1, vec![(1, &b"a"[..]), (2, &b"Alice"[..])]),
            (2, vec![]),
            (3, vec![(1, &b"bcd"[..])]),
        ]
    );
}

#[test]
fn report_count_beyond_the_body_is_truncation() {
    let mut sr = RTCP_SR.to_vec();
    sr[0] = 0x82; // claims two report blocks, carries one
    assert_eq!(
        compound(&sr).next(),
        Some(Err(RtcpError::Truncated {
            expected: 72,
            actual: 48
        }))
    );
}

#[test]
fn malformed_headers_are_errors_with_context() {
    assert_eq!(
        compound(&RTCP_SR[..3]).next(),
        Some(Err(RtcpError::Truncated {
            expected: 4,
            actual: 3
        }))
    );
    assert_eq!(
        compound(&RTCP_SR[..40]).next(),
        Some(Err(RtcpError::Truncated {
            expected: 52,
            actual: 40
        }))
    );
    let mut zero = RTCP_RR_PADDED.to_vec();
    zero[11] = 0;
    assert_eq!(compound(&zero).next(), Some(Err(RtcpError::ZeroPadding)));
    let mut long = RTCP_RR_PADDED.to_vec();
    long[11] = 9;
    assert_eq!(
        compound(&long).next(),
        Some(Err(RtcpError::PaddingTooLong {
            padding: 9,
            available: 8
        }))
    );
    let mut unterminated = RTCP_SDES_CNAME.to_vec();
    unterminated[9] = 14; // CNAME runs to the end: no null octet left
    assert!(matches!(
        compound(&unterminated).next(),
        Some(Err(RtcpError::Truncated { .. }))
    ));
}

#[test]
fn builders_reject_caller_mistakes() {
    let mut out = [0u8; 1024];
    let blocks = [ReportBlock::default(); 32];
    assert_eq!(
        write_receiver_report(&mut out, 1, &blocks),
        Err(RtcpError::TooMany { count: 32 })
    );
    assert_eq!(
        write_sender_report(&mut out[..50], 1, &golden_info(), &[golden_block()]),
        Err(RtcpError::BufferTooSmall {
            needed: 52,
            available: 50
        })
    );
    assert_eq!(
        write_sdes_cname(&mut out, 1, &[b'x'; 256]),
        Err(RtcpError::TooLong { len: 256 })
    );
    assert_eq!(
        write_sdes(&mut out, &[(1, &[(0, b"x")])]),
        Err(RtcpError::InvalidType { value: 0 })
    );
    assert_eq!(
        write_bye(&mut out, &[0; 32], None),
        Err(RtcpError::TooMany { count: 32 })
    );
    let app = App {
        subtype: 0,
        ssrc: 0,
        name: *b"ABCD",
        data: &[1, 2, 3],
    };
    assert_eq!(
        write_app(&mut out, &app),
        Err(RtcpError::Unaligned { len: 3 })
    );
}
