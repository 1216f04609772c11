//! Conformance against the bytes a real transform-capable rtpengine relay sent and read
//! (`tests/golden/`, extracted from the peer capture `ng.pcap`).

use bridgepool_ng::{Command, Encoding, Message, TransformReply, TransformRequest, client, reply};

const PING: &[u8] = include_bytes!("golden/ping_request.bin");
const PONG: &[u8] = include_bytes!("golden/ping_reply.bin");
const TF_PCMU_OPUS: &[u8] = include_bytes!("golden/transform_pcmu_opus_request.bin");
const TF_PCMU_OPUS_REPLY: &[u8] = include_bytes!("golden/transform_pcmu_opus_reply.bin");
const TF_OPUS_PCMU: &[u8] = include_bytes!("golden/transform_opus_pcmu_request.bin");
const TF_OPUS_PCMU_REPLY: &[u8] = include_bytes!("golden/transform_opus_pcmu_reply.bin");
const DEL_A: &[u8] = include_bytes!("golden/delete_pcmu_opus_request.bin");
const DEL_A_REPLY: &[u8] = include_bytes!("golden/delete_pcmu_opus_reply.bin");
const DEL_B: &[u8] = include_bytes!("golden/delete_opus_pcmu_request.bin");

#[test]
fn ping_and_our_pong_is_byte_identical() {
    let m = Message::parse(PING).unwrap();
    assert_eq!(Command::from_body(&m.body), Some(Command::Ping));
    let out = bridgepool_ng::frame(&m.cookie, &reply::pong(), m.encoding);
    assert_eq!(out, PONG);
}

#[test]
fn transform_pcmu_to_opus_request() {
    let m = Message::parse(TF_PCMU_OPUS).unwrap();
    assert_eq!(m.cookie, b"e4d617402d389865");
    assert_eq!(m.encoding, Encoding::Bencode);
    assert_eq!(Command::from_body(&m.body), Some(Command::Transform));
    let req = TransformRequest::from_body(&m.body).unwrap();
    assert_eq!(req.call_id.as_deref(), Some("16072129 for tfm-e2e-1"));
    assert_eq!(req.from_tag.as_deref(), Some("16072129 for tfm-e2e-1-A"));
    assert_eq!(req.instance.as_deref(), Some("f725e85d996b"));
    assert_eq!(req.interface, None);
    assert_eq!(req.media.len(), 1);
    let media = &req.media[0];
    assert_eq!(media.media_type, "audio");
    assert_eq!(media.destination, "127.0.0.1:40401".parse().unwrap());
    assert_eq!(media.codecs.len(), 1);
    let pair = &media.codecs[0];
    assert_eq!(
        (
            pair.input.codec.as_str(),
            pair.input.payload_type,
            pair.input.clock_rate,
            pair.input.channels
        ),
        ("PCMU", 0, 8000, 1)
    );
    assert_eq!(pair.input.format, "");
    assert_eq!(
        (
            pair.output.codec.as_str(),
            pair.output.payload_type,
            pair.output.clock_rate,
            pair.output.channels
        ),
        ("opus", 96, 48000, 2)
    );
    assert_eq!(pair.output.format, "useinbandfec=1");
    assert_eq!(pair.output.fmtp("useinbandfec"), Some("1"));
    assert_eq!(pair.output.options, "");
}

#[test]
fn transform_opus_to_pcmu_request_with_empty_tag() {
    let m = Message::parse(TF_OPUS_PCMU).unwrap();
    let req = TransformRequest::from_body(&m.body).unwrap();
    assert_eq!(req.from_tag.as_deref(), Some("0569f3d5 for "));
    let pair = &req.media[0].codecs[0];
    assert_eq!(
        (pair.input.codec.as_str(), pair.input.payload_type),
        ("opus", 96)
    );
    assert_eq!(
        (pair.output.codec.as_str(), pair.output.payload_type),
        ("PCMU", 0)
    );
    assert_eq!(req.media[0].destination.port(), 40193);
}

