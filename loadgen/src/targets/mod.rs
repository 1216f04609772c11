//! The system under test, behind one trait: the run asks it to set a call up (both legs' media
//! addresses in, where to send and what to expect out) and to tear it down.
//!
//! [`bridgepool::BridgepoolTarget`] speaks the Scheduler gRPC API; [`rtpengine::RtpengineTarget`]
//! speaks rtpengine's ng protocol. Both answer the same [`Allocation`], so one run measures either.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bridgepool_codecs::g711::Law;

use crate::media::MediaCodec;

pub mod bridgepool;
pub mod rtpengine;

/// A boxed future, so the trait stays object safe (`&dyn Target`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One call to set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRequest {
    /// The call id, unique per run.
    pub call_id: String,
    /// Leg A's G.711 law.
    pub law: Law,
    /// Both legs offer leg A's G.711 codec: no transcoding is needed.
    pub shared_codec: bool,
    /// Where the loadgen's leg A socket is (the PSTN gateway side).
    pub leg_a: SocketAddr,
    /// Where the loadgen's leg B socket is (the Opus client side).
    pub leg_b: SocketAddr,
}

/// What the target calls the call, to release it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallHandle(pub String);

/// How one loadgen leg talks to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegMedia {
    /// Where this leg sends its RTP.
    pub send_to: SocketAddr,
    /// The codec it sends.
    pub send_codec: MediaCodec,
    /// The payload type it sends with.
    pub send_payload_type: u8,
    /// The codec it receives (the other leg's audio, transcoded or relayed).
    pub recv_codec: MediaCodec,
    /// The payload type it must receive.
    pub recv_payload_type: u8,
}

/// The target's answer to a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// No media goes through the target (bridgepool's answer when the legs share a codec).
    Passthrough {
        /// To release it.
        handle: CallHandle,
    },
    /// Media goes through the target.
    Media {
        /// To release it.
        handle: CallHandle,
        /// Leg A's media.
        leg_a: LegMedia,
        /// Leg B's media.
        leg_b: LegMedia,
        /// Whether the target transcodes (false: it relays a shared codec, as rtpengine does).
        transcoded: bool,
    },
}

impl Allocation {
    /// The handle to release the call with.
    pub fn handle(&self) -> &CallHandle {
        match self {
            Self::Passthrough { handle } | Self::Media { handle, .. } => handle,
        }
    }
}

/// Why a call could not be set up or released.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The target is full or otherwise declined the call: counted as a refusal, not a failure.
    #[error("refused: {reason}")]
    Refused {
        /// The target's words.
        reason: String,
    },
    /// The target did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The target answered something the loadgen cannot use.
    #[error("unusable answer: {0}")]
    Protocol(String),
    /// The target answered with an error.
    #[error("control error: {0}")]
    Control(String),
    /// A local socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// A system that sets calls up and tears them down.
pub trait Target: Send + Sync {
    /// A short name for reports (`bridgepool`, `rtpengine`).
    fn name(&self) -> &str;

    /// Sets a call up.
    fn allocate<'a>(
        &'a self,
        req: &'a CallRequest,
    ) -> BoxFuture<'a, Result<Allocation, TargetError>>;

    /// Tears a call down; releasing a call twice is not an error.
    fn release<'a>(&'a self, handle: &'a CallHandle) -> BoxFuture<'a, Result<(), TargetError>>;

    /// Frames per stream the target is known to keep at the end of a stream (an encoder's
    /// look-ahead): not counted as loss.
    fn held_frames(&self) -> u64;

    /// The host holding a call, when the target names it (bridgepool: the worker in the session
    /// id), so loss is reported per host too.
    fn placement(&self, _handle: &CallHandle) -> Option<String> {
        None
    }
}
