//! A lookup's record passed from the node to the caller as the node encoded
//! it. The gateway reads nothing in a record: the node has already redacted
//! it for the caller's role (the gateway tells the node on whose behalf it
//! asks), so decoding it into a `ChildRecord` and encoding it again would
//! only copy every field twice. The request is still decoded and checked
//! (identifier, reason, rights) before any node is asked.
//!
//! `GatewayRoutes` serves the gateway's service with `GetRecord` answered
//! from [`crate::lookup::read_record`]'s bytes, and every other method by
//! the generated server.
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use contactpoint_proto::v1 as pb;
use pb::gateway_server::GatewayServer;
use prost::bytes::{BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tonic_prost::{ProstDecoder, ProstEncoder};

use crate::service::GatewayService;

/// A message already encoded, sent or received as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Encoded;

impl Encoder for Encoded {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Encoded {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        use prost::bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Requests encoded with prost; replies kept as they were encoded: for
/// calling a node.
#[derive(Debug)]
pub struct KeepReplies<T>(PhantomData<T>);

impl<T> Default for KeepReplies<T> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T: prost::Message + Send + 'static> Codec for KeepReplies<T> {
    type Encode = T;
    type Decode = Bytes;
    type Encoder = ProstEncoder<T>;
    type Decoder = Encoded;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        Encoded
    }
}

/// Requests decoded with prost; replies sent as they are: for answering a
/// caller with what a node encoded.
#[derive(Debug)]
pub struct SendEncoded<U>(PhantomData<U>);

impl<U> Default for SendEncoded<U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<U: prost::Message + Default + Send + 'static> Codec for SendEncoded<U> {
    type Encode = Bytes;
    type Decode = U;
    type Encoder = Encoded;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        Encoded
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

/// The node's `GetRecord`, its answer kept encoded.
pub async fn get_record(
    channel: Channel,
    request: Request<pb::GetRecordRequest>,
) -> Result<Response<Bytes>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crate::MAX_MESSAGE_BYTES);
    grpc.ready()
        .await
        .map_err(|error| Status::unavailable(format!("node not ready: {error}")))?;
    let path = http::uri::PathAndQuery::from_static("/contactpoint.v1.AuthorityNode/GetRecord");
    grpc.unary(request, path, KeepReplies::default()).await
}

/// The gateway's gRPC service: `GetRecord` answered with the node's bytes,
/// every other method by the generated [`GatewayServer`].
#[derive(Clone)]
pub struct GatewayRoutes {
    service: Arc<GatewayService>,
    generated: GatewayServer<GatewayService>,
}

const GET_RECORD: &str = "/contactpoint.v1.Gateway/GetRecord";

impl GatewayRoutes {
    pub fn new(service: GatewayService) -> Self {
        let service = Arc::new(service);
        let generated = GatewayServer::from_arc(service.clone())
            .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::MAX_MESSAGE_BYTES);
        Self { service, generated }
    }
}

impl NamedService for GatewayRoutes {
    const NAME: &'static str = <GatewayServer<GatewayService> as NamedService>::NAME;
}

/// `GetRecord` as a unary service over the gateway.
struct ReadRecord(Arc<GatewayService>);

impl tonic::server::UnaryService<pb::GetRecordRequest> for ReadRecord {
    type Response = Bytes;
    type Future = BoxFuture<Response<Bytes>, Status>;

    fn call(&mut self, request: Request<pb::GetRecordRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { crate::lookup::read_record(&service, request).await })
    }
}

impl Service<http::Request<tonic::body::Body>> for GatewayRoutes {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() != GET_RECORD {
            return self.generated.call(request);
        }
        let service = self.service.clone();
        // The generated server's settings, which must stay in step with
        // `GatewayRoutes::new`'s: the message bounds (and no compression).
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(SendEncoded::<pb::GetRecordRequest>::default())
                .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(crate::MAX_MESSAGE_BYTES);
            Ok(grpc.unary(ReadRecord(service), request).await)
        })
    }
}
