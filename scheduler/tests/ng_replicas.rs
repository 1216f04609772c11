//! Any scheduler replica serves any ng offer/answer call (issue 14). Two scheduler replicas and
//! one worker registered with both, real processes on loopback: the offer goes to replica 1; the
//! answer, a re-offer from the callee with a new port, a query and the delete go to replica 2;
//! the re-offer's answer goes back to replica 1, which must not trust what it saw at the offer.
//! RTP flows both ways through the worker after the answer and after the re-offer. An answer for
//! a call nobody offered is "Unknown call-id" and leaves no session on the worker.
//!
//! The worker binary comes from the same target directory (`cargo build -p bridgepool-worker`).

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{EncoderConfig, OpusDecoder, OpusEncoder, SampleRate};
use bridgepool_codecs::rtp::{RtpHeader, RtpPacket};
use bridgepool_ng::{Dict, Value};
use bridgepool_proto::v1;
use bridgepool_proto::v1::worker_client::WorkerClient;
use bridgepool_sdp::{Audio, Description};

mod common;

use common::{Pool, ng, sdp, udp_socket as socket};

fn opus_sdp(port: u16) -> String {
    sdp(
        port,
        "96",
        "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n",
    )
}

fn pcmu_sdp(port: u16) -> String {
    sdp(port, "0", "a=rtpmap:0 PCMU/8000\r\n")
}

/// The audio stream of a reply's SDP.
fn audio(reply: &Dict) -> Audio {
    let text = reply.str("sdp").expect("an sdp in the reply");
    Description::parse(text).unwrap().audio().unwrap()
}

fn request(command: &str, call: &str, from: &str, to: Option<&str>) -> Dict {
    let d = Dict::new()
        .with("command", command)
        .with("call-id", call)
        .with("from-tag", from)
        .with("supports", Value::str_list(&["load limit"]));
    match to {
        Some(t) => d.with("to-tag", t),
        None => d,
    }
}

fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 12 + payload.len()];
    let h = RtpHeader {
        marker: seq == 0,
        payload_type: pt,
        sequence_number: seq,
        timestamp: ts,
        ssrc,
    }
    .write(&mut buf)
    .unwrap();
    buf[h..].copy_from_slice(payload);
    buf
}

fn tone(n: usize, step: f32) -> Vec<i16> {
    (0..n)
        .map(|i| ((i as f32 * step).sin() * 8000.0) as i16)
        .collect()
}

/// RTP datagrams received, as (payload type, payload).
type Received = Vec<(u8, Vec<u8>)>;

/// 40 packets each way, 20 ms apart, from packet `from` of each stream on (a re-INVITE does not
/// restart a stream): PCMU from `a` to `to_a`, Opus (PT 96) from `b` to `to_b`. Returns what
/// `a` and `b` received, as (payload type, payload).
fn talk(
    from: u16,
    a: &UdpSocket,
    to_a: SocketAddr,
    b: &UdpSocket,
    to_b: SocketAddr,
) -> (Received, Received) {
    let mut encoder = OpusEncoder::new(&EncoderConfig::webrtc_client()).unwrap();
    let mut g711 = [0u8; 160];
    Law::Ulaw.encode(&tone(160, 0.05), &mut g711);
    let pcm48 = tone(960, 0.01);
    let mut opus = [0u8; 1500];
    let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 1500];
    let drain = |s: &UdpSocket, into: &mut Received, buf: &mut [u8]| {
        while let Ok(n) = s.recv(buf) {
            if let Ok(p) = RtpPacket::parse(&buf[..n])
                && !bridgepool_codecs::rtp::is_rtcp(&buf[..n])
            {
                into.push((p.payload_type(), p.payload().to_vec()));
            }
        }
    };
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    for i in from..from + 40 {
        a.send_to(&packet(0, i, 160 * u32::from(i), 0xA, &g711), to_a)
            .unwrap();
        let n = encoder.encode(&pcm48, &mut opus).unwrap();
        b.send_to(&packet(96, i, 960 * u32::from(i), 0xB, &opus[..n]), to_b)
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drain(a, &mut at_a, &mut buf);
        drain(b, &mut at_b, &mut buf);
    }
    std::thread::sleep(Duration::from_millis(200));
    drain(a, &mut at_a, &mut buf);
    drain(b, &mut at_b, &mut buf);
    (at_a, at_b)
}

