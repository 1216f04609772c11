//! Property tests for RTCP: build then parse gives the same fields, parse then build gives the same
//! bytes, for SR, RR, SDES and BYE, alone and chained into compounds.

use bridgepool_codecs::rtcp::{
    ReportBlock, RtcpPacket, SdesItem, SenderInfo, compound, write_bye, write_receiver_report,
    write_sdes, write_sender_report,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn block() -> impl Strategy<Value = ReportBlock> {
    (
        any::<u32>(),
        any::<u8>(),
        -0x80_0000i32..=0x7F_FFFF,
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(ssrc, fraction_lost, cumulative_lost, highest_seq, jitter, last_sr, dlsr)| {
                ReportBlock {
                    ssrc,
                    fraction_lost,
                    cumulative_lost,
                    highest_seq,
                    jitter,
                    last_sr,
                    delay_since_last_sr: dlsr,
                }
            },
        )
}

fn info() -> impl Strategy<Value = SenderInfo> {
    (any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
        |(ntp_timestamp, rtp_timestamp, packet_count, octet_count)| SenderInfo {
            ntp_timestamp,
            rtp_timestamp,
            packet_count,
            octet_count,
        },
    )
}

type Chunk = (u32, Vec<(u8, Vec<u8>)>);
type ChunkRef<'a> = (u32, Vec<SdesItem<'a>>);
type ChunkSlice<'a, 'b> = (u32, &'b [SdesItem<'a>]);

fn sdes_chunks() -> impl Strategy<Value = Vec<Chunk>> {
    vec(
        (any::<u32>(), vec((1u8..=8, vec(any::<u8>(), 0..40)), 0..4)),
        0..5,
    )
}

/// Writes any parsed packet again with the builders.
fn rebuild(packet: &RtcpPacket<'_>, out: &mut [u8]) -> usize {
    match packet {
        RtcpPacket::SenderReport(sr) => {
            let blocks: Vec<_> = sr.report_blocks().collect();
            write_sender_report(out, sr.ssrc(), &sr.sender_info(), &blocks).unwrap()
        }
        RtcpPacket::ReceiverReport(rr) => {
            let blocks: Vec<_> = rr.report_blocks().collect();
            write_receiver_report(out, rr.ssrc(), &blocks).unwrap()
        }
        RtcpPacket::Sdes(sdes) => {
            let chunks: Vec<ChunkRef<'_>> = sdes
                .chunks()
                .map(|(ssrc, items)| (ssrc, items.collect()))
                .collect();
            let refs: Vec<ChunkSlice<'_, '_>> = chunks
                .iter()
                .map(|(ssrc, items)| (*ssrc, &items[..]))
                .collect();
            write_sdes(out, &refs).unwrap()
        }
        RtcpPacket::Bye(bye) => {
            let ssrcs: Vec<_> = bye.ssrcs().collect();
            write_bye(out, &ssrcs, bye.reason()).unwrap()
        }
        RtcpPacket::Other { .. } => unreachable!("only SR, RR, SDES and BYE are generated"),
    }
}

/// Parses a compound and writes every packet again; returns the bytes.
fn reparse_and_rebuild(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; bytes.len() + 64];
    let mut at = 0;
    for packet in compound(bytes) {
        at += rebuild(&packet.unwrap(), &mut out[at..]);
    }
    out.truncate(at);
    out
}

