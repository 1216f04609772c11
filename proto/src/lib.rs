//! bridgepool.v1: the Scheduler and Worker gRPC services, generated from `proto/` by tonic and
//! prost at build time (see the `.proto` files for the meaning of every field and the error codes
//! each call uses), and the gRPC plumbing both services share: [`telemetry`] (logs, OTLP traces,
//! trace context in metadata).

pub mod telemetry;

/// Limits both services put on what a client may send (a control listener is an attack surface).
pub mod limits {
    /// Largest request the Worker service decodes: its requests name a call and a few codecs.
    pub const MAX_WORKER_REQUEST: usize = 64 * 1024;
    /// Largest request the Scheduler service decodes: a heartbeat lists every session and job
    /// of a worker (about 60 bytes each), so a full worker's stays well under this.
    pub const MAX_SCHEDULER_REQUEST: usize = 1024 * 1024;
    /// Largest signalling state a worker keeps with a session (`CreateSessionRequest.signalling`):
    /// an ng call's tags, labels, codec operations and offered codecs take a few hundred bytes.
    pub const MAX_SIGNALLING: usize = 16 * 1024;
    /// HTTP/2 streams one connection may have open at once (the schedulers' pooled channels
    /// need far fewer; a client opening more waits, it does not grow the server's memory).
    pub const STREAMS_PER_CONNECTION: u32 = 512;
}

/// Generated code for package `bridgepool.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic, unreachable_pub)]
pub mod v1 {
    tonic::include_proto!("bridgepool.v1");

    /// The encoded file descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("bridgepool_v1_descriptor");
}

/// The name a one-way job goes by in a worker's heartbeat (`WorkerStatus.session_ids`) and in
/// the scheduler's registry: `job:`, the call-id's length, `:`, the call-id, then the from-tag
/// (a call-id may hold any character, `:` included, so its length marks where the tag starts).
pub fn job_key(call_id: &str, from_tag: &str) -> String {
    format!("job:{}:{call_id}{from_tag}", call_id.len())
}

/// The (call-id, from-tag) of a [`job_key`]; `None` for a session id or a malformed key.
pub fn parse_job_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("job:")?;
    let (len, named) = rest.split_once(':')?;
    let len: usize = len.parse().ok()?;
    // `split_at_checked` is None past the end or inside a character.
    named.split_at_checked(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_keys_round_trip_whatever_the_call_id_holds() {
        for (call, tag) in [
            ("abc", "t1"),
            ("0a1b2c3d for x:y@host", ""),
            ("", "tag"),
            ("é:é", "ü"),
        ] {
            assert_eq!(parse_job_key(&job_key(call, tag)), Some((call, tag)));
        }
        for bad in ["1f2e", "job:", "job:x:abc", "job:9:abc", "job:1:é"] {
            assert_eq!(parse_job_key(bad), None, "{bad}");
        }
    }
}
