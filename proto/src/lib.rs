//! bridgepool.v1: the Scheduler and Worker gRPC services, generated from `proto/` by tonic and
//! prost at build time (see the `.proto` files for the meaning of every field and the error codes
//! each call uses), and the gRPC plumbing both services share: [`telemetry`] (logs, OTLP traces,
//! trace context in metadata).

pub mod telemetry;

/// Generated code for package `bridgepool.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic, unreachable_pub)]
pub mod v1 {
    tonic::include_proto!("bridgepool.v1");

    /// The encoded file descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("bridgepool_v1_descriptor");
}