proptest! {
    #[test]
    fn sender_report_round_trip(
        ssrc in any::<u32>(),
        info in info(),
        blocks in vec(block(), 0..=31),
    ) {
        let mut out = [0u8; 1024];
        let n = write_sender_report(&mut out, ssrc, &info, &blocks).unwrap();
        prop_assert_eq!(n, 28 + 24 * blocks.len());
        let Some(Ok(RtcpPacket::SenderReport(sr))) = compound(&out[..n]).next() else {
            panic!("not an SR");
        };
        prop_assert_eq!(sr.ssrc(), ssrc);
        prop_assert_eq!(sr.sender_info(), info);
        prop_assert_eq!(sr.report_blocks().collect::<Vec<_>>(), blocks);
        prop_assert_eq!(reparse_and_rebuild(&out[..n]), &out[..n]);
    }

    #[test]
    fn receiver_report_round_trip(ssrc in any::<u32>(), blocks in vec(block(), 0..=31)) {
        let mut out = [0u8; 1024];
        let n = write_receiver_report(&mut out, ssrc, &blocks).unwrap();
        let Some(Ok(RtcpPacket::ReceiverReport(rr))) = compound(&out[..n]).next() else {
            panic!("not an RR");
        };
        prop_assert_eq!(rr.ssrc(), ssrc);
        prop_assert_eq!(rr.report_blocks().collect::<Vec<_>>(), blocks);
        prop_assert_eq!(reparse_and_rebuild(&out[..n]), &out[..n]);
    }

    #[test]
    fn any_report_bytes_round_trip(
        sender in any::<bool>(),
        count in 0usize..=31,
        seed in vec(any::<u8>(), 24 + 31 * 24),
    ) {
        // Arbitrary body bytes of exactly the right length: every field value must survive,
        // including any 24-bit cumulative loss.
        let body_len = if sender { 24 } else { 4 } + 24 * count;
        let mut bytes = vec![0x80 | count as u8, if sender { 200 } else { 201 }];
        bytes.extend(((body_len / 4) as u16).to_be_bytes());
        bytes.extend(&seed[..body_len]);
        prop_assert_eq!(reparse_and_rebuild(&bytes), bytes);
    }

    #[test]
    fn sdes_round_trip(chunks in sdes_chunks()) {
        let refs: Vec<ChunkRef<'_>> = chunks
            .iter()
            .map(|(ssrc, items)| (*ssrc, items.iter().map(|(t, d)| (*t, &d[..])).collect()))
            .collect();
        let refs: Vec<ChunkSlice<'_, '_>> =
            refs.iter().map(|(ssrc, items)| (*ssrc, &items[..])).collect();
        let mut out = [0u8; 1024];
        let n = write_sdes(&mut out, &refs).unwrap();
        prop_assert_eq!(n % 4, 0);
        let Some(Ok(RtcpPacket::Sdes(sdes))) = compound(&out[..n]).next() else {
            panic!("not SDES");
        };
        let parsed: Vec<Chunk> = sdes
            .chunks()
            .map(|(ssrc, items)| (ssrc, items.map(|(t, d)| (t, d.to_vec())).collect()))
            .collect();
        prop_assert_eq!(parsed, chunks);
        prop_assert_eq!(reparse_and_rebuild(&out[..n]), &out[..n]);
    }

    #[test]
    fn bye_round_trip(
        ssrcs in vec(any::<u32>(), 0..=31),
        reason in proptest::option::of(vec(any::<u8>(), 0..=255)),
    ) {
        let mut out = [0u8; 512];
        let n = write_bye(&mut out, &ssrcs, reason.as_deref()).unwrap();
        prop_assert_eq!(n % 4, 0);
        let Some(Ok(RtcpPacket::Bye(bye))) = compound(&out[..n]).next() else {
            panic!("not BYE");
        };
        prop_assert_eq!(bye.ssrcs().collect::<Vec<_>>(), ssrcs);
        prop_assert_eq!(bye.reason(), reason.as_deref());
        prop_assert_eq!(reparse_and_rebuild(&out[..n]), &out[..n]);
    }

    #[test]
    fn compound_of_report_sdes_bye(
        ssrc in any::<u32>(),
        info in info(),
        blocks in vec(block(), 0..4),
        cname in vec(any::<u8>(), 0..=255),
        reason in proptest::option::of(vec(any::<u8>(), 0..20)),
    ) {
        let mut out = [0u8; 1024];
        let mut n = write_sender_report(&mut out, ssrc, &info, &blocks).unwrap();
        n += write_sdes(&mut out[n..], &[(ssrc, &[(1, &cname[..])])]).unwrap();
        n += write_bye(&mut out[n..], &[ssrc], reason.as_deref()).unwrap();
        let kinds: Vec<_> = compound(&out[..n])
            .map(|p| match p.unwrap() {
                RtcpPacket::SenderReport(_) => "sr",
                RtcpPacket::Sdes(_) => "sdes",
                RtcpPacket::Bye(_) => "bye",
                _ => "other",
            })
            .collect();
        prop_assert_eq!(kinds, ["sr", "sdes", "bye"]);
        prop_assert_eq!(reparse_and_rebuild(&out[..n]), &out[..n]);
    }
}
