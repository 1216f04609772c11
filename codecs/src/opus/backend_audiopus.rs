//! libopus 1.3 through audiopus (audiopus_sys, bundled libopus built with cmake).

use audiopus::coder::{Decoder as ApDecoder, Encoder as ApEncoder};
use audiopus::packet::Packet;
use audiopus::{Bitrate, Channels, MutSignals};

use super::{Application, Bandwidth, OpusError, SampleRate};

pub(super) const NAME: &str = "libopus 1.3 (audiopus)";

fn err(e: audiopus::Error) -> OpusError {
    OpusError::Library {
        call: "audiopus",
        message: e.to_string(),
    }
}

fn rate(r: SampleRate) -> audiopus::SampleRate {
    match r {
        SampleRate::Hz8000 => audiopus::SampleRate::Hz8000,
        SampleRate::Hz12000 => audiopus::SampleRate::Hz12000,
        SampleRate::Hz16000 => audiopus::SampleRate::Hz16000,
        SampleRate::Hz24000 => audiopus::SampleRate::Hz24000,
        SampleRate::Hz48000 => audiopus::SampleRate::Hz48000,
    }
}

pub(super) struct Encoder(ApEncoder);

impl Encoder {
    pub(super) fn new(r: SampleRate, app: Application) -> Result<Self, OpusError> {
        let app = match app {
            Application::Voip => audiopus::Application::Voip,
            Application::Audio => audiopus::Application::Audio,
        };
        ApEncoder::new(rate(r), Channels::Mono, app)
            .map(Self)
            .map_err(err)
    }

    pub(super) fn set_bitrate(&mut self, bps: i32) -> Result<(), OpusError> {
        self.0.set_bitrate(Bitrate::BitsPerSecond(bps)).map_err(err)
    }

    pub(super) fn set_complexity(&mut self, c: u8) -> Result<(), OpusError> {
        self.0.set_complexity(c).map_err(err)
    }

    pub(super) fn set_inband_fec(&mut self, on: bool) -> Result<(), OpusError> {
        self.0.set_inband_fec(on).map_err(err)
    }

    pub(super) fn set_dtx(&mut self, on: bool) -> Result<(), OpusError> {
        self.0.set_dtx(on).map_err(err)
    }

    pub(super) fn set_expected_loss(&mut self, pct: u8) -> Result<(), OpusError> {
        self.0.set_packet_loss_perc(pct).map_err(err)
    }

    pub(super) fn set_max_bandwidth(&mut self, b: Bandwidth) -> Result<(), OpusError> {
        let b = match b {
            Bandwidth::Narrowband => audiopus::Bandwidth::Narrowband,
            Bandwidth::Mediumband => audiopus::Bandwidth::Mediumband,
            Bandwidth::Wideband => audiopus::Bandwidth::Wideband,
            Bandwidth::SuperWideband => audiopus::Bandwidth::Superwideband,
            Bandwidth::Fullband => audiopus::Bandwidth::Fullband,
        };
        self.0.set_max_bandwidth(b).map_err(err)
    }

    pub(super) fn set_vbr(&mut self, on: bool) -> Result<(), OpusError> {
        self.0.set_vbr(on).map_err(err)
    }

    pub(super) fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, OpusError> {
        self.0.encode(pcm, out).map_err(err)
    }

    pub(super) fn reset(&mut self) -> Result<(), OpusError> {
        // OPUS_RESET_STATE
        self.0.set_encoder_ctl_request(4028, 0).map_err(err)
    }
}

pub(super) struct Decoder {
    inner: ApDecoder,
    rate: SampleRate,
}

impl Decoder {
    pub(super) fn new(r: SampleRate) -> Result<Self, OpusError> {
        ApDecoder::new(rate(r), Channels::Mono)
            .map(|inner| Self { inner, rate: r })
            .map_err(err)
    }

    /// `payload` empty: concealment.
    pub(super) fn decode(
        &mut self,
        payload: &[u8],
        out: &mut [i16],
        fec: bool,
    ) -> Result<usize, OpusError> {
        let packet = if payload.is_empty() {
            None
        } else {
            Some(Packet::try_from(payload).map_err(err)?)
        };
        let signals = MutSignals::try_from(out).map_err(err)?;
        self.inner.decode(packet, signals, fec).map_err(err)
    }

    pub(super) fn reset(&mut self) -> Result<(), OpusError> {
        // A fresh decoder is the reset audiopus exposes.
        self.inner = ApDecoder::new(rate(self.rate), Channels::Mono).map_err(err)?;
        Ok(())
    }
}