/// Transcoded both ways: PCMU at `a`, decodable Opus at `b`.
fn assert_transcoded(at_a: &[(u8, Vec<u8>)], at_b: &[(u8, Vec<u8>)], when: &str) {
    let pcmu = at_a.iter().filter(|(pt, p)| *pt == 0 && p.len() == 160);
    assert!(
        pcmu.count() >= 20,
        "{when}: PCMU toward the caller: {at_a:?}"
    );
    let mut decoder = OpusDecoder::new(SampleRate::Hz48000).unwrap();
    let mut pcm = vec![0i16; 5760];
    let opus: Vec<_> = at_b.iter().filter(|(pt, _)| *pt == 96).collect();
    assert!(opus.len() >= 20, "{when}: Opus toward the callee: {at_b:?}");
    for (_, p) in opus {
        assert_eq!(decoder.decode(p, &mut pcm).unwrap(), 960, "{when}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_answer_reoffer_query_and_delete_go_to_another_replica() {
    let pool = Pool::start(
        2,
        &[
            "--media-ip",
            "127.0.0.1",
            "--rtp-port-min",
            "47600",
            "--rtp-port-max",
            "47799",
        ],
    )
    .await;
    let (one, two) = (pool.replicas[0].ng, pool.replicas[1].ng);
    let sock = socket();
    let (caller, callee) = (socket(), socket());
    let port = |s: &UdpSocket| s.local_addr().unwrap().port();

    // An answer for a call nobody offered: refused by either replica, and nothing is created.
    for (i, r) in [one, two].into_iter().enumerate() {
        let answer = request("answer", "nobody", "f", Some("t")).with("sdp", opus_sdp(4000));
        assert_eq!(
            ng(&sock, r, &format!("u{i}"), &answer),
            Err("Unknown call-id".to_owned())
        );
    }
    let mut worker = WorkerClient::connect(format!("http://{}", pool.worker_grpc))
        .await
        .unwrap();
    let find = async |w: &mut WorkerClient<_>, call: &str| {
        w.find_sessions(v1::FindSessionsRequest {
            call_id: call.to_owned(),
            from_tag: String::new(),
            without_figures: false,
        })
        .await
        .unwrap()
        .into_inner()
        .sessions
    };
    assert!(find(&mut worker, "nobody").await.is_empty());

    // The caller's PCMU offer, transcoding to Opus allowed: replica 1.
    let offer = request("offer", "rep-1", "caller", None)
        .with("label", "caller-side")
        .with(
            "codec",
            Dict::new().with("transcode", Value::str_list(&["opus"])),
        )
        .with("sdp", pcmu_sdp(port(&caller)));
    let offered = ng(&sock, one, "o1", &offer).expect("offer");
    let to_b = audio(&offered).socket_addr();
    assert!(audio(&offered).codec("opus", 48000).is_some(), "Opus added");

    // The callee answers Opus only: replica 2, which never saw the offer, transcodes.
    let answer = request("answer", "rep-1", "caller", Some("callee"))
        .with("label", "callee-side")
        .with("sdp", opus_sdp(port(&callee)));
    let answered = ng(&sock, two, "a1", &answer).expect("answer through the other replica");
    let back = audio(&answered);
    let names: Vec<&str> = back.codecs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["PCMU"], "only what the caller offered");
    let to_a = back.socket_addr();
    let (at_caller, at_callee) = talk(0, &caller, to_a, &callee, to_b);
    assert_transcoded(&at_caller, &at_callee, "after the answer");

    // The callee re-offers from a new port (in-dialogue: tags swapped): replica 2 again. Our
    // port toward the caller stays.
    let moved = socket();
    let reoffer =
        request("offer", "rep-1", "callee", Some("caller")).with("sdp", opus_sdp(port(&moved)));
    let reoffered = ng(&sock, two, "o2", &reoffer).expect("re-offer");
    assert_eq!(audio(&reoffered).socket_addr(), to_a, "our port stays");
    assert!(audio(&reoffered).codec("PCMU", 8000).is_some());
    // The caller's answer to it reaches replica 1, which took the first offer: it must answer
    // the re-offer (state from the worker), not its own memory of the first offer.
    let reanswer =
        request("answer", "rep-1", "callee", Some("caller")).with("sdp", pcmu_sdp(port(&caller)));
    let reanswered = ng(&sock, one, "a2", &reanswer).expect("answer to the re-offer");
    let back = audio(&reanswered);
    assert_eq!(back.socket_addr(), to_b, "our port toward the callee stays");
    assert!(back.codec("opus", 48000).is_some(), "{back:?}");
    let (at_caller, at_moved) = talk(40, &caller, to_a, &moved, to_b);
    assert_transcoded(&at_caller, &at_moved, "after the re-offer, at the new port");

    // Query and delete through replica 2: the labels given to replica 1 (offer) and replica 2
    // (answer) are both there, with the call's figures.
    let query = ng(&sock, two, "q1", &request("query", "rep-1", "caller", None)).unwrap();
    let tags = query.get("tags").and_then(Value::as_dict).expect("tags");
    let label = |tag: &str| {
        tags.get(tag)
            .and_then(|t| t.get("label"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    assert_eq!(label("caller").as_deref(), Some("caller-side"), "{query:?}");
    assert_eq!(label("callee").as_deref(), Some("callee-side"), "{query:?}");
    let packets = |d: &Dict| {
        d.get("totals")
            .and_then(|t| t.get("RTP"))
            .and_then(|r| r.get("packets"))
            .and_then(Value::as_int)
            .unwrap_or(0)
    };
    assert!(packets(&query) >= 100, "{query:?}");
    let deleted = ng(
        &sock,
        two,
        "d1",
        &request("delete", "rep-1", "caller", None),
    )
    .unwrap();
    assert!(deleted.get("warning").is_none(), "{deleted:?}");
    assert!(packets(&deleted) >= 100, "{deleted:?}");
    assert!(find(&mut worker, "rep-1").await.is_empty(), "deleted");

    // Replica 1 remembered where the call was: it finds it gone, not a stale copy.
    let late = request("answer", "rep-1", "caller", Some("callee")).with("sdp", opus_sdp(4000));
    assert_eq!(
        ng(&sock, one, "a3", &late),
        Err("Unknown call-id".to_owned())
    );
    assert_eq!(
        ng(&sock, one, "q2", &request("query", "rep-1", "caller", None)),
        Err("Unknown call-id".to_owned())
    );
    assert!(find(&mut worker, "rep-1").await.is_empty());
}
