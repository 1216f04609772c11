//! rtpengine as the target, over its ng control protocol (bencode over UDP), as Kamailio's
//! rtpengine module drives it: `offer` with A's SDP (and, for a transcoding call,
//! `codec: {transcode: [opus/48000/2], mask: [PCMU]}` so B is offered Opus only), `answer` with
//! B's SDP, `delete` at the end.
//!
//! Each request goes out from a fresh ephemeral socket and is retransmitted with the same cookie
//! on timeout (rtpengine answers a repeated cookie from its cache, so a retry is idempotent).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::{Allocation, BoxFuture, CallHandle, CallRequest, LegMedia, Target, TargetError};
use bridgepool_ng::Dict;
use bridgepool_ng::client::{self as ng, ReplyError};
use bridgepool_sdp::{Audio, Codec, Description};

use crate::media::{MediaCodec, PTIME_MS, TELEPHONE_EVENT_8K_PT};

/// The Opus format the loadgen asks rtpengine to transcode to, as Kamailio would write it.
const OPUS_CODEC: &str = "opus/48000/2";

/// An rtpengine daemon's `listen-ng` socket.
pub struct RtpengineTarget {
    name: &'static str,
    ng: SocketAddr,
    timeout: Duration,
    retries: u32,
}

impl RtpengineTarget {
    /// Talks to `ng`; each attempt waits `timeout`, a request is sent `1 + retries` times.
    pub fn new(ng: SocketAddr, timeout: Duration, retries: u32) -> Self {
        Self {
            name: "rtpengine",
            ng,
            timeout,
            retries,
        }
    }

    /// The same client under another report name (`bridgepool-ng` for the scheduler's ng port).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Checks that the daemon answers (`ping` / `pong`).
    pub async fn ping(&self) -> Result<(), TargetError> {
        self.request(&ng::ping()).await.map(drop)
    }

    async fn request(&self, body: &Dict) -> Result<Dict, TargetError> {
        let any: std::net::SocketAddr = if self.ng.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(any).await?;
        socket.connect(self.ng).await?;
        let cookie = format!("{:016x}", rand::random::<u64>());
        let datagram = ng::frame(&cookie, body);
        let mut buf = vec![0u8; 65_536];
        for _ in 0..=self.retries {
            socket.send(&datagram).await?;
            let deadline = tokio::time::Instant::now() + self.timeout;
            loop {
                let Ok(received) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await
                else {
                    break;
                };
                // ICMP port unreachable (daemon not up yet) shows as an error: wait it out.
                let Ok(len) = received else { continue };
                match ng::parse_reply(&buf[..len], &cookie) {
                    // A late reply to an earlier request: keep waiting for ours.
                    Err(ReplyError::CookieMismatch { .. }) => continue,
                    Err(ReplyError::Refused { reason }) => {
                        return Err(TargetError::Refused { reason });
                    }
                    Err(e) => return Err(TargetError::Protocol(e.to_string())),
                    Ok(reply) => return Ok(reply),
                }
            }
        }
        Err(TargetError::Timeout(self.timeout * (self.retries + 1)))
    }

    async fn allocate_call(&self, req: &CallRequest) -> Result<Allocation, TargetError> {
        let from_tag = format!("{}-A", req.call_id);
        let result = self.offer_and_answer(req, &from_tag).await;
        if result.is_err() {
            // The offer may have created the call in the daemon (even one whose reply was lost):
            // do not leave it behind.
            let _ = self.request(&ng::delete(&req.call_id, &from_tag)).await;
        }
        result
    }

    async fn offer_and_answer(
        &self,
        req: &CallRequest,
        from_tag: &str,
    ) -> Result<Allocation, TargetError> {
        let g711 = MediaCodec::g711(req.law);
        let to_tag = format!("{}-B", req.call_id);
        let a_codecs = [
            Codec::new(g711.default_payload_type(), g711.sdp_name(), 8000, 1),
            Codec::new(TELEPHONE_EVENT_8K_PT, "telephone-event", 8000, 1).with_fmtp("0-16"),
        ];
        let a_sdp = Description::audio_only(1, req.leg_a, &a_codecs, Some(PTIME_MS as u32));
        let masked = [g711.sdp_name()];
        let transcode = (!req.shared_codec).then_some((&[OPUS_CODEC][..], &masked[..]));
        let offer = ng::offer(&req.call_id, from_tag, &a_sdp.write(), transcode);
        let offered = parse_sdp(&self.request(&offer).await?)?;
        let b_codec = if req.shared_codec {
            g711
        } else {
            MediaCodec::Opus
        };
        let b_pt = offered
            .codec(b_codec.sdp_name(), b_codec.clock_rate())
            .map(|c| c.payload_type)
            .ok_or_else(|| {
                TargetError::Protocol(format!("offer to B lacks {}", b_codec.sdp_name()))
            })?;
        let fmtp = if b_codec == MediaCodec::Opus {
            "useinbandfec=1"
        } else {
            ""
        };
        let b_codecs = [Codec::new(
            b_pt,
            b_codec.sdp_name(),
            b_codec.clock_rate(),
            channels(b_codec),
        )
        .with_fmtp(fmtp)];
        let b_sdp = Description::audio_only(2, req.leg_b, &b_codecs, Some(PTIME_MS as u32));
        let answer = ng::answer(&req.call_id, from_tag, &to_tag, &b_sdp.write());
        let answered = parse_sdp(&self.request(&answer).await?)?;
        let a_pt = answered
            .codec(g711.sdp_name(), 8000)
            .map_or(g711.default_payload_type(), |c| c.payload_type);
        let handle = CallHandle(req.call_id.clone());
        Ok(Allocation::Media {
            handle,
            leg_a: LegMedia {
                send_to: answered.socket_addr(),
                send_codec: g711,
                send_payload_type: a_pt,
                recv_codec: g711,
                recv_payload_type: a_pt,
            },
            leg_b: LegMedia {
                send_to: offered.socket_addr(),
                send_codec: b_codec,
                send_payload_type: b_pt,
                recv_codec: b_codec,
                recv_payload_type: b_pt,
            },
            transcoded: !req.shared_codec,
        })
    }

    async fn release_call(&self, handle: &CallHandle) -> Result<(), TargetError> {
        let from_tag = format!("{}-A", handle.0);
        match self.request(&ng::delete(&handle.0, &from_tag)).await {
            // Deleting a call rtpengine no longer knows is what a second release looks like.
            Err(TargetError::Refused { reason }) if reason.contains("Unknown call") => Ok(()),
            other => other.map(drop),
        }
    }
}

impl Target for RtpengineTarget {
    fn name(&self) -> &str {
        self.name
    }

    fn allocate<'a>(
        &'a self,
        req: &'a CallRequest,
    ) -> BoxFuture<'a, Result<Allocation, TargetError>> {
        Box::pin(self.allocate_call(req))
    }

    fn release<'a>(&'a self, handle: &'a CallHandle) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(self.release_call(handle))
    }

    /// rtpengine's encoder keeps the last frame of each transcoded stream.
    fn held_frames(&self) -> u64 {
        1
    }
}

fn parse_sdp(reply: &Dict) -> Result<Audio, TargetError> {
    let sdp = ng::reply_sdp(reply).map_err(|e| TargetError::Protocol(e.to_string()))?;
    Description::parse(sdp)
        .and_then(|d| d.audio())
        .map_err(|e| TargetError::Protocol(format!("{e} in {sdp:?}")))
}

fn channels(codec: MediaCodec) -> u8 {
    if codec == MediaCodec::Opus { 2 } else { 1 }
}
