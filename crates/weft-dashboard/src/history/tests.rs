use super::*;
use weft_metrics::parse::Sample;

fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
    }
}

fn scrape(requests: f64, ok: f64, failed: f64) -> Scrape {
    let l = [
        ("direction", "outbound"),
        ("service", "world"),
        ("endpoint", "e1"),
    ];
    let mut ok_l = l.to_vec();
    ok_l.extend([("status_code", "200"), ("classification", "success")]);
    let mut bad_l = l.to_vec();
    bad_l.extend([("status_code", "500"), ("classification", "failure")]);
    Scrape {
        target: "p1".into(),
        node: Some("node-1".into()),
        identity: None,
        up: true,
        exemplars: Vec::new(),
        at: None,
        samples: vec![
            sample("weft_requests_total", &l, requests),
            sample("weft_responses_total", &ok_l, ok),
            sample("weft_responses_total", &bad_l, failed),
        ],
    }
}

#[test]
fn counters_become_rates_and_success_rates() {
    let mut h = History::new(100);
    h.ingest(0.0, &[scrape(1000.0, 900.0, 100.0)]);
    h.ingest(10.0, &[scrape(1200.0, 1080.0, 120.0)]);
    h.ingest(20.0, &[scrape(1400.0, 1260.0, 140.0)]);
    let s = h.stats(&Key::Service("world".into()), 60.0);
    assert_eq!(s.rps, 20.0);
    assert_eq!(s.success_rate, Some(0.9));
    assert_eq!(s.rate_5xx, 2.0);
    let n = h.stats(&Key::Node("node-1".into()), 60.0);
    assert_eq!(n.requests, 400.0);
}

#[test]
fn quantiles_interpolate_within_buckets() {
    let mut c = Counts {
        buckets: vec![0.0; LATENCY_BUCKETS.len() + 1],
        ..Default::default()
    };
    // 100 observations, all between 50 and 52 ms.
    let i = LATENCY_BUCKETS.iter().position(|&b| b == 0.052).unwrap();
    for b in &mut c.buckets[i..] {
        *b = 100.0;
    }
    let p95 = c.quantile(0.95).unwrap();
    assert!((p95 - 0.0519).abs() < 1e-6, "{p95}");
}

#[test]
fn waiting_time_gives_requests_in_flight_and_endpoints_give_instances() {
    let with = |requests: f64, waited: f64, proxies: &[(&str, f64)]| -> Vec<Scrape> {
        proxies
            .iter()
            .map(|(target, endpoints)| {
                let mut s = scrape(requests, requests, 0.0);
                s.target = target.to_string();
                let l = [
                    ("direction", "outbound"),
                    ("service", "world"),
                    ("endpoint", "e1"),
                ];
                s.samples.extend([
                    sample("weft_response_latency_seconds_sum", &l, waited),
                    sample(
                        "weft_service_endpoints",
                        &[("direction", "outbound"), ("service", "world")],
                        *endpoints,
                    ),
                    // A node's own instances, as its inbound sees them: not the service's.
                    sample(
                        "weft_service_endpoints",
                        &[("direction", "inbound"), ("service", "world")],
                        1.0,
                    ),
                ]);
                s
            })
            .collect()
    };
    let mut h = History::new(100);
    h.ingest(0.0, &with(0.0, 0.0, &[("p1", 3.0), ("p2", 3.0)]));
    assert_eq!(h.last_round(), None, "the first round is a baseline");
    // 10 s in which each proxy's callers waited 25 s in all: 5 requests in flight on average.
    h.ingest(10.0, &with(100.0, 25.0, &[("p1", 3.0), ("p2", 4.0)]));
    assert_eq!(h.last_round(), Some(10.0));
    let s = h.stats(&Key::Service("world".into()), 10.0);
    assert_eq!(s.rps, 20.0);
    assert_eq!(s.in_flight, 5.0);
    // Proxies that disagree (one lags an update): the most any reports.
    assert_eq!(h.instances("world"), Some(4.0));
    // History starts with the first counted round, the baseline's count with it.
    assert_eq!(h.instances_series("world", 60.0), vec![(10.0, 4.0)]);
    // No proxy reports it any more: no count, rather than a stale one.
    h.ingest(20.0, &[scrape(100.0, 100.0, 0.0)]);
    assert_eq!(h.instances("world"), None);
}

