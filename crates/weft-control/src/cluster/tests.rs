use super::*;

fn cluster() -> Cluster {
    let mut c = Cluster {
        proxy_namespace: "weft".into(),
        ..Default::default()
    };
    let port = |name: &str, port| PortRecord {
        name: name.into(),
        port,
        app_protocol: None,
    };
    c.services.insert(
        Key::new("default", "world"),
        ServiceRecord {
            ports: vec![port("http", 80)],
            failover: vec![],
        },
    );
    c.nodes.insert(
        "n1".into(),
        NodeRecord {
            zone: Some("z1".into()),
        },
    );
    c.pods.insert(
        Key::new("weft", "proxy-n1"),
        PodRecord {
            labels: Default::default(),
            node: Some("n1".into()),
            proxy_inbound: Some("10.1.0.1:4141".parse().unwrap()),
            proxy_ports: vec![],
        },
    );
    c.pods.insert(
        Key::new("default", "world-a"),
        PodRecord {
            labels: [("version".to_string(), "v2".to_string())].into(),
            node: Some("n1".into()),
            proxy_inbound: None,
            proxy_ports: vec![],
        },
    );
    let ep = |ip: &str, usable, node: &str, pod: &str| SliceEndpoint {
        addresses: vec![ip.parse().unwrap()],
        usable,
        node: Some(node.into()),
        zone: None,
        pod: Some(pod.into()),
    };
    c.slices.insert(
        Key::new("default", "world-abc"),
        SliceRecord {
            service: Key::new("default", "world"),
            ports: vec![port("http", 8080)],
            endpoints: vec![
                ep("10.0.0.1", true, "n1", "world-a"),
                ep("10.0.0.2", false, "n1", "world-b"),
                ep("10.0.0.3", true, "gone", "world-c"),
            ],
        },
    );
    c
}

#[test]
fn only_ready_endpoints_on_live_nodes_are_served_with_their_node_proxy() {
    let eps = cluster()
        .view()
        .resolve(&Key::new("default", "world"), 0)
        .unwrap();
    assert_eq!(eps.len(), 1, "{eps:?}");
    let ep = &eps[0];
    assert_eq!(ep.addr, "10.0.0.1:8080".parse().unwrap());
    assert_eq!(ep.node_proxy, Some("10.1.0.1:4141".parse().unwrap()));
    assert_eq!(ep.labels["version"], "v2");
    assert_eq!(ep.labels["zone"], "z1");
    assert_eq!(ep.labels["pod"], "world-a");
    assert_eq!(ep.protocol, Protocol::Http1);
}

#[test]
fn a_missing_service_does_not_exist_and_an_empty_one_has_no_endpoints() {
    let mut c = cluster();
    assert!(c.view().resolve(&Key::new("default", "nope"), 0).is_none());
    c.slices.clear();
    assert_eq!(
        c.view().resolve(&Key::new("default", "world"), 0),
        Some(vec![])
    );
}

