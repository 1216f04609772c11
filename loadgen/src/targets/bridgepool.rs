//! bridgepool as the target: the loadgen is the relay tier calling the Scheduler over gRPC.
//!
//! Leg A offers its G.711 law and telephone-event/8000; leg B offers Opus (48 kHz RTP clock,
//! in-band FEC) and telephone-event/48000, or leg A's G.711 for a shared-codec call, which must
//! come back PASSTHROUGH. Every request carries a deadline, as Kamailio's would.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bridgepool_proto::v1;
use bridgepool_proto::v1::scheduler_client::SchedulerClient;
use tonic::transport::{Channel, Endpoint};

use super::{Allocation, BoxFuture, CallHandle, CallRequest, LegMedia, Target, TargetError};
use crate::media::{MediaCodec, OPUS_PT, PTIME_MS, TELEPHONE_EVENT_8K_PT, TELEPHONE_EVENT_48K_PT};

/// The Scheduler API of a bridgepool pool.
pub struct BridgepoolTarget {
    client: SchedulerClient<Channel>,
    timeout: Duration,
    jitter: Option<v1::JitterBuffer>,
}

impl BridgepoolTarget {
    /// Connects to a scheduler (`http://host:port`); `timeout` bounds every request.
    pub async fn connect(endpoint: &str, timeout: Duration) -> Result<Self, TargetError> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| TargetError::Control(format!("scheduler endpoint {endpoint:?}: {e}")))?
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect()
            .await
            .map_err(|e| TargetError::Control(format!("connecting to {endpoint}: {e}")))?;
        Ok(Self {
            client: SchedulerClient::new(channel),
            timeout,
            jitter: None,
        })
    }

    /// Asks for this jitter buffer on every call (absent: the pool's default).
    pub fn with_jitter_buffer(mut self, jitter: Option<v1::JitterBuffer>) -> Self {
        self.jitter = jitter;
        self
    }

    async fn allocate_call(&self, req: &CallRequest) -> Result<Allocation, TargetError> {
        let g711 = MediaCodec::g711(req.law);
        let leg_b_codecs = if req.shared_codec {
            vec![codec(g711, g711.default_payload_type())]
        } else {
            vec![
                codec(MediaCodec::Opus, OPUS_PT),
                events(48_000, TELEPHONE_EVENT_48K_PT),
            ]
        };
        let request = v1::AllocateRequest {
            call_id: req.call_id.clone(),
            leg_a: Some(offer(
                vec![
                    codec(g711, g711.default_payload_type()),
                    events(8000, TELEPHONE_EVENT_8K_PT),
                ],
                req.leg_a,
            )),
            leg_b: Some(offer(leg_b_codecs, req.leg_b)),
            jitter: self.jitter,
        };
        let answer = self
            .client
            .clone()
            .allocate(request)
            .await
            .map_err(|s| self.status_error(s))?
            .into_inner();
        let handle = CallHandle(answer.session_id.clone());
        match v1::Decision::try_from(answer.decision) {
            // No session: the handle is empty and releasing it touches nothing.
            Ok(v1::Decision::Passthrough) => Ok(Allocation::Passthrough { handle }),
            Ok(v1::Decision::Transcode) => {
                let leg_a = leg_media(answer.leg_a.as_ref(), "leg_a")?;
                let leg_b = leg_media(answer.leg_b.as_ref(), "leg_b")?;
                Ok(Allocation::Media {
                    handle,
                    // A hears B's audio as G.711 and B hears A's as Opus.
                    leg_a: LegMedia {
                        recv_codec: leg_a.send_codec,
                        recv_payload_type: leg_a.send_payload_type,
                        ..leg_a
                    },
                    leg_b: LegMedia {
                        recv_codec: leg_b.send_codec,
                        recv_payload_type: leg_b.send_payload_type,
                        ..leg_b
                    },
                    transcoded: true,
                })
            }
            _ => Err(TargetError::Protocol(format!(
                "Allocate answered decision {}",
                answer.decision
            ))),
        }
    }

    async fn release_call(&self, handle: &CallHandle) -> Result<(), TargetError> {
        // A passthrough call holds nothing on the pool.
        if handle.0.is_empty() {
            return Ok(());
        }
        self.client
            .clone()
            .release(v1::ReleaseRequest {
                session_id: handle.0.clone(),
            })
            .await
            .map_err(|s| self.status_error(s))?;
        Ok(())
    }

    fn status_error(&self, status: tonic::Status) -> TargetError {
        match status.code() {
            tonic::Code::ResourceExhausted | tonic::Code::Unavailable => TargetError::Refused {
                reason: status.message().to_owned(),
            },
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                TargetError::Timeout(self.timeout)
            }
            code => TargetError::Control(format!("{code:?}: {}", status.message())),
        }
    }
}