#[test]
fn history_is_bounded() {
    let mut h = History::new(5);
    for i in 0..50 {
        h.ingest(i as f64, &[scrape(i as f64 * 10.0, 0.0, 0.0)]);
    }
    assert_eq!(h.series[&Key::Cluster].len(), 5);
}

mod dated_tests {
    use super::super::*;

    /// Two targets scraped (by Prometheus) every 5 s at different phases, polled every 1 s:
    /// the rates still add up to what the targets saw.
    #[test]
    fn dated_targets_keep_their_rates_between_scrapes() {
        let mut h = History::new(1000);
        let sample = |v: f64| weft_metrics::parse::Sample {
            name: "weft_requests_total".into(),
            labels: vec![
                ("direction".into(), "outbound".into()),
                ("service".into(), "world".into()),
                ("endpoint".into(), "e".into()),
            ],
            value: v,
        };
        for poll in 0..120 {
            let t = poll as f64;
            let scrapes: Vec<Scrape> = [("a", 0.0), ("b", 2.0)]
                .iter()
                .map(|(name, phase)| {
                    // 10 requests a second, seen at the last scrape before `t`.
                    let at = ((t - phase) / 5.0).floor() * 5.0 + phase;
                    Scrape {
                        target: name.to_string(),
                        node: Some(name.to_string()),
                        identity: None,
                        up: true,
                        exemplars: Vec::new(),
                        samples: vec![sample(at * 10.0)],
                        at: Some(at),
                    }
                })
                .collect();
            h.ingest(t, &scrapes);
        }
        let rps = h.stats(&Key::Service("world".into()), 60.0).rps;
        assert!((rps - 20.0).abs() < 0.5, "{rps}");
    }
}

#[test]
fn the_mtls_share_counts_what_crossed_into_inbounds() {
    let at = |mutual: f64, plain: f64| Scrape {
        target: "p2".into(),
        node: Some("node-2".into()),
        identity: None,
        up: true,
        exemplars: Vec::new(),
        at: None,
        samples: vec![
            sample(
                "weft_inbound_peer_requests_total",
                &[
                    ("tls", "mutual"),
                    (
                        "peer_identity",
                        "spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-1",
                    ),
                ],
                mutual,
            ),
            sample(
                "weft_inbound_peer_requests_total",
                &[("tls", "none"), ("peer_identity", "")],
                plain,
            ),
        ],
    };
    let mut h = History::new(100);
    h.ingest(0.0, &[at(10.0, 5.0)]);
    assert_eq!(h.stats(&Key::Cluster, 60.0).mtls_share, None);
    h.ingest(1.0, &[at(40.0, 15.0)]);
    let share = h.stats(&Key::Cluster, 60.0).mtls_share.unwrap();
    assert!((share - 0.75).abs() < 1e-9, "{share}");
    let node = h
        .stats(&Key::Node("node-2".into()), 60.0)
        .mtls_share
        .unwrap();
    assert!((node - 0.75).abs() < 1e-9, "{node}");
    // Not requests of any service: the request counts stay untouched.
    assert_eq!(h.stats(&Key::Cluster, 60.0).requests, 0.0);
}

