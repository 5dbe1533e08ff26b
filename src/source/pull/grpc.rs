//! The three calls sluice makes to Pub/Sub's `Subscriber` service, over tonic with a codec that
//! passes message bytes through: [`super::wire`] writes the requests and reads the responses.

use bytes::{Buf, BufMut, Bytes};
use google_cloud_auth::credentials::Credentials;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::Status;

use crate::config::global::PubsubConfig;
use crate::gcp;

const PRODUCTION: &str = "https://pubsub.googleapis.com";

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("Pub/Sub endpoint {endpoint} is not a usable URL: {source}")]
    Endpoint { endpoint: String, source: tonic::transport::Error },
    #[error(transparent)]
    Auth(#[from] gcp::AuthError),
}

/// A connection to Pub/Sub (made on first use), and the credentials its calls carry.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    credentials: Credentials,
}

impl Client {
    /// A client for the configured endpoint: anonymous for an emulator or private endpoint,
    /// application default credentials for production.
    pub fn new(config: &PubsubConfig) -> Result<Client, ConnectError> {
        let custom = config.endpoint.clone();
        let url = custom.clone().unwrap_or_else(|| PRODUCTION.into());
        let endpoint_error = |source| ConnectError::Endpoint { endpoint: url.clone(), source };
        let mut endpoint = Endpoint::from_shared(url.clone()).map_err(endpoint_error)?;
        if url.starts_with("https://") {
            endpoint = endpoint.tls_config(ClientTlsConfig::new().with_enabled_roots()).map_err(endpoint_error)?;
        }
        // Keepalive pings find a dead connection under a quiet stream.
        let endpoint = endpoint
            .connect_timeout(std::time::Duration::from_secs(10))
            .http2_keep_alive_interval(std::time::Duration::from_secs(30))
            .keep_alive_while_idle(true);
        Ok(Client { channel: endpoint.connect_lazy(), credentials: gcp::credentials(custom.is_some())? })
    }

    /// A request carrying the credentials and the routing header Pub/Sub expects.
    async fn request<T>(&self, message: T, subscription: &str) -> Result<tonic::Request<T>, Status> {
        let headers = gcp::auth_headers(&self.credentials).await.map_err(|e| Status::unauthenticated(e.to_string()))?;
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = MetadataMap::from_headers(headers);
        let params = format!("subscription={subscription}");
        if let Ok(v) = MetadataValue::try_from(params.as_str()) {
            request.metadata_mut().insert("x-goog-request-params", v);
        }
        Ok(request)
    }

    /// Open a `StreamingPull`: `requests` are encoded `StreamingPullRequest`s (the first opens
    /// it), and each response frame arrives as its bytes.
    pub async fn streaming_pull(
        &self,
        subscription: &str,
        requests: impl futures::Stream<Item = Bytes> + Send + 'static,
    ) -> Result<tonic::Streaming<Bytes>, Status> {
        let request = self.request(requests, subscription).await?;
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static("/google.pubsub.v1.Subscriber/StreamingPull");
        Ok(grpc.streaming(request, path, Raw).await?.into_inner())
    }

    /// A unary call with an encoded request; its response (`Empty`) is not read.
    pub async fn call(&self, method: Method, subscription: &str, body: Bytes) -> Result<(), Status> {
        let request = self.request(body, subscription).await?;
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        grpc.unary(request, method.path(), Raw).await.map(drop)
    }
}

/// The unary calls that settle and extend leases.
#[derive(Debug, Clone, Copy)]
pub enum Method {
    Acknowledge,
    ModifyAckDeadline,
}

impl Method {
    fn path(self) -> http::uri::PathAndQuery {
        http::uri::PathAndQuery::from_static(match self {
            Method::Acknowledge => "/google.pubsub.v1.Subscriber/Acknowledge",
            Method::ModifyAckDeadline => "/google.pubsub.v1.Subscriber/ModifyAckDeadline",
        })
    }
}

/// A codec of bytes as they are: the messages are encoded and decoded by [`super::wire`].
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
