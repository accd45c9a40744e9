//! The ADS protocol as a real gRPC client sees it: ACK, NACK (last good
//! kept, no resend loop), stale nonces, delta subscriptions and removals,
//! several nodes at once, reconnects. The control plane runs as a process;
//! config edits drive the changes.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use only1mcp_tests::harness::{wait_until, ControlPlane, Workdir};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

fn config(services: &[&str]) -> String {
    // Placeholder addresses nobody listens on, and EDS driven by config
    // edits only: health probes would mark them unhealthy and push EDS
    // updates the tests do not expect.
    let mut s = "xds: {port: 0}\nadmin: {port: 0}\nenvoy:\n  listener: {port: 0}\nhealth: {enabled: false}\nbackends:\n".to_string();
    for (i, svc) in services.iter().enumerate() {
        s.push_str(&format!("  - {{service: {svc}, address: 127.0.0.1, port: {}}}\n", 20000 + i));
    }
    s
}

struct Sotw {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl Sotw {
    async fn connect(cp: &ControlPlane) -> Sotw {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", cp.xds)).await.expect("connect");
        let (tx, rx) = mpsc::channel(16);
        let resp = client.stream_aggregated_resources(ReceiverStream::new(rx)).await.expect("open stream");
        Sotw { tx, rx: resp.into_inner() }
    }

    async fn send(&self, req: DiscoveryRequest) {
        self.tx.send(req).await.expect("send");
    }

    async fn recv(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message()).await.expect("response in time").expect("stream ok").expect("stream open")
    }

    /// Waits briefly and asserts that nothing arrives.
    async fn expect_silence(&mut self, what: &str) {
        if let Ok(Ok(Some(r))) = tokio::time::timeout(Duration::from_millis(300), self.rx.message()).await {
            panic!("{what}: got an unexpected response {} v{}", r.type_url, r.version_info);
        }
    }
}

fn req(node: &str, type_url: &str, names: &[&str], nonce: &str, version: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(Node { id: node.into(), ..Default::default() }),
        type_url: type_url.into(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.into(),
        version_info: version.into(),
        ..Default::default()
    }
}

fn nack(node: &str, type_url: &str, nonce: &str, version: &str) -> DiscoveryRequest {
    DiscoveryRequest { error_detail: Some(RpcStatus { code: 3, message: "cluster rejected by test".into(), details: vec![] }), ..req(node, type_url, &[], nonce, version) }
}

fn cluster_count(r: &DiscoveryResponse) -> usize {
    r.resources.len()
}