/// A service whose traffic stopped is forgotten once its points are older than the history
/// kept, with what was kept to count its series; a target no longer scraped is forgotten.
#[test]
fn what_left_is_forgotten_once_past_the_history_kept() {
    let mut h = History::new(5);
    h.ingest(0.0, &[scrape(0.0, 0.0, 0.0)]);
    h.ingest(1.0, &[scrape(10.0, 10.0, 0.0)]);
    assert!(h.series.contains_key(&Key::Service("world".into())));
    // The endpoint is retired: the proxy exports its series no more.
    let mut quiet = scrape(10.0, 10.0, 0.0);
    quiet.samples.clear();
    for i in 2..10 {
        h.ingest(i as f64, std::slice::from_ref(&quiet));
    }
    assert!(!h.series.contains_key(&Key::Service("world".into())));
    assert!(h.last["p1"].is_empty());
    assert_eq!(h.keys(), [Key::Cluster]);
    // p1 is scraped no more.
    h.ingest(10.0, &[]);
    assert!(h.last.is_empty());
}

fn route_scrape(target: &str, v1_ok: f64, v2_ok: f64, v2_failed: f64) -> Scrape {
    let attempts = |backend, class, v| {
        sample(
            "weft_route_backend_attempts_total",
            &[
                ("service", "world"),
                ("route", "split"),
                ("backend", backend),
                ("classification", class),
            ],
            v,
        )
    };
    let rule = [("service", "world"), ("route", "split")];
    let mut ok = rule.to_vec();
    ok.push(("classification", "success"));
    Scrape {
        target: target.into(),
        node: Some(target.into()),
        identity: None,
        up: true,
        exemplars: Vec::new(),
        at: None,
        samples: vec![
            attempts("world-v1", "success", v1_ok),
            attempts("world-v2", "success", v2_ok),
            attempts("world-v2", "failure", v2_failed),
            sample("weft_route_requests_total", &rule, v1_ok + v2_ok),
            sample("weft_route_responses_total", &ok, v1_ok + v2_ok),
        ],
    }
}

#[test]
fn routes_and_backends_add_up_over_proxies_and_stay_out_of_the_cluster_total() {
    let mut h = History::new(100);
    h.ingest(
        0.0,
        &[
            route_scrape("p1", 0.0, 0.0, 0.0),
            route_scrape("p2", 0.0, 0.0, 0.0),
        ],
    );
    h.ingest(
        10.0,
        &[
            route_scrape("p1", 90.0, 9.0, 1.0),
            route_scrape("p2", 90.0, 9.0, 1.0),
        ],
    );
    let v2 = h.stats_of_all(
        |k| matches!(k, Key::Backend { backend, .. } if backend == "world-v2"),
        60.0,
    );
    assert_eq!(v2.requests, 20.0);
    assert_eq!(v2.success_rate, Some(0.9));
    let rule = h.stats(
        &Key::Route {
            service: "world".into(),
            route: "split".into(),
        },
        60.0,
    );
    assert_eq!(rule.requests, 198.0);
    assert_eq!(rule.success_rate, Some(1.0));
    assert_eq!(h.stats(&Key::Cluster, 60.0).requests, 0.0);
}

/// World's endpoint answered 100 attempts, 20 of them failures that retries turned into
/// successes: callers saw 80 requests all succeed. Every retry followed one of e1's
/// failures, so e1 counts them all too.
fn retried_scrape(attempts_ok: f64, attempts_failed: f64, retries: f64, refused: f64) -> Scrape {
    let mut s = scrape(attempts_ok, attempts_ok, 0.0);
    let l = [
        ("direction", "outbound"),
        ("service", "world"),
        ("endpoint", "e1"),
    ];
    let mut ok = l.to_vec();
    ok.push(("classification", "success"));
    let mut bad = l.to_vec();
    bad.push(("classification", "failure"));
    let service = [("direction", "outbound"), ("service", "world")];
    s.samples.extend([
        sample("weft_attempts_total", &ok, attempts_ok),
        sample("weft_attempts_total", &bad, attempts_failed),
        sample("weft_retries_total", &service, retries),
        sample("weft_retry_budget_exhausted_total", &service, refused),
        sample("weft_endpoint_retries_total", &l, retries),
        sample("weft_endpoint_retry_budget_exhausted_total", &l, refused),
        // The server's view of the same attempts: not the callers', so not counted.
        sample(
            "weft_attempts_total",
            &[
                ("direction", "inbound"),
                ("service", "world"),
                ("endpoint", "e1"),
                ("classification", "failure"),
            ],
            attempts_failed * 2.0,
        ),
    ]);
    s
}