/// The relay's request re-encoded by our client API carries the same content (bencode keys come out
/// sorted; the relay's own order is not canonical).
#[test]
fn client_side_request_encodes_the_same_content() {
    let m = Message::parse(TF_PCMU_OPUS).unwrap();
    let req = TransformRequest::from_body(&m.body).unwrap();
    let ours = client::frame("e4d617402d389865", &req.to_body());
    let again = Message::parse(&ours).unwrap();
    assert_eq!(TransformRequest::from_body(&again.body).unwrap(), req);
    assert_eq!(ours.len(), TF_PCMU_OPUS.len());
}

/// rtpengine's replies, read the way the relay reads them.
#[test]
fn captured_transform_replies_parse_as_the_relay_reads_them() {
    for (raw, cookie, port) in [
        (TF_PCMU_OPUS_REPLY, "e4d617402d389865", 41856),
        (TF_OPUS_PCMU_REPLY, "6f3d22e7f90b67db", 41178),
    ] {
        let body = client::parse_reply(raw, cookie).unwrap();
        let r = TransformReply::from_body(&body).unwrap();
        assert_eq!(r.media.len(), 1);
        assert_eq!(r.media[0].id, "0");
        assert_eq!(r.media[0].addr.port(), port);
    }
}

/// Our reply, built from the captured request, is the captured reply byte for byte: rtpengine
/// writes the top level sorted (`call-id, from-tag, media, result`); the media entry's key order is
/// its own (`id, family, address, port`), so only that entry is compared by content.
#[test]
fn our_transform_reply_matches_the_captured_one() {
    let m = Message::parse(TF_PCMU_OPUS).unwrap();
    let req = TransformRequest::from_body(&m.body).unwrap();
    let ours = TransformReply {
        call_id: req.call_id.unwrap(),
        from_tag: req.from_tag.unwrap(),
        media: vec![bridgepool_ng::MediaAddress {
            id: "0".into(),
            addr: "127.0.0.1:41856".parse().unwrap(),
        }],
    };
    let bytes = reply::frame_reply(&m.cookie, &ours.to_body(), m.encoding, 4096);
    let theirs = client::parse_reply(TF_PCMU_OPUS_REPLY, "e4d617402d389865").unwrap();
    let mine = client::parse_reply(&bytes, "e4d617402d389865").unwrap();
    assert_eq!(
        TransformReply::from_body(&mine).unwrap(),
        TransformReply::from_body(&theirs).unwrap()
    );
    assert_eq!(bytes.len(), TF_PCMU_OPUS_REPLY.len());
    assert!(bytes.starts_with(b"e4d617402d389865 d7:call-id22:16072129 for tfm-e2e-18:from-tag24:16072129 for tfm-e2e-1-A5:mediald"));
    assert!(bytes.ends_with(b"ee6:result2:oke"));
}

#[test]
fn deletes_carry_the_reply_ids_and_delay() {
    for (raw, call, tag) in [
        (DEL_A, "16072129 for tfm-e2e-1", "16072129 for tfm-e2e-1-A"),
        (DEL_B, "0569f3d5 for tfm-e2e-1", "0569f3d5 for "),
    ] {
        let m = Message::parse(raw).unwrap();
        assert_eq!(Command::from_body(&m.body), Some(Command::Delete));
        let r = bridgepool_ng::CallRef::from_body(&m.body).unwrap();
        assert_eq!(r.call_id, call);
        assert_eq!(r.from_tag.as_deref(), Some(tag));
        assert_eq!(r.delete_delay, Some(0));
        // Our client builds the same request (same length; keys canonically sorted, where the
        // relay writes `command` first).
        let ours = client::frame(
            std::str::from_utf8(&m.cookie).unwrap(),
            &client::delete(call, tag),
        );
        assert_eq!(ours.len(), raw.len());
        assert_eq!(Message::parse(&ours).unwrap().body.len(), m.body.len());
        let again =
            bridgepool_ng::CallRef::from_body(&Message::parse(&ours).unwrap().body).unwrap();
        assert_eq!(again, r);
    }
    // The relay only reads `result` of T's 1.5 KB stats reply.
    assert!(client::parse_reply(DEL_A_REPLY, "c7805a4ecf1959b7").is_ok());
}
