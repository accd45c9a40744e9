//! The ADS gRPC service: connects each Envoy stream to its protocol state
//! machine (`sotw` or `delta`) and to the snapshot cache. One task per
//! stream; it ends when Envoy hangs up or the server shuts down.

use std::pin::Pin;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status as GrpcStatus, Streaming};
use tracing::{debug, info, warn};

use super::delta::DeltaStream;
use super::sotw::{RequestKind, SotwStream};
use super::{Snapshot, SnapshotCache, TypeUrl};
use crate::status::{Counters, Status};

/// What the stream glue needs from a protocol state machine.
trait Machine: Send + 'static {
    type Req: Send + 'static;
    type Resp: Send + 'static;
    const PROTOCOL: &'static str;
    fn on_request(&mut self, req: &Self::Req) -> RequestKind;
    fn next_responses(&mut self, snap: &Snapshot) -> Vec<Self::Resp>;
    fn node_id(req: &Self::Req) -> Option<&str>;
    /// Type and version of a response, for status.
    fn describe(resp: &Self::Resp) -> (String, String);
}

impl Machine for SotwStream {
    type Req = DiscoveryRequest;
    type Resp = DiscoveryResponse;
    const PROTOCOL: &'static str = "sotw";
    fn on_request(&mut self, req: &DiscoveryRequest) -> RequestKind {
        SotwStream::on_request(self, req)
    }
    fn next_responses(&mut self, snap: &Snapshot) -> Vec<DiscoveryResponse> {
        SotwStream::next_responses(self, snap)
    }
    fn node_id(req: &DiscoveryRequest) -> Option<&str> {
        req.node.as_ref().map(|n| n.id.as_str())
    }
    fn describe(resp: &DiscoveryResponse) -> (String, String) {
        (resp.type_url.clone(), resp.version_info.clone())
    }
}

impl Machine for DeltaStream {
    type Req = DeltaDiscoveryRequest;
    type Resp = DeltaDiscoveryResponse;
    const PROTOCOL: &'static str = "delta";
    fn on_request(&mut self, req: &DeltaDiscoveryRequest) -> RequestKind {
        DeltaStream::on_request(self, req)
    }
    fn next_responses(&mut self, snap: &Snapshot) -> Vec<DeltaDiscoveryResponse> {
        DeltaStream::next_responses(self, snap)
    }
    fn node_id(req: &DeltaDiscoveryRequest) -> Option<&str> {
        req.node.as_ref().map(|n| n.id.as_str())
    }
    fn describe(resp: &DeltaDiscoveryResponse) -> (String, String) {
        (resp.type_url.clone(), resp.system_version_info.clone())
    }
}

#[derive(Debug, Clone)]
pub struct AdsServer {
    cache: SnapshotCache,
    status: Status,
}

impl AdsServer {
    pub fn new(cache: SnapshotCache, status: Status) -> AdsServer {
        AdsServer { cache, status }
    }

    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<AdsServer> {
        AggregatedDiscoveryServiceServer::new(self)
    }

    fn spawn<M: Machine>(&self, machine: M, inbound: Streaming<M::Req>) -> ReceiverStream<Result<M::Resp, GrpcStatus>>
    where
        M::Req: prost::Message + Default,
    {
        let (tx, rx) = mpsc::channel(16);
        let cache = self.cache.clone();
        let status = self.status.clone();
        tokio::spawn(async move {
            let id = status.stream_opened(M::PROTOCOL);
            run_stream(machine, inbound, tx, cache, &status, id).await;
            status.stream_closed(id);
        });
        ReceiverStream::new(rx)
    }
}

async fn run_stream<M: Machine>(
    mut machine: M,
    mut inbound: Streaming<M::Req>,
    tx: mpsc::Sender<Result<M::Resp, GrpcStatus>>,
    cache: SnapshotCache,
    status: &Status,
    id: u64,
) where
    M::Req: prost::Message + Default,
{
    let mut snapshots = cache.subscribe();
    let mut snap = snapshots.borrow_and_update().clone();
    let mut node = String::new();
    loop {
        tokio::select! {
            msg = inbound.message() => {
                let req = match msg {
                    Ok(Some(req)) => req,
                    Ok(None) => { info!(node, protocol = M::PROTOCOL, "xDS stream closed by Envoy"); return; }
                    Err(e) => { info!(node, protocol = M::PROTOCOL, error = %e, "xDS stream ended"); return; }
                };
                if node.is_empty() {
                    if let Some(n) = M::node_id(&req).filter(|n| !n.is_empty()) {
                        node = n.to_string();
                        info!(node, protocol = M::PROTOCOL, "Envoy connected");
                        let n = node.clone();
                        status.update_stream(id, |s| s.node_id = n);
                    }
                }
                record(status, id, &node, machine.on_request(&req));
            }
            changed = snapshots.changed() => {
                if changed.is_err() { return; }
                snap = snapshots.borrow_and_update().clone();
            }
        }
        for resp in machine.next_responses(&snap) {
            let (type_url, version) = M::describe(&resp);
            debug!(node, type_url, version, "sending");
            Counters::inc(&status.counters.xds_responses);
            if let Some(t) = TypeUrl::parse(&type_url) {
                status.update_stream(id, |s| s.types.entry(t.short()).or_default().sent_version = Some(version));
            }
            if tx.send(Ok(resp)).await.is_err() {
                return;
            }
        }
    }
}

fn record(status: &Status, id: u64, node: &str, kind: RequestKind) {
    match kind {
        RequestKind::Initial(t) => debug!(node, %t, "request"),
        RequestKind::Ack { type_url, version } => {
            debug!(node, %type_url, version, "ACK");
            status.update_stream(id, |s| s.types.entry(type_url.short()).or_default().acked_version = Some(version));
        }
        RequestKind::Nack { type_url, version, message } => {
            warn!(node, %type_url, version, envoy_error = %message, "Envoy rejected the update (NACK); it keeps its last good config");
            Counters::inc(&status.counters.xds_nacks);
            status.update_stream(id, |s| {
                let t = s.types.entry(type_url.short()).or_default();
                t.last_nack = Some(message);
                t.nacks += 1;
            });
        }
        RequestKind::Stale(t) => debug!(node, %t, "stale nonce ignored"),
        RequestKind::UnknownType(url) => warn!(node, type_url = url, "request for a resource type this control plane does not serve"),
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, GrpcStatus>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = BoxStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = BoxStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, GrpcStatus> {
        Ok(Response::new(Box::pin(self.spawn(SotwStream::new(), request.into_inner()))))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, GrpcStatus> {
        Ok(Response::new(Box::pin(self.spawn(DeltaStream::new(), request.into_inner()))))
    }
}