#[test]
fn actual_success_counts_every_attempt_where_effective_success_counts_what_callers_saw() {
    let mut h = History::new(100);
    h.ingest(0.0, &[retried_scrape(0.0, 0.0, 0.0, 0.0)]);
    h.ingest(10.0, &[retried_scrape(80.0, 20.0, 20.0, 3.0)]);
    let world = h.service_stats("world", 60.0);
    assert_eq!(world.success_rate, Some(1.0));
    assert_eq!(world.attempts, 100.0);
    assert_eq!(world.actual_success_rate, Some(0.8));
    assert_eq!(world.retry_rps, Some(2.0));
    assert_eq!(world.budget_refusals, Some(3.0));
    // The endpoint has its attempts, and the retries that followed its failures.
    let endpoint = h.stats(
        &Key::Endpoint {
            service: "world".into(),
            endpoint: "e1".into(),
        },
        60.0,
    );
    assert_eq!(endpoint.actual_success_rate, Some(0.8));
    assert_eq!(
        (endpoint.retry_rps, endpoint.budget_refusals),
        (Some(2.0), Some(3.0))
    );
    // Counted once above the endpoint: the service's own families already hold them.
    let node = h.stats(&Key::Node("node-1".into()), 60.0);
    assert_eq!(node.actual_success_rate, Some(0.8));
    assert_eq!(
        (node.retry_rps, node.budget_refusals),
        (Some(2.0), Some(3.0))
    );
    let cluster = h.stats(&Key::Cluster, 60.0);
    assert_eq!(
        (cluster.retry_rps, cluster.budget_refusals),
        (Some(2.0), Some(3.0))
    );
    let series = h.series(&Key::Service("world".into()), 60.0, 10.0);
    assert_eq!(series.last().unwrap().actual_success_rate, Some(0.8));
}

/// Two of world's endpoints failed: each counts the retries and refusals that followed its
/// own failures, together its service's; a third that never failed counts none (a zero, not
/// a dash), and world's endpoints make up its retries.
#[test]
fn each_endpoint_counts_the_retries_that_followed_its_failures() {
    let scrape = |e1: (f64, f64), e2: (f64, f64), e3_ok: f64| {
        let mut s = scrape(0.0, 0.0, 0.0);
        let service = [("direction", "outbound"), ("service", "world")];
        s.samples.extend([
            sample("weft_retries_total", &service, e1.0 + e2.0),
            sample("weft_retry_budget_exhausted_total", &service, e1.1 + e2.1),
        ]);
        for (endpoint, (retries, refused)) in [("e1", e1), ("e2", e2), ("e3", (0.0, 0.0))] {
            let l = [
                ("direction", "outbound"),
                ("service", "world"),
                ("endpoint", endpoint),
            ];
            s.samples.extend([
                sample("weft_endpoint_retries_total", &l, retries),
                sample("weft_endpoint_retry_budget_exhausted_total", &l, refused),
            ]);
        }
        s.samples.push(sample(
            "weft_attempts_total",
            &[
                ("direction", "outbound"),
                ("service", "world"),
                ("endpoint", "e3"),
                ("classification", "success"),
            ],
            e3_ok,
        ));
        s
    };
    let mut h = History::new(100);
    h.ingest(0.0, &[scrape((5.0, 0.0), (1.0, 0.0), 10.0)]);
    h.ingest(10.0, &[scrape((35.0, 2.0), (11.0, 1.0), 110.0)]);
    let of = |e: &str| {
        h.stats(
            &Key::Endpoint {
                service: "world".into(),
                endpoint: e.into(),
            },
            60.0,
        )
    };
    let (e1, e2, e3) = (of("e1"), of("e2"), of("e3"));
    assert_eq!((e1.retry_rps, e1.budget_refusals), (Some(3.0), Some(2.0)));
    assert_eq!((e2.retry_rps, e2.budget_refusals), (Some(1.0), Some(1.0)));
    assert_eq!((e3.retry_rps, e3.budget_refusals), (Some(0.0), Some(0.0)));
    let world = h.service_stats("world", 60.0);
    assert_eq!(
        (world.retry_rps, world.budget_refusals),
        (Some(4.0), Some(3.0))
    );
    let endpoints = h.stats_of_all(|k| matches!(k, Key::Endpoint { .. }), 60.0);
    assert_eq!(
        (endpoints.retry_rps, endpoints.budget_refusals),
        (world.retry_rps, world.budget_refusals)
    );
    assert_eq!(h.stats(&Key::Cluster, 60.0).retry_rps, Some(4.0));
}

