//! Properties: any typed `transform` request survives encode -> decode (bencode and JSON); wrong
//! types and missing keys in a request give an error, never a panic.

use bridgepool_ng::{
    CodecPair, CodecSpec, Dict, Encoding, Message, TransformMedia, TransformRequest, Value, frame,
};
use proptest::prelude::*;

fn spec() -> impl Strategy<Value = CodecSpec> {
    (
        prop::sample::select(vec!["PCMU", "PCMA", "opus", "G722"]),
        0u8..128,
        prop::sample::select(vec![8000u32, 16000, 48000]),
        1u8..3,
        "[a-z=;0-9 ]{0,30}",
    )
        .prop_map(
            |(codec, payload_type, clock_rate, channels, format)| CodecSpec {
                codec: codec.into(),
                payload_type,
                clock_rate,
                channels,
                format,
                options: String::new(),
            },
        )
}

fn request() -> impl Strategy<Value = TransformRequest> {
    (
        proptest::option::of("[ -~]{0,40}"),
        proptest::option::of("[ -~]{0,40}"),
        prop::collection::vec((spec(), spec()), 1..4),
        any::<[u8; 4]>(),
        1u16..,
        proptest::option::of("[a-f0-9]{12}"),
    )
        .prop_map(|(call_id, from_tag, pairs, ip, port, instance)| {
            // Distinct input payload types, as the request requires.
            let mut codecs: Vec<CodecPair> = Vec::new();
            for (input, output) in pairs {
                if !codecs
                    .iter()
                    .any(|c| c.input.payload_type == input.payload_type)
                {
                    codecs.push(CodecPair { input, output });
                }
            }
            TransformRequest {
                call_id,
                from_tag,
                media: vec![TransformMedia {
                    id: None,
                    media_type: "audio".into(),
                    codecs,
                    destination: (std::net::Ipv4Addr::from(ip), port).into(),
                }],
                interface: None,
                instance,
                jitter_buffer: None,
            }
        })
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        "[ -~]{0,12}".prop_map(|s| Value::str(&s)),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "media",
                        "codec",
                        "input",
                        "output",
                        "destination",
                        "port",
                        "address",
                        "family",
                        "payload type",
                        "clock rate",
                        "channels",
                        "call-id",
                    ]),
                    inner
                ),
                0..5
            )
            .prop_map(|kv| {
                let mut d = Dict::new();
                for (k, v) in kv {
                    d.push(k, v);
                }
                Value::Dict(d)
            }),
        ]
    })
}

proptest! {
    #[test]
    fn transform_request_round_trips(req in request(), json in any::<bool>()) {
        let encoding = if json { Encoding::Json } else { Encoding::Bencode };
        let bytes = frame(b"c", &req.to_body(), encoding);
        let m = Message::parse(&bytes).unwrap();
        prop_assert_eq!(m.encoding, encoding);
        prop_assert_eq!(TransformRequest::from_body(&m.body).unwrap(), req);
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics(media in value(), extra in value()) {
        let body = Dict::new().with("command", "transform").with("media", media).with("x", extra);
        let _ = TransformRequest::from_body(&body);
        let bytes = frame(b"c", &body, Encoding::Bencode);
        let m = Message::parse(&bytes).unwrap();
        let _ = TransformRequest::from_body(&m.body);
    }
}
