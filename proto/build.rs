//! Compiles the contract with protox (pure Rust, so no `protoc` to install) and
//! keeps the encoded descriptor set for server reflection.
use prost::Message;
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "contactpoint/v1/record.proto",
        "contactpoint/v1/node.proto",
        "contactpoint/v1/gateway.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["."])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("contactpoint_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    let encoded = descriptors.encode_to_vec();
    tonic_prost_build::configure().compile_fds(descriptors)?;
    // Serde for every message in the protobuf JSON mapping (field names in
    // lowerCamelCase, enums by name), for the command line's files and --json.
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .build(&[".contactpoint"])?;
    Ok(())
}
