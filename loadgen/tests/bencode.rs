//! Bencode golden vectors, round trips and rejects; ng framing and replies.

use std::collections::BTreeMap;

use bridgepool_loadgen::bencode::{self, BencodeError, MAX_DEPTH, Value};
use bridgepool_loadgen::ng::{self, NgError};

#[test]
fn golden_vectors_decode_and_encode() {
    // BEP 3's examples, plus edge cases.
    let cases: Vec<(&[u8], Value)> = vec![
        (b"i3e", Value::Int(3)),
        (b"i-3e", Value::Int(-3)),
        (b"i0e", Value::Int(0)),
        (b"i9223372036854775807e", Value::Int(i64::MAX)),
        (b"i-9223372036854775808e", Value::Int(i64::MIN)),
        (b"4:spam", Value::str("spam")),
        (b"0:", Value::Bytes(Vec::new())),
        (b"3:\x00\xff:", Value::Bytes(vec![0, 0xff, b':'])),
        (b"l4:spam4:eggse", Value::str_list(&["spam", "eggs"])),
        (b"le", Value::List(Vec::new())),
        (b"de", Value::Dict(BTreeMap::new())),
        (
            b"d3:cow3:moo4:spam4:eggse",
            Value::dict([("cow", Value::str("moo")), ("spam", Value::str("eggs"))]),
        ),
        (
            b"d4:spaml1:a1:bee",
            Value::dict([("spam", Value::str_list(&["a", "b"]))]),
        ),
        (
            b"d1:ad1:bli1ei-2eeee",
            Value::dict([(
                "a",
                Value::dict([("b", Value::List(vec![Value::Int(1), Value::Int(-2)]))]),
            )]),
        ),
    ];
    for (bytes, value) in cases {
        assert_eq!(
            bencode::decode(bytes).as_ref(),
            Ok(&value),
            "decoding {:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(value.encode(), bytes, "encoding {value:?}");
    }
}

#[test]
fn encode_sorts_dictionary_keys_and_decode_accepts_any_order() {
    let v = Value::dict([
        ("zeta", Value::Int(1)),
        ("alpha", Value::Int(2)),
        ("mid", Value::Int(3)),
    ]);
    assert_eq!(v.encode(), b"d5:alphai2e3:midi3e4:zetai1ee");
    let unsorted = bencode::decode(b"d4:zetai1e5:alphai2e3:midi3ee").unwrap();
    assert_eq!(unsorted, v);
}

#[test]
fn round_trip_of_generated_values() {
    // A deterministic spread of shapes and byte values, nested.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    fn build(next: &mut dyn FnMut() -> u64, depth: u32) -> Value {
        match next() % if depth > 3 { 2 } else { 4 } {
            0 => Value::Int(next() as i64),
            1 => Value::Bytes((0..next() % 20).map(|_| next() as u8).collect()),
            2 => Value::List((0..next() % 4).map(|_| build(next, depth + 1)).collect()),
            _ => Value::Dict(
                (0..next() % 4)
                    .map(|_| {
                        (
                            (0..1 + next() % 6).map(|_| next() as u8).collect(),
                            build(next, depth + 1),
                        )
                    })
                    .collect(),
            ),
        }
    }
    for _ in 0..500 {
        let v = build(&mut next, 0);
        let bytes = v.encode();
        assert_eq!(bencode::decode(&bytes), Ok(v.clone()), "{bytes:?}");
        assert_eq!(bencode::decode(&bytes).unwrap().encode(), bytes);
    }
}

#[test]
fn malformed_input_is_rejected_with_a_reason() {
    let cases: Vec<(&[u8], BencodeError)> = vec![
        (b"", BencodeError::UnexpectedEnd { at: 0 }),
        (b"i03e", BencodeError::InvalidNumber { at: 1 }),
        (b"i-0e", BencodeError::InvalidNumber { at: 1 }),
        (b"ie", BencodeError::InvalidNumber { at: 1 }),
        (b"i1x2e", BencodeError::InvalidNumber { at: 1 }),
        (
            b"i99999999999999999999e",
            BencodeError::InvalidNumber { at: 1 },
        ),
        (b"i12", BencodeError::UnexpectedEnd { at: 3 }),
        (b"4:spa", BencodeError::UnexpectedEnd { at: 5 }),
        (b"04:spam", BencodeError::InvalidNumber { at: 0 }),
        (b"l4:spam", BencodeError::UnexpectedEnd { at: 7 }),
        (b"di1ei2ee", BencodeError::KeyNotBytes { at: 1 }),
        (b"i1ei2e", BencodeError::TrailingData { extra: 3 }),
        (b"x", BencodeError::UnexpectedByte { at: 0, byte: b'x' }),
    ];
    for (bytes, err) in cases {
        assert_eq!(
            bencode::decode(bytes),
            Err(err),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let deep = [vec![b'l'; MAX_DEPTH + 2], vec![b'e'; MAX_DEPTH + 2]].concat();
    assert_eq!(bencode::decode(&deep), Err(BencodeError::TooDeep));
    let ok_depth = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
    assert!(bencode::decode(&ok_depth).is_ok());
}

#[test]
fn ng_offer_is_framed_as_rtpengine_expects() {
    let offer = ng::offer(
        "c1",
        "c1-A",
        "v=0\r\n",
        Some((&["opus/48000/2"], &["PCMU"])),
    );
    let datagram = ng::frame("5_1", &offer);
    // Keys sort bytewise: uppercase "ICE" first; inside "codec", "mask" before "transcode".
    let expected: &[u8] =
        b"5_1 d3:ICE6:remove7:call-id2:c15:codecd4:maskl4:PCMUe9:transcodel12:opus/48000/2ee\
        7:command5:offer8:from-tag4:c1-A7:replacel6:origin18:session-connectione3:sdp5:v=0\r\ne";
    assert_eq!(
        String::from_utf8_lossy(&datagram),
        String::from_utf8_lossy(expected)
    );
    let delete = ng::frame("x", &ng::delete("c1", "c1-A"));
    assert_eq!(
        delete,
        b"x d7:call-id2:c17:command6:delete8:from-tag4:c1-Ae"
    );
}

#[test]
fn ng_replies_are_checked() {
    let ok = b"7_3 d3:sdp4:v=0\n6:result2:oke";
    let reply = ng::parse_reply(ok, "7_3").unwrap();
    assert_eq!(ng::reply_sdp(&reply), Ok("v=0\n"));
    assert!(matches!(
        ng::parse_reply(ok, "7_4"),
        Err(NgError::CookieMismatch { .. })
    ));
    let refused = b"c d6:result5:error12:error-reason12:Unknown calle";
    assert_eq!(
        ng::parse_reply(refused, "c"),
        Err(NgError::Refused {
            reason: "Unknown call".into()
        })
    );
    assert_eq!(ng::parse_reply(b"nocookie", "c"), Err(NgError::NoCookie));
    assert!(matches!(
        ng::parse_reply(b"c i1", "c"),
        Err(NgError::Bencode(_))
    ));
    assert_eq!(ng::parse_reply(b"c de", "c"), Err(NgError::NoResult));
    assert!(
        ng::parse_reply(b"c d6:result4:ponge", "c").is_ok(),
        "ping's answer"
    );
    let no_sdp = ng::parse_reply(b"c d6:result2:oke", "c").unwrap();
    assert_eq!(
        ng::reply_sdp(&no_sdp),
        Err(NgError::NoSdp {
            keys: "result".into()
        })
    );
}