fn stream_types(cp: &ControlPlane, node: &str) -> serde_json::Value {
    let st = cp.status();
    st["streams"].as_array().and_then(|a| a.iter().find(|s| s["node_id"] == node).map(|s| s["types"].clone())).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_ack_nack_stale_nonce_and_no_resend_loop() {
    let wd = Workdir::new("xds-sotw");
    let cp = ControlPlane::start(wd.path(), &config(&["alpha"]));
    let mut s = Sotw::connect(&cp).await;
    s.send(req("n1", CDS, &[], "", "")).await;
    let v1 = s.recv().await;
    assert_eq!(cluster_count(&v1), 1);
    s.send(req("n1", CDS, &[], &v1.nonce, &v1.version_info)).await;
    s.expect_silence("after an ACK with nothing changed").await;

    // An edit arrives; we reject it.
    cp.write_config(&config(&["alpha", "beta"]));
    let v2 = s.recv().await;
    assert_eq!(cluster_count(&v2), 2);
    s.send(nack("n1", CDS, &v2.nonce, &v1.version_info)).await;
    s.expect_silence("after a NACK: the rejected version must not be resent").await;
    let types = tokio::task::block_in_place(|| stream_types(&cp, "n1"));
    assert_eq!(types["CDS"]["acked_version"], v1.version_info.as_str(), "last good version stays");
    assert_eq!(types["CDS"]["last_nack"], "cluster rejected by test");
    assert!(tokio::task::block_in_place(|| cp.metrics()).contains("only1mcp_xds_nacks_total 1"));

    // The next edit is sent as itself, with no resend of v2 before it.
    cp.write_config(&config(&["alpha", "beta", "gamma"]));
    let v3 = s.recv().await;
    assert_eq!(cluster_count(&v3), 3);
    assert_ne!(v3.version_info, v2.version_info);

    // A stale nonce (v1's), even as a NACK, is ignored.
    s.send(nack("n1", CDS, &v1.nonce, &v1.version_info)).await;
    s.expect_silence("after a stale nonce").await;
    let types = tokio::task::block_in_place(|| stream_types(&cp, "n1"));
    assert_eq!(types["CDS"]["nacks"], 1, "stale NACK was counted");
    s.send(req("n1", CDS, &[], &v3.nonce, &v3.version_info)).await;
    wait_until("v3 acked", Duration::from_secs(5), || {
        let t = tokio::task::block_in_place(|| stream_types(&cp, "n1"));
        (t["CDS"]["acked_version"] == v3.version_info.as_str()).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_eds_follows_subscription_and_cluster_changes() {
    let wd = Workdir::new("xds-eds");
    let cp = ControlPlane::start(wd.path(), &config(&["alpha", "beta"]));
    let mut s = Sotw::connect(&cp).await;
    s.send(req("n1", EDS, &["mcp_alpha"], "", "")).await;
    let e1 = s.recv().await;
    assert_eq!(e1.resources.len(), 1);
    s.send(req("n1", EDS, &["mcp_alpha", "mcp_beta"], &e1.nonce, &e1.version_info)).await;
    let e2 = s.recv().await;
    assert_eq!(e2.resources.len(), 2, "a new subscription is answered");
    s.send(req("n1", EDS, &["mcp_alpha", "mcp_beta"], &e2.nonce, &e2.version_info)).await;
    s.expect_silence("nothing changed").await;
}

struct Delta {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: Streaming<DeltaDiscoveryResponse>,
}

impl Delta {
    async fn connect(cp: &ControlPlane) -> Delta {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", cp.xds)).await.expect("connect");
        let (tx, rx) = mpsc::channel(16);
        let resp = client.delta_aggregated_resources(ReceiverStream::new(rx)).await.expect("open stream");
        Delta { tx, rx: resp.into_inner() }
    }

    async fn send(&self, type_url: &str, sub: &[&str], unsub: &[&str], nonce: &str) {
        let r = DeltaDiscoveryRequest {
            node: Some(Node { id: "delta-node".into(), ..Default::default() }),
            type_url: type_url.into(),
            resource_names_subscribe: sub.iter().map(|s| s.to_string()).collect(),
            resource_names_unsubscribe: unsub.iter().map(|s| s.to_string()).collect(),
            response_nonce: nonce.into(),
            ..Default::default()
        };
        self.tx.send(r).await.expect("send");
    }

    async fn recv(&mut self) -> DeltaDiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message()).await.expect("response in time").expect("stream ok").expect("stream open")
    }
}

fn names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    let mut v: Vec<&str> = r.resources.iter().map(|r| r.name.as_str()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_subscribe_unsubscribe_and_removed_resources() {
    let wd = Workdir::new("xds-delta");
    let cp = ControlPlane::start(wd.path(), &config(&["alpha", "beta"]));
    let mut d = Delta::connect(&cp).await;
    d.send(CDS, &[], &[], "").await;
    let c1 = d.recv().await;
    assert_eq!(names(&c1), vec!["mcp_alpha", "mcp_beta"]);
    d.send(CDS, &[], &[], &c1.nonce).await;

    d.send(EDS, &["mcp_alpha"], &[], "").await;
    let e1 = d.recv().await;
    assert_eq!(names(&e1), vec!["mcp_alpha"]);
    d.send(EDS, &["mcp_beta"], &[], &e1.nonce).await;
    let e2 = d.recv().await;
    assert_eq!(names(&e2), vec!["mcp_beta"], "only the newly subscribed resource");
    d.send(EDS, &[], &["mcp_alpha"], &e2.nonce).await;

    // beta goes away and alpha changes: CDS says so, EDS reports beta removed,
    // and nothing about alpha's endpoints (unsubscribed) is sent.
    cp.write_config(&config(&["beta_not", "alpha"]).replace("beta_not", "alpha2"));
    let c2 = d.recv().await;
    assert_eq!(c2.type_url, CDS);
    assert_eq!(c2.removed_resources, vec!["mcp_beta".to_string()]);
    assert_eq!(names(&c2), vec!["mcp_alpha2"]);
    d.send(CDS, &[], &[], &c2.nonce).await;
    let e3 = d.recv().await;
    assert_eq!(e3.type_url, EDS);
    assert_eq!(e3.removed_resources, vec!["mcp_beta".to_string()]);
    assert!(e3.resources.is_empty(), "alpha was unsubscribed: {:?}", names(&e3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_at_once_and_reconnect() {
    let wd = Workdir::new("xds-nodes");
    let cp = ControlPlane::start(wd.path(), &config(&["alpha"]));
    let mut a = Sotw::connect(&cp).await;
    let mut b = Sotw::connect(&cp).await;
    a.send(req("node-a", CDS, &[], "", "")).await;
    b.send(req("node-b", CDS, &[], "", "")).await;
    let ra = a.recv().await;
    let rb = b.recv().await;
    assert_eq!(ra.version_info, rb.version_info);
    a.send(req("node-a", CDS, &[], &ra.nonce, &ra.version_info)).await;
    b.send(req("node-b", CDS, &[], &rb.nonce, &rb.version_info)).await;

    // Both get the edit.
    cp.write_config(&config(&["alpha", "beta"]));
    assert_eq!(cluster_count(&a.recv().await), 2);
    assert_eq!(cluster_count(&b.recv().await), 2);
    let nodes = || {
        let st = tokio::task::block_in_place(|| cp.status());
        let mut v: Vec<String> = st["streams"].as_array().unwrap().iter().map(|s| s["node_id"].as_str().unwrap_or("").to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(nodes(), vec!["node-a", "node-b"]);

    // node-a drops and comes back holding its old version: it gets the full current state.
    drop(a);
    wait_until("node-a stream to close", Duration::from_secs(5), || (nodes() == vec!["node-b"]).then_some(()));
    let mut a2 = Sotw::connect(&cp).await;
    a2.send(req("node-a", CDS, &[], "", &ra.version_info)).await;
    let again = a2.recv().await;
    assert_eq!(cluster_count(&again), 2);
    wait_until("node-a back", Duration::from_secs(5), || (nodes() == vec!["node-a", "node-b"]).then_some(()));
}