#[test]
fn a_window_without_attempts_has_no_actual_success_rate() {
    let mut h = History::new(100);
    h.ingest(0.0, &[scrape(0.0, 0.0, 0.0)]);
    h.ingest(10.0, &[scrape(10.0, 10.0, 0.0)]);
    let world = h.service_stats("world", 60.0);
    assert_eq!(world.success_rate, Some(1.0));
    assert_eq!(world.attempts, 0.0);
    assert_eq!(world.actual_success_rate, None);
    assert_eq!(world.retry_rps, Some(0.0));
}

/// A routed service's callers are its rules' callers, its attempts its backends', and its
/// retries are counted under its own name.
#[test]
fn a_routed_services_actual_success_is_its_backends_attempts() {
    let scrape = |v1_ok, v2_ok, v2_failed, retries| {
        let mut s = route_scrape("p1", v1_ok, v2_ok, v2_failed);
        s.samples.push(sample(
            "weft_retries_total",
            &[("direction", "outbound"), ("service", "world")],
            retries,
        ));
        s
    };
    let mut h = History::new(100);
    h.ingest(0.0, &[scrape(0.0, 0.0, 0.0, 0.0)]);
    h.ingest(10.0, &[scrape(90.0, 9.0, 1.0, 1.0)]);
    let world = h.service_stats("world", 60.0);
    assert_eq!(world.requests, 99.0);
    assert_eq!(world.success_rate, Some(1.0));
    assert_eq!(world.attempts, 100.0);
    assert_eq!(world.actual_success_rate, Some(0.99));
    assert_eq!(world.retry_rps, Some(0.1));
    let v2 = h.stats_of_all(
        |k| matches!(k, Key::Backend { backend, .. } if backend == "world-v2"),
        60.0,
    );
    assert_eq!(v2.actual_success_rate, v2.success_rate);
    assert_eq!(v2.retry_rps, None);
}

/// Sub-millisecond latencies fall in buckets 0.1 ms wide, so a quantile among them is read
/// to within that, not guessed across 0–0.5 ms.
#[test]
fn sub_millisecond_quantiles_come_from_buckets_a_tenth_of_a_millisecond_wide() {
    let at = |b: f64| LATENCY_BUCKETS.iter().position(|&x| x == b).unwrap();
    let mut c = Counts {
        buckets: vec![0.0; LATENCY_BUCKETS.len() + 1],
        ..Default::default()
    };
    // 100 observations between 0.3 and 0.4 ms, 100 between 0.4 and 0.5 ms.
    for (i, b) in c.buckets.iter_mut().enumerate() {
        *b = if i < at(0.0004) {
            0.0
        } else if i < at(0.0005) {
            100.0
        } else {
            200.0
        };
    }
    let p50 = c.quantile(0.5).unwrap();
    assert!((p50 - 0.0004).abs() < 1e-9, "{p50}");
    let p25 = c.quantile(0.25).unwrap();
    assert!((p25 - 0.00035).abs() < 1e-9, "{p25}");
}
