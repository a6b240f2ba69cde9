//! Kubernetes objects for the fake API server, built from k8s-openapi's types so their JSON
//! is exactly what a real API server sends.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Node, NodeAddress, NodeStatus, Pod, PodCondition, PodSpec, PodStatus,
    Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{json, Value};

fn meta(namespace: Option<&str>, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        uid: Some(format!("uid-{}-{name}", namespace.unwrap_or("cluster"))),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

fn json<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("k8s-openapi types serialise")
}

pub fn node(name: &str, ip: &str, zone: &str) -> Value {
    json(Node {
        metadata: meta(None, name, &[("topology.kubernetes.io/zone", zone)]),
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: ip.into(),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn ready_condition(ready: bool) -> Option<Vec<PodCondition>> {
    Some(vec![PodCondition {
        type_: "Ready".into(),
        status: if ready { "True" } else { "False" }.into(),
        ..Default::default()
    }])
}

/// A weft proxy pod of the DaemonSet, its inbound listener on the node at `inbound`.
pub fn proxy_pod(node: &str, inbound: std::net::SocketAddr, ready: bool) -> Value {
    pod_like_a_proxy("weft", &format!("weft-proxy-{node}"), node, inbound, ready)
}

/// A pod that looks like a weft proxy — labels, port, even an owner reference naming a
/// `weft-proxy` DaemonSet — in `namespace`.
pub fn pod_like_a_proxy(
    namespace: &str,
    name: &str,
    node: &str,
    inbound: std::net::SocketAddr,
    ready: bool,
) -> Value {
    let mut metadata = meta(
        Some(namespace),
        name,
        &[("app.kubernetes.io/name", "weft-proxy")],
    );
    metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name: "weft-proxy".into(),
        uid: format!("uid-{namespace}-weft-proxy"),
        controller: Some(true),
        ..Default::default()
    }]);
    json(Pod {
        metadata,
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            containers: vec![Container {
                name: "proxy".into(),
                ports: Some(vec![ContainerPort {
                    name: Some("inbound".into()),
                    container_port: 4141,
                    host_port: Some(i32::from(inbound.port())),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            host_ip: Some(inbound.ip().to_string()),
            pod_ip: Some("10.244.0.2".into()),
            conditions: ready_condition(ready),
            ..Default::default()
        }),
    })
}

/// A proxy pod whose admin listener (the port named `admin`, on the pod's IP) is `admin`:
/// the API server's pod proxy reaches it there.
pub fn proxy_pod_with_admin(
    node: &str,
    inbound: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    ready: bool,
) -> Value {
    let mut pod = proxy_pod(node, inbound, ready);
    pod["status"]["podIP"] = serde_json::json!(admin.ip().to_string());
    pod["spec"]["containers"][0]["ports"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({ "name": "admin", "containerPort": admin.port() }));
    pod
}

/// The dashboard's running pod, its `http` port at `addr`.
pub fn dashboard_pod(addr: std::net::SocketAddr) -> Value {
    json(Pod {
        metadata: meta(
            Some("weft"),
            "weft-dashboard-0",
            &[("app.kubernetes.io/name", "weft-dashboard")],
        ),
        spec: Some(PodSpec {
            node_name: Some("node-a".into()),
            containers: vec![Container {
                name: "dashboard".into(),
                ports: Some(vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: i32::from(addr.port()),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some(addr.ip().to_string()),
            phase: Some("Running".into()),
            conditions: ready_condition(true),
            ..Default::default()
        }),
    })
}

pub fn app_pod(namespace: &str, name: &str, node: &str, ip: &str, version: &str) -> Value {
    json(Pod {
        metadata: meta(
            Some(namespace),
            name,
            &[("app", "world"), ("version", version)],
        ),
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            containers: vec![Container {
                name: "app".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some(ip.into()),
            conditions: ready_condition(true),
            ..Default::default()
        }),
    })
}

pub fn service(namespace: &str, name: &str, port: u16) -> Value {
    json(Service {
        metadata: meta(Some(namespace), name, &[]),
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(port),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// One endpoint of a slice: its address, node, pod, and conditions.
pub struct Ep<'a> {
    pub ip: &'a str,
    pub node: &'a str,
    pub pod: &'a str,
    pub ready: bool,
    pub terminating: bool,
}

/// An EndpointSlice of `service` with one `http` port (each test backend has its own port,
/// so a test gives each instance its own slice, as Kubernetes may).
pub fn slice(namespace: &str, name: &str, service: &str, port: u16, eps: &[Ep]) -> Value {
    json(EndpointSlice {
        metadata: meta(
            Some(namespace),
            name,
            &[("kubernetes.io/service-name", service)],
        ),
        address_type: "IPv4".into(),
        endpoints: Some(
            eps.iter()
                .map(|e| Endpoint {
                    addresses: vec![e.ip.into()],
                    conditions: Some(EndpointConditions {
                        ready: Some(e.ready),
                        serving: Some(e.ready || e.terminating),
                        terminating: Some(e.terminating),
                    }),
                    node_name: Some(e.node.into()),
                    target_ref: Some(k8s_openapi::api::core::v1::ObjectReference {
                        kind: Some("Pod".into()),
                        name: Some(e.pod.into()),
                        namespace: Some(namespace.into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(i32::from(port)),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    })
}

pub fn deployment(namespace: &str, name: &str, replicas: i32, ready: i32) -> Value {
    json(Deployment {
        metadata: meta(Some(namespace), name, &[("app.kubernetes.io/name", name)]),
        status: Some(DeploymentStatus {
            replicas: Some(replicas),
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The mesh's CA as `weft install` puts it in the cluster: the Secret the control plane
/// reads (`anchors.pem`, `issuer.pem`, `issuer-key.pem` from `dir`) and the ConfigMap of
/// the anchors proxies start with (`configmap_anchors`, the same unless a test says not).
pub fn identity_objects(
    namespace: &str,
    dir: &std::path::Path,
    configmap_anchors: Option<&str>,
) -> (Value, Value) {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use k8s_openapi::ByteString;
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let data: BTreeMap<String, ByteString> = ["anchors.pem", "issuer.pem", "issuer-key.pem"]
        .iter()
        .map(|f| (f.to_string(), ByteString(read(f).into_bytes())))
        .collect();
    let secret = json(Secret {
        metadata: meta(Some(namespace), "weft-identity-issuer", &[]),
        data: Some(data),
        ..Default::default()
    });
    let anchors = configmap_anchors
        .map(str::to_string)
        .unwrap_or_else(|| read("anchors.pem"));
    let configmap = json(ConfigMap {
        metadata: meta(Some(namespace), "weft-identity-trust-anchors", &[]),
        data: Some([("anchors.pem".to_string(), anchors)].into()),
        ..Default::default()
    });
    (secret, configmap)
}

/// A GAMMA HTTPRoute: `parent`'s requests split between `backends` (Service, weight).
pub fn http_route(namespace: &str, name: &str, parent: &str, backends: &[(&str, u32)]) -> Value {
    let refs: Vec<Value> = backends
        .iter()
        .map(|(b, w)| json!({"name": b, "port": 80, "weight": w}))
        .collect();
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": parent, "port": 80}],
            "rules": [{"backendRefs": refs}],
        },
    })
}