#[test]
fn a_ready_proxy_pod_is_found_by_label_and_inbound_port_and_labels_are_trimmed() {
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodCondition, PodSpec, PodStatus};
    let mut pod = Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("weft-proxy-x".into()),
            namespace: Some("weft".into()),
            labels: Some(
                [
                    (PROXY_LABEL.0.to_string(), PROXY_LABEL.1.to_string()),
                    ("version".to_string(), "v3".to_string()),
                    ("team".to_string(), "payments".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("n1".into()),
            containers: vec![Container {
                name: "proxy".into(),
                ports: Some(vec![ContainerPort {
                    name: Some(INBOUND_PORT_NAME.into()),
                    container_port: 4141,
                    host_port: Some(4141),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            host_ip: Some("192.168.0.9".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    };
    // Labelled like a proxy, but no DaemonSet controls it: not a proxy.
    assert_eq!(PodRecord::from_k8s(&pod).unwrap().1.proxy_inbound, None);
    pod.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "apps/v1".into(),
            kind: "DaemonSet".into(),
            name: PROXY_DAEMONSET.into(),
            uid: "u".into(),
            controller: Some(true),
            ..Default::default()
        },
    ]);
    let (_, rec) = PodRecord::from_k8s(&pod).unwrap();
    assert_eq!(rec.proxy_inbound, Some("192.168.0.9:4141".parse().unwrap()));
    assert_eq!(rec.labels.len(), 1, "{:?}", rec.labels);
    assert_eq!(rec.labels["version"], "v3");
    assert_eq!(rec.proxy_ports, ["192.168.0.9:4141".parse().unwrap()]);
    // Not ready: not a proxy anyone should send through, and still never an endpoint.
    pod.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
    let (_, rec) = PodRecord::from_k8s(&pod).unwrap();
    assert_eq!(rec.proxy_inbound, None);
    assert_eq!(rec.proxy_ports.len(), 1);
}

#[test]
fn a_proxys_own_listener_is_never_an_endpoint() {
    let mut c = cluster();
    // A slice (a Service selecting the proxies, say) that lists n1's proxy's inbound.
    let proxy = c.pods.get_mut(&Key::new("weft", "proxy-n1")).unwrap();
    proxy.proxy_ports = vec!["10.0.0.1:8080".parse().unwrap()];
    let eps = c.view().resolve(&Key::new("default", "world"), 0).unwrap();
    assert_eq!(eps, vec![]);
    // A tenant's pod claiming the same address changes nothing for anyone else.
    c.pods
        .get_mut(&Key::new("weft", "proxy-n1"))
        .unwrap()
        .proxy_ports = vec![];
    c.pods
        .get_mut(&Key::new("default", "world-a"))
        .unwrap()
        .proxy_ports = vec!["10.0.0.1:8080".parse().unwrap()];
    let eps = c.view().resolve(&Key::new("default", "world"), 0).unwrap();
    assert_eq!(eps.len(), 1);
}

#[test]
fn names_resolve_in_the_default_namespace_unless_they_name_one() {
    let p = |n| parse_name(n, "default", "cluster.local");
    assert_eq!(p("world"), Some(Key::new("default", "world")));
    assert_eq!(p("World.prod:80"), Some(Key::new("prod", "world")));
    assert_eq!(
        p("world.prod.svc.cluster.local."),
        Some(Key::new("prod", "world"))
    );
    assert_eq!(p("a.b.c"), None);
    assert_eq!(p(""), None);
    assert_eq!(p("bad_name"), None);
}

#[test]
fn a_services_ports_are_its_services_ports() {
    let c = cluster();
    let view = c.view();
    assert_eq!(view.ports(&Key::new("default", "world")), Some(vec![80]));
    assert_eq!(view.ports(&Key::new("default", "nosuch")), None);
}

#[test]
fn a_pod_like_a_proxy_outside_the_install_namespace_never_becomes_a_nodes_proxy() {
    let mut c = cluster();
    let tenant = PodRecord {
        labels: Default::default(),
        node: Some("n1".into()),
        proxy_inbound: Some("10.9.9.9:4141".parse().unwrap()),
        proxy_ports: vec![],
    };
    // Sorted before weft's own by name, so only the namespace keeps it out.
    c.pods.insert(Key::new("tenant", "a-proxy"), tenant);
    let eps = c.view().resolve(&Key::new("default", "world"), 0).unwrap();
    assert_eq!(eps[0].node_proxy, Some("10.1.0.1:4141".parse().unwrap()));
}

#[test]
fn of_two_proxies_on_a_node_the_first_by_name_is_chosen_whatever_the_order_seen() {
    for order in [["proxy-a", "proxy-b"], ["proxy-b", "proxy-a"]] {
        let mut c = cluster();
        c.pods.remove(&Key::new("weft", "proxy-n1"));
        for name in order {
            let addr = if name == "proxy-a" {
                "10.1.0.1"
            } else {
                "10.1.0.2"
            };
            c.pods.insert(
                Key::new("weft", name),
                PodRecord {
                    labels: Default::default(),
                    node: Some("n1".into()),
                    proxy_inbound: Some(format!("{addr}:4141").parse().unwrap()),
                    proxy_ports: vec![],
                },
            );
        }
        let eps = c.view().resolve(&Key::new("default", "world"), 0).unwrap();
        assert_eq!(eps[0].node_proxy, Some("10.1.0.1:4141".parse().unwrap()));
    }
}

mod routes {
    use super::*;
    use crate::gateway::{self, MetaView, RouteKind};
    use serde_json::json;

    fn route(
        name: &str,
        parents: &[(&str, u16)],
        backend: &str,
        filter: bool,
    ) -> gateway::RouteObject {
        let parents: Vec<_> = parents
            .iter()
            .map(|(p, port)| json!({"kind": "Service", "name": p, "port": port}))
            .collect();
        let mut rule = json!({"backendRefs": [{"name": backend}]});
        if filter {
            rule["filters"] = json!([{"type": "RequestHeaderModifier"}]);
        }
        let data = json!({"spec": {"parentRefs": parents, "rules": [rule]}});
        let meta = MetaView {
            generation: 1,
            created: "2026-12-02T00:00:00Z".into(),
        };
        gateway::read(
            RouteKind::Http,
            &Key::new("default", name),
            &meta,
            &data,
            "default",
        )
        .unwrap()
    }

    fn backends(c: &Cluster, service: &str) -> Vec<String> {
        c.routes
            .get(&Key::new("default", service))
            .map(|r| {
                r.rules()
                    .iter()
                    .flat_map(|rule| rule.backends.iter().map(|b| b.service.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_refused_edit_keeps_the_rules_and_the_services_it_had() {
        let mut c = Cluster::default();
        let key = Key::new("default", "split");
        c.http_routes.insert(
            key.clone(),
            route("split", &[("world", 80)], "world-v2", false),
        );
        c.refresh_routes();
        assert_eq!(backends(&c, "world"), ["world-v2"]);
        // Moved to another Service in the same edit that brings a filter: refused whole.
        c.http_routes.insert(
            key.clone(),
            route("split", &[("payments", 80)], "evil", true),
        );
        c.refresh_routes();
        assert_eq!(backends(&c, "world"), ["world-v2"]);
        assert!(backends(&c, "payments").is_empty());
        // Deleted: gone.
        c.http_routes.remove(&key);
        c.refresh_routes();
        assert!(c.routes.is_empty());
    }

    #[test]
    fn a_service_named_once_per_port_takes_the_rules_once() {
        let mut c = Cluster::default();
        let r = route(
            "split",
            &[("world", 80), ("world", 8080)],
            "world-v2",
            false,
        );
        c.http_routes.insert(Key::new("default", "split"), r);
        c.refresh_routes();
        assert_eq!(backends(&c, "world"), ["world-v2"]);
        assert!(c.route_conflicts.is_empty());
    }

    #[test]
    fn routes_that_do_not_fit_together_keep_the_last_and_say_why() {
        let mut c = Cluster::default();
        c.http_routes.insert(
            Key::new("default", "a.b"),
            route("a.b", &[("world", 80)], "v1", false),
        );
        c.refresh_routes();
        assert_eq!(backends(&c, "world"), ["v1"]);
        // A second route whose rule name collides with the first's.
        let mut other = route("a", &[("world", 80)], "v2", false);
        if let Ok(rules) = &mut other.rules {
            rules[0].name = "a.b".into();
        }
        c.http_routes.insert(Key::new("default", "a"), other);
        c.refresh_routes();
        assert_eq!(backends(&c, "world"), ["v1"], "the last routes stay");
        let statuses = c.route_statuses("2026-12-02T00:00:00Z");
        let (_, status) = statuses.iter().find(|((_, k), _)| k.name == "a").unwrap();
        let accepted = &status["status"]["parents"][0]["conditions"][0];
        assert_eq!(accepted["status"], "False");
        assert!(
            accepted["message"]
                .as_str()
                .unwrap()
                .contains("named twice"),
            "{accepted}"
        );
    }
}