impl Target for BridgepoolTarget {
    fn name(&self) -> &str {
        "bridgepool"
    }

    /// Session ids are `<worker>/<local id>`.
    fn placement(&self, handle: &CallHandle) -> Option<String> {
        handle
            .0
            .split_once('/')
            .map(|(worker, _)| worker.to_owned())
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

    fn held_frames(&self) -> u64 {
        0
    }
}

fn codec(c: MediaCodec, payload_type: u8) -> v1::Codec {
    let mut fmtp = std::collections::HashMap::new();
    if c == MediaCodec::Opus {
        fmtp.insert("useinbandfec".to_owned(), "1".to_owned());
    }
    v1::Codec {
        name: c.sdp_name().to_owned(),
        clock_rate: c.clock_rate(),
        channels: if c == MediaCodec::Opus { 2 } else { 1 },
        payload_type: payload_type.into(),
        fmtp,
        ptime_ms: PTIME_MS as u32,
    }
}

fn events(clock_rate: u32, payload_type: u8) -> v1::Codec {
    v1::Codec {
        name: "telephone-event".to_owned(),
        clock_rate,
        channels: 1,
        payload_type: payload_type.into(),
        fmtp: [("0-16".to_owned(), String::new())].into_iter().collect(),
        ptime_ms: PTIME_MS as u32,
    }
}

fn offer(codecs: Vec<v1::Codec>, remote: SocketAddr) -> v1::LegOffer {
    v1::LegOffer {
        codecs,
        remote: Some(v1::MediaAddress {
            ip: remote.ip().to_string(),
            port: remote.port().into(),
        }),
        direction: v1::Direction::Sendrecv as i32,
    }
}

/// Where a leg sends and with what, from the scheduler's answer for it.
fn leg_media(answer: Option<&v1::LegAnswer>, leg: &str) -> Result<LegMedia, TargetError> {
    let bad = |what: &str| TargetError::Protocol(format!("{leg}: {what}"));
    let answer = answer.ok_or_else(|| bad("no answer"))?;
    let local = answer.local.as_ref().ok_or_else(|| bad("no address"))?;
    let ip: IpAddr = local
        .ip
        .parse()
        .map_err(|_| bad(&format!("address {:?}", local.ip)))?;
    let port = u16::try_from(local.port).map_err(|_| bad("port out of range"))?;
    let chosen = answer.codec.as_ref().ok_or_else(|| bad("no codec"))?;
    let codec = match (chosen.name.to_ascii_uppercase().as_str(), chosen.clock_rate) {
        ("PCMU", 8000) => MediaCodec::Pcmu,
        ("PCMA", 8000) => MediaCodec::Pcma,
        ("OPUS", 48_000) => MediaCodec::Opus,
        (name, rate) => return Err(bad(&format!("codec {name}/{rate}"))),
    };
    let payload_type = u8::try_from(chosen.payload_type)
        .ok()
        .filter(|pt| *pt < 128)
        .ok_or_else(|| bad("payload type out of range"))?;
    Ok(LegMedia {
        send_to: SocketAddr::new(ip, port),
        send_codec: codec,
        send_payload_type: payload_type,
        recv_codec: codec,
        recv_payload_type: payload_type,
    })
}
