//! Any compound RTCP: walking it never panics, and every SR, RR, SDES and BYE that parses is
//! written again by the builders to a packet that parses to the same fields.
#![no_main]

use bridgepool_codecs::rtcp::{
    RtcpPacket, SdesItem, compound, write_bye, write_receiver_report, write_sdes,
    write_sender_report,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check(data));

/// One SDES chunk, owned: `(ssrc, [(item_type, data)])`.
type Chunk = (u32, Vec<(u8, Vec<u8>)>);

/// Every field of a packet, owned, for comparison.
#[derive(Debug, PartialEq)]
enum Fields {
    Sr(u32, String, Vec<String>),
    Rr(u32, Vec<String>),
    Sdes(Vec<Chunk>),
    Bye(Vec<u32>, Option<Vec<u8>>),
    Other,
}

fn fields(packet: &RtcpPacket<'_>) -> Fields {
    match packet {
        RtcpPacket::SenderReport(sr) => Fields::Sr(
            sr.ssrc(),
            format!("{:?}", sr.sender_info()),
            sr.report_blocks().map(|b| format!("{b:?}")).collect(),
        ),
        RtcpPacket::ReceiverReport(rr) => Fields::Rr(
            rr.ssrc(),
            rr.report_blocks().map(|b| format!("{b:?}")).collect(),
        ),
        RtcpPacket::Sdes(sdes) => Fields::Sdes(
            sdes.chunks()
                .map(|(ssrc, items)| (ssrc, items.map(|(t, d)| (t, d.to_vec())).collect()))
                .collect(),
        ),
        RtcpPacket::Bye(bye) => {
            Fields::Bye(bye.ssrcs().collect(), bye.reason().map(<[u8]>::to_vec))
        }
        RtcpPacket::Other { .. } => Fields::Other,
    }
}

fn rebuild(packet: &RtcpPacket<'_>, out: &mut [u8]) -> Option<usize> {
    Some(match packet {
        RtcpPacket::SenderReport(sr) => {
            let blocks: Vec<_> = sr.report_blocks().collect();
            write_sender_report(out, sr.ssrc(), &sr.sender_info(), &blocks).unwrap()
        }
        RtcpPacket::ReceiverReport(rr) => {
            let blocks: Vec<_> = rr.report_blocks().collect();
            write_receiver_report(out, rr.ssrc(), &blocks).unwrap()
        }
        RtcpPacket::Sdes(sdes) => {
            let chunks: Vec<(u32, Vec<SdesItem<'_>>)> = sdes
                .chunks()
                .map(|(ssrc, items)| (ssrc, items.collect()))
                .collect();
            let refs: Vec<(u32, &[SdesItem<'_>])> = chunks
                .iter()
                .map(|(ssrc, items)| (*ssrc, &items[..]))
                .collect();
            write_sdes(out, &refs).unwrap()
        }
        RtcpPacket::Bye(bye) => {
            let ssrcs: Vec<_> = bye.ssrcs().collect();
            write_bye(out, &ssrcs, bye.reason()).unwrap()
        }
        RtcpPacket::Other { .. } => return None,
    })
}

fn check(data: &[u8]) {
    let mut out = vec![0u8; 2 * data.len() + 64];
    for packet in compound(data).flatten() {
        let Some(n) = rebuild(&packet, &mut out) else {
            continue;
        };
        let again = compound(&out[..n]).next().unwrap().unwrap();
        assert_eq!(fields(&again), fields(&packet));
    }
}
