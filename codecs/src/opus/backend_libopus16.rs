//! libopus 1.6.1 through the `opus` crate (opusic-sys).

use super::{Application, Bandwidth, OpusError, SampleRate};

pub(super) const NAME: &str = "libopus 1.6.1 (opus crate)";

fn err(e: opus::Error) -> OpusError {
    OpusError::Library {
        call: e.function(),
        message: e.description().to_owned(),
    }
}

pub(super) struct Encoder(opus::Encoder);

impl Encoder {
    pub(super) fn new(rate: SampleRate, app: Application) -> Result<Self, OpusError> {
        let app = match app {
            Application::Voip => opus::Application::Voip,
            Application::Audio => opus::Application::Audio,
        };
        opus::Encoder::new(rate.hz(), opus::Channels::Mono, app)
            .map(Self)
            .map_err(err)
    }

    pub(super) fn set_bitrate(&mut self, bps: i32) -> Result<(), OpusError> {
        self.0.set_bitrate(opus::Bitrate::Bits(bps)).map_err(err)
    }

    pub(super) fn set_complexity(&mut self, c: u8) -> Result<(), OpusError> {
        self.0.set_complexity(i32::from(c)).map_err(err)
    }

    pub(super) fn set_inband_fec(&mut self, on: bool) -> Result<(), OpusError> {
        self.0.set_inband_fec(on).map_err(err)
    }

    pub(super) fn set_dtx(&mut self, on: bool) -> Result<(), OpusError> {
        self.0.set_dtx(on).map_err(err)
    }

    pub(super) fn set_expected_loss(&mut self, pct: u8) -> Result<(), OpusError> {
        self.0.set_packet_loss_perc(i32::from(pct)).map_err(err)
    }

    pub(super) fn set_max_bandwidth(&mut self, b: Bandwidth) -> Result<(), OpusError> {
        let b = match b {
            Bandwidth::Narrowband => opus::Bandwidth::Narrowband,
            Bandwidth::Mediumband => opus::Bandwidth::Mediumband,
            Bandwidth::Wideband => opus::Bandwidth::Wideband,
            Bandwidth::SuperWideband => opus::Bandwidth::Superwideband,
            Bandwidth::Fullband => opus::Bandwidth::Fullband,
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
        self.0.reset_state().map_err(err)
    }
}

pub(super) struct Decoder(opus::Decoder);

impl Decoder {
    pub(super) fn new(rate: SampleRate) -> Result<Self, OpusError> {
        opus::Decoder::new(rate.hz(), opus::Channels::Mono)
            .map(Self)
            .map_err(err)
    }

    /// `payload` empty: concealment.
    pub(super) fn decode(
        &mut self,
        payload: &[u8],
        out: &mut [i16],
        fec: bool,
    ) -> Result<usize, OpusError> {
        self.0.decode(payload, out, fec).map_err(err)
    }

    pub(super) fn reset(&mut self) -> Result<(), OpusError> {
        self.0.reset_state().map_err(err)
    }
}
