//! The `codec` dictionary's `set` operation (issue 14): `set: ["opus/48000/2/8000"]` on the offer
//! makes the Opus the pool encodes toward the callee 8 kbit/s; the same call without it gets the
//! pool's default (28 kbit/s at most). Compared by the Opus payload sizes the callee receives for
//! the same PCMU input, never by time. Real scheduler and worker processes over UDP on loopback.

mod common;
mod ngpool;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::rtp::{RtpHeader, RtpPacket, is_rtcp};
use bridgepool_ng::{Dict, Value};
use bridgepool_sdp::Description;
use common::{sdp, udp_socket as socket};

/// One ng request that must succeed.
fn ng(sock: &UdpSocket, to: SocketAddr, cookie: &str, body: &Dict) -> Dict {
    common::ng(sock, to, cookie, body).expect("refused")
}

/// Mean Opus payload size the callee receives for 2 s of a PCMU tone, with `codec` on the offer.
fn opus_payload(sock: &UdpSocket, ng_at: SocketAddr, id: &str, codec: Dict) -> f64 {
    let (a, b) = (socket(), socket());
    let port = |s: &UdpSocket| s.local_addr().unwrap().port();
    let offer = Dict::new()
        .with("command", "offer")
        .with("call-id", id)
        .with("from-tag", "caller")
        .with("codec", codec)
        .with("sdp", sdp(port(&a), "0", ""));
    ng(sock, ng_at, &format!("{id}-o"), &offer);
    let answer = Dict::new()
        .with("command", "answer")
        .with("call-id", id)
        .with("from-tag", "caller")
        .with("to-tag", "callee")
        .with("sdp", sdp(port(&b), "96", "a=rtpmap:96 opus/48000/2\r\n"));
    let answered = ng(sock, ng_at, &format!("{id}-a"), &answer);
    let text = answered.str("sdp").unwrap();
    let to_a = Description::parse(text)
        .unwrap()
        .audio()
        .unwrap()
        .socket_addr();

    b.set_nonblocking(true).unwrap();
    let mut sizes = Vec::new();
    let mut buf = [0u8; 1500];
    let mut payload = [0u8; 160];
    for i in 0..100u16 {
        // A two-tone signal: enough content that the encoder uses the bitrate it is given.
        let pcm: Vec<i16> = (0..160)
            .map(|n| {
                let t = f32::from(i) * 160.0 + n as f32;
                ((t * 0.11).sin() * 6000.0 + (t * 0.37).sin() * 4000.0) as i16
            })
            .collect();
        Law::Ulaw.encode(&pcm, &mut payload);
        let mut pkt = vec![0u8; 172];
        RtpHeader {
            marker: i == 0,
            payload_type: 0,
            sequence_number: i,
            timestamp: 160 * u32::from(i),
            ssrc: 0xA,
        }
        .write(&mut pkt)
        .unwrap();
        pkt[12..].copy_from_slice(&payload);
        a.send_to(&pkt, to_a).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        while let Ok(n) = b.recv(&mut buf) {
            if !is_rtcp(&buf[..n])
                && let Ok(p) = RtpPacket::parse(&buf[..n])
                && p.payload_type() == 96
            {
                sizes.push(p.payload().len());
            }
        }
    }
    assert!(sizes.len() >= 50, "{id}: only {} Opus packets", sizes.len());
    // The first packets are the encoder's ramp-up: the steady half decides.
    let steady = &sizes[sizes.len() / 2..];
    steady.iter().sum::<usize>() as f64 / steady.len() as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn codec_set_gives_the_opus_encoder_its_bitrate() {
    let pool = ngpool::start("set-w1", "0.01", 47300).await;
    let sock = socket();
    let plain = opus_payload(
        &sock,
        pool.ng,
        "set-0",
        Dict::new().with("transcode", Value::str_list(&["opus"])),
    );
    let set = opus_payload(
        &sock,
        pool.ng,
        "set-1",
        Dict::new()
            .with("transcode", Value::str_list(&["opus"]))
            .with("set", Value::str_list(&["opus/48000/2/8000"])),
    );
    // 8 kbit/s is 20 bytes per 20 ms frame; the default is several times that.
    assert!(set <= 30.0, "with set: {set:.1} bytes per packet");
    assert!(
        set * 2.0 < plain,
        "with set {set:.1} bytes per packet, without {plain:.1}"
    );
}
