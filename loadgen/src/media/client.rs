//! What the Opus leg sends: the encoder settings of the clients the loadgen plays, and the
//! encoding of a voice into a replayable packet track (once, before the run).

use bridgepool_codecs::opus::{EncoderConfig, OpusEncoder, SampleRate};
use serde::{Deserialize, Serialize};

use super::MediaError;

/// Who sends the Opus leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientProfile {
    /// A WebRTC browser: [`EncoderConfig::webrtc_client`] on 48 kHz speech.
    Webrtc,
    /// A mobile app: [`EncoderConfig::mobile_client`] on 48 kHz speech.
    Mobile,
    /// The loadgen's load before issue 10: SILK narrowband Opus encoded from the 8 kHz speech
    /// (24 kbit/s, complexity 5, FEC with 10 % expected loss). No real client sends this; it is
    /// kept to compare with figures measured with it.
    Narrowband,
}

impl ClientProfile {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Webrtc => "webrtc",
            Self::Mobile => "mobile",
            Self::Narrowband => "nb-legacy",
        }
    }

    /// The encoder settings, with DTX on or off and, when given, the loss the encoder expects
    /// (instead of the profile's own).
    pub fn encoder_config(self, dtx: bool, expected_loss_pct: Option<u8>) -> EncoderConfig {
        let mut config = match self {
            Self::Webrtc => EncoderConfig::webrtc_client(),
            Self::Mobile => EncoderConfig::mobile_client(),
            // Expected loss above zero makes libopus actually put LBRR (FEC) data in the packets.
            Self::Narrowband => EncoderConfig {
                inband_fec: true,
                expected_loss_pct: 10,
                ..EncoderConfig::default()
            },
        };
        config.dtx = dtx;
        if let Some(pct) = expected_loss_pct {
            config.expected_loss_pct = pct;
        }
        config
    }

    /// The rate of the PCM this client encodes.
    pub fn input_rate(self) -> SampleRate {
        self.encoder_config(false, None).sample_rate
    }
}

/// One voice encoded by one client, ready to replay: frame `i` is `packets[i]`, empty when the
/// encoder (DTX) said not to transmit it.
#[derive(Clone, Debug)]
pub struct OpusTrack {
    /// The client.
    pub profile: ClientProfile,
    packets: Vec<Vec<u8>>,
    /// Packets transmitted before frame `i` within one pass.
    sent_before: Vec<u64>,
    /// Packets transmitted per pass over the voice.
    sent_per_pass: u64,
}

impl OpusTrack {
    /// Encodes `pcm` (at the profile's input rate, whole 20 ms frames) as `profile` would, with
    /// DTX on or off and the expected loss of [`ClientProfile::encoder_config`].
    pub fn encode(
        profile: ClientProfile,
        dtx: bool,
        expected_loss_pct: Option<u8>,
        pcm: &[i16],
    ) -> Result<Self, MediaError> {
        let config = profile.encoder_config(dtx, expected_loss_pct);
        let frame = config.sample_rate.hz() as usize / 50;
        let mut encoder = OpusEncoder::new(&config).map_err(|e| MediaError::Opus(e.to_string()))?;
        let mut buf = [0u8; 1500];
        let mut packets = Vec::with_capacity(pcm.len() / frame);
        for chunk in pcm.chunks_exact(frame) {
            let n = encoder
                .encode(chunk, &mut buf)
                .map_err(|e| MediaError::Opus(e.to_string()))?;
            // libopus DTX: two bytes or fewer is "nothing to send" (WebRTC drops those).
            packets.push(if dtx && n <= 2 {
                Vec::new()
            } else {
                buf[..n].to_vec()
            });
        }
        Ok(Self::from_packets(profile, packets))
    }

    /// A track of given packets (empty: not transmitted).
    pub fn from_packets(profile: ClientProfile, packets: Vec<Vec<u8>>) -> Self {
        let mut sent_before = Vec::with_capacity(packets.len());
        let mut sent = 0u64;
        for p in &packets {
            sent_before.push(sent);
            sent += u64::from(!p.is_empty());
        }
        Self {
            profile,
            packets,
            sent_before,
            sent_per_pass: sent,
        }
    }

    /// Frames in one pass.
    pub fn frames(&self) -> usize {
        self.packets.len()
    }

    /// Frame `frame` (looping) and the number of packets transmitted before it since the start
    /// (the RTP sequence offset); `None` when the frame is not transmitted (DTX).
    pub fn packet(&self, frame: u64) -> Option<(&[u8], u64)> {
        let len = self.packets.len() as u64;
        if len == 0 {
            return None;
        }
        let (pass, i) = (frame / len, (frame % len) as usize);
        let p = &self.packets[i];
        (!p.is_empty()).then(|| {
            (
                p.as_slice(),
                pass * self.sent_per_pass + self.sent_before[i],
            )
        })
    }

    /// Frames not transmitted per pass (DTX).
    pub fn silent_frames(&self) -> usize {
        self.packets.iter().filter(|p| p.is_empty()).count()
    }
}

/// The share of Opus calls each client makes up.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientMix {
    /// Share of WebRTC browsers, 0 to 1; the rest are mobile apps.
    pub webrtc_share: f64,
    /// Clients send with DTX on.
    pub dtx: bool,
    /// The loss every client's encoder expects, in percent, as a WebRTC client sets it from the
    /// RTCP receiver reports of a lossy path (more FEC the higher it is); `None` keeps each
    /// profile's own (WebRTC 0 %, mobile 3 %).
    pub expected_loss_pct: Option<u8>,
}

impl Default for ClientMix {
    fn default() -> Self {
        Self {
            webrtc_share: 0.7,
            dtx: false,
            expected_loss_pct: None,
        }
    }
}

impl ClientMix {
    /// The client of call `id`: exactly `webrtc_share` of every run of calls (spread evenly, not
    /// drawn at random), so a short run has the stated mix too.
    pub fn profile_of(&self, id: u64) -> ClientProfile {
        let s = self.webrtc_share.clamp(0.0, 1.0);
        if ((id + 1) as f64 * s).floor() > (id as f64 * s).floor() {
            ClientProfile::Webrtc
        } else {
            ClientProfile::Mobile
        }
    }
}
