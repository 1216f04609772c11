//! Generates the bridgepool.v1 messages and services with tonic/prost. protoc comes from the
//! protoc-bin-vendored crate, so a machine needs no protobuf package.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("bridgepool_v1_descriptor.bin"))
        .compile_with_config(
            config,
            &[
                "proto/bridgepool/v1/common.proto",
                "proto/bridgepool/v1/job.proto",
                "proto/bridgepool/v1/ng_call.proto",
                "proto/bridgepool/v1/worker.proto",
                "proto/bridgepool/v1/scheduler.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
