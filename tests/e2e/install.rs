//! `weft install`: the manifests in deploy/ are exactly what it prints, and every manifest
//! it prints or deploy/ holds passes `kubernetes-validate --strict` (the real Kubernetes
//! schemas), or for KEDA's objects, KEDA's CRD schema.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use weft_tests::proxy::weft_bin;

fn install(args: &[&str]) -> std::process::Output {
    Command::new(weft_bin())
        .arg("install")
        .args(args)
        .output()
        .expect("run weft install")
}

fn stdout(args: &[&str]) -> String {
    let out = install(args);
    assert!(
        out.status.success(),
        "weft install {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 manifests")
}

fn deploy(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/kubernetes")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn deploy_holds_exactly_what_weft_install_prints() {
    // With the CA kept out: a checked-in manifest must hold no key.
    assert!(
        stdout(&["--external-ca"]) == deploy("weft.yaml"),
        "deploy/kubernetes/weft.yaml is stale: run \
         `weft install --external-ca > deploy/kubernetes/weft.yaml`"
    );
    assert!(
        stdout(&["--external-ca", "--with-demo"]) == deploy("weft-with-demo.yaml"),
        "deploy/kubernetes/weft-with-demo.yaml is stale: run \
         `weft install --external-ca --with-demo > deploy/kubernetes/weft-with-demo.yaml`"
    );
    assert!(!deploy("weft.yaml").contains("PRIVATE KEY"));
}

/// Each `weft install` makes a CA of its own unless given one; given a folder, it carries
/// exactly that folder's files, and refuses one that does not check.
#[test]
fn install_carries_the_mesh_ca() {
    let first = stdout(&[]);
    let second = stdout(&[]);
    assert!(first.contains("kind: Secret") && first.contains("BEGIN PRIVATE KEY"));
    assert_ne!(first, second, "each install makes its own CA");
    let dir = weft_tests::TempDir::new("install-ca");
    let ca = dir.path("ca");
    let made = Command::new(weft_bin())
        .args(["identity", "init"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(made.status.success());
    let given = stdout(&["--identity-dir", ca.to_str().unwrap()]);
    assert_eq!(given, stdout(&["--identity-dir", ca.to_str().unwrap()]));
    let issuer = std::fs::read_to_string(ca.join("issuer.pem")).unwrap();
    let indented: String = issuer.lines().map(|l| format!("    {l}\n")).collect();
    assert!(given.contains(&indented), "{given}");
    std::fs::write(ca.join("issuer.pem"), "not a certificate\n").unwrap();
    let out = install(&["--identity-dir", ca.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("issuer.pem"), "{err}");
}

#[test]
fn every_rendered_manifest_passes_kubernetes_validate_strict() {
    let dir = weft_tests::TempDir::new("install");
    // (file, arguments, resources kubernetes-validate checks, KEDA objects checked against
    // KEDA's CRDs).
    let cases: [(&str, &[&str], usize, usize); 9] = [
        ("default.yaml", &[], 16, 0),
        ("external-ca.yaml", &["--external-ca"], 14, 0),
        ("demo.yaml", &["--with-demo"], 20, 0),
        (
            "ingress.yaml",
            &[
                "--external-ca",
                "--ingress",
                "--otlp",
                "otel-collector.observability:4317",
            ],
            18,
            0,
        ),
        (
            "custom.yaml",
            &[
                "--namespace",
                "mesh-system",
                "--image",
                "registry.example/weft:1.2.3",
                "--with-demo",
                "--allow-plaintext-peers",
            ],
            20,
            0,
        ),
        // The APIService and three RBAC objects; the Secret weft-dashboard-tls exists.
        (
            "autoscaling.yaml",
            &["--external-ca", "--autoscaling"],
            18,
            0,
        ),
        // The ClusterTriggerAuthentication; both Secrets exist.
        (
            "autoscaling-keda.yaml",
            &["--external-ca", "--with-demo", "--autoscaling=keda"],
            18,
            1,
        ),
        // The certificates made at install: the Secret weft-dashboard-tls, and KEDA's.
        ("autoscaling-certs.yaml", &["--autoscaling"], 21, 0),
        (
            "autoscaling-keda-certs.yaml",
            &["--autoscaling=keda"],
            18,
            1,
        ),
    ];
    for (file, args, resources, keda) in cases {
        let path = dir.path(file);
        let text = stdout(args);
        std::fs::write(&path, &text).unwrap();
        let (passed, report) = kubernetes_validate(&path);
        assert!(passed, "weft install {args:?}:\n{report}");
        assert_eq!(
            report.matches(" passed for resource ").count(),
            resources,
            "weft install {args:?}:\n{report}"
        );
        let keda_file = format!("keda-{file}");
        assert_eq!(
            keda_objects_pass(&text, &dir, &keda_file),
            keda,
            "weft install {args:?}"
        );
    }
}

#[test]
fn a_bad_namespace_or_image_is_refused_with_a_clear_line() {
    let out = install(&["--namespace", "Bad_NS"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--namespace \"Bad_NS\""), "{err}");
    assert!(out.stdout.is_empty());
    let out = install(&["--image", "weft:1\nkind: Secret"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--image"));
}

/// `kubernetes-validate --strict FILE`: whether it passed, and what it said. It passes a
/// kind it has no schema for with a warning, so callers count the resources that passed.
fn kubernetes_validate(path: &Path) -> (bool, String) {
    // As a module: a pip-installed script may not be on PATH (pyenv shims, ~/.local/bin).
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict"])
        .arg(path)
        .output()
        .expect("kubernetes-validate is installed (scripts/test installs it)");
    (out.status.success(), said(&out))
}

/// `support/crd_validate.py` with KEDA's ScaledObject and ClusterTriggerAuthentication CRDs
/// (support/kubernetes/keda): the schemas a cluster with KEDA checks them against, strictly.
fn keda_validate(path: &Path) -> (bool, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(weft_tests::python::script("crd_validate.py"));
    for crd in [
        "keda.sh_scaledobjects.yaml",
        "keda.sh_clustertriggerauthentications.yaml",
    ] {
        cmd.arg("--crd").arg(weft_tests::python::script(&format!(
            "kubernetes/keda/{crd}"
        )));
    }
    let out = cmd
        .arg(path)
        .output()
        .expect("python3 with jsonschema and PyYAML (scripts/test installs them)");
    (out.status.success(), said(&out))
}

/// The KEDA objects (`keda.sh/*`) among `text`'s, checked against KEDA's CRDs in a file of
/// their own (kubernetes-validate only warns of a kind it does not know): how many there
/// were, each of which passed.
fn keda_objects_pass(text: &str, dir: &weft_tests::TempDir, file: &str) -> usize {
    let keda: Vec<Value> = yaml_docs(text)
        .into_iter()
        .filter(|d| d["apiVersion"].as_str().unwrap().starts_with("keda.sh/"))
        .collect();
    if keda.is_empty() {
        return 0;
    }
    let path = dir.path(file);
    let stream: String = keda.iter().map(|d| format!("---\n{d}\n")).collect();
    std::fs::write(&path, stream).unwrap();
    let (passed, report) = keda_validate(&path);
    assert!(passed, "{file}:\n{report}");
    assert_eq!(report.matches(": passed (").count(), keda.len(), "{report}");
    keda.len()
}

fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The documents of a YAML stream, as PyYAML (kubernetes-validate's parser) reads them.
fn yaml_docs(text: &str) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml\n\
             json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with PyYAML (scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "not YAML: {}", said(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every file under deploy/ that holds Kubernetes objects (not a tool's own config).
fn deploy_manifests() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&path).unwrap();
                if text.lines().any(|l| l.starts_with("apiVersion: ")) {
                    found.push(path);
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(&repo_file("deploy"), &mut found);
    found.sort();
    found
}

#[test]
fn every_kubernetes_manifest_in_deploy_passes_strict_validation() {
    let files = deploy_manifests();
    for want in [
        "autoscaling/world-hpa.yaml",
        "autoscaling/world-scaledobject.yaml",
        "autoscaling/prometheus-adapter.yaml",
        "kubernetes/weft.yaml",
        "opentelemetry/collector-k8s.yaml",
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(want)),
            "deploy/{want} not found among {files:?}"
        );
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let objects = text.lines().filter(|l| l.starts_with("kind: ")).count();
        // kubernetes-validate knows no custom resource: KEDA's are checked against its CRD.
        let (passed, report, marker) = if text.contains("apiVersion: keda.sh/") {
            let (passed, report) = keda_validate(&file);
            (passed, report, ": passed (")
        } else {
            let (passed, report) = kubernetes_validate(&file);
            (passed, report, " passed for resource ")
        };
        assert!(passed, "{}:\n{report}", file.display());
        assert_eq!(
            report.matches(marker).count(),
            objects,
            "{}:\n{report}",
            file.display()
        );
    }
}

/// The ScaledObject check is a real one: each mistake KEDA's API server would refuse is
/// caught, at the field that holds it.
#[test]
fn the_scaledobject_check_refuses_what_kedas_schema_refuses() {
    let good =
        std::fs::read_to_string(repo_file("deploy/autoscaling/world-scaledobject.yaml")).unwrap();
    let dir = weft_tests::TempDir::new("keda");
    let control = dir.path("good.yaml");
    std::fs::write(&control, &good).unwrap();
    let (passed, report) = keda_validate(&control);
    assert!(passed, "{report}");
    let cases = [
        (
            "    - type: external\n",
            "    - name: untyped\n",
            "spec.triggers.0: 'type' is a required property",
        ),
        (
            "  minReplicaCount: 1\n",
            "  minReplicaCount: \"one\"\n",
            "spec.minReplicaCount: 'one' is not of type 'integer'",
        ),
        (
            "        target: \"10\"\n",
            "        target: 10\n",
            "spec.triggers.0.metadata.target: 10 is not of type 'string'",
        ),
        (
            "  minReplicaCount: 1\n",
            "  minReplicas: 1\n",
            "'minReplicas' was unexpected",
        ),
        (
            "  namespace: default\n",
            "  namespace: default\n  lables: {app: world}\n",
            "metadata: Additional properties are not allowed ('lables' was unexpected)",
        ),
        (
            "apiVersion: keda.sh/v1alpha1\n",
            "apiVersion: keda.sh/v1\n",
            "keda.sh/v1 ScaledObject is not what",
        ),
    ];
    for (i, (from, to, complaint)) in cases.into_iter().enumerate() {
        let broken = good.replacen(from, to, 1);
        assert_ne!(broken, good, "{from:?} is not in world-scaledobject.yaml");
        let path = dir.path(&format!("broken-{i}.yaml"));
        std::fs::write(&path, broken).unwrap();
        let (passed, report) = keda_validate(&path);
        assert!(!passed, "{to:?} passed:\n{report}");
        assert!(
            report.contains(complaint),
            "{to:?}: wanted {complaint:?}:\n{report}"
        );
    }
}

#[test]
fn autoscaling_registers_the_external_metrics_api_with_the_rbac_it_needs() {
    let ns = "mesh-system";
    let docs = yaml_docs(&stdout(&[
        "--external-ca",
        "--namespace",
        ns,
        "--autoscaling",
    ]));
    let find = |kind: &str, name: &str| -> &Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let api = find("APIService", "v1beta1.external.metrics.k8s.io");
    assert_eq!(api["apiVersion"], "apiregistration.k8s.io/v1");
    // The API server checks the dashboard's certificate: with --external-ca, against the CA
    // cert-manager's injector puts in caBundle from the Certificate weft-dashboard-tls.
    assert_eq!(
        api["spec"],
        serde_json::json!({
            "group": "external.metrics.k8s.io",
            "version": "v1beta1",
            "service": { "name": "weft-dashboard", "namespace": ns, "port": 443 },
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        })
    );
    assert_eq!(
        api["metadata"]["annotations"],
        serde_json::json!({ "cert-manager.io/inject-ca-from": format!("{ns}/weft-dashboard-tls") })
    );

    // The Service port the APIService names, and KEDA's, lead to the dashboard's listeners.
    let service = find("Service", "weft-dashboard");
    let dashboard = find("Deployment", "weft-dashboard");
    assert_eq!(service["metadata"]["namespace"], ns);
    let pod = &dashboard["spec"]["template"];
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod["metadata"]["labels"][key], value);
    }
    let container = &pod["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for (port, flag, listen) in [
        (443, "--metrics-api-listen", "0.0.0.0:6443"),
        (8087, "--keda-listen", "0.0.0.0:8087"),
    ] {
        let target = service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == port)
            .unwrap_or_else(|| panic!("the Service has no port {port}"))["targetPort"]
            .clone();
        let declared = container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == target)
            .unwrap_or_else(|| panic!("the container has no port {target}"));
        let at = args.iter().position(|a| *a == flag).expect(flag);
        assert_eq!(args[at + 1], listen);
        assert_eq!(
            declared["containerPort"].as_u64(),
            listen.rsplit(':').next().unwrap().parse().ok()
        );
    }

    // Who the extension API server is, and who may read it.
    let sa = find("ServiceAccount", "weft-dashboard");
    assert_eq!(sa["metadata"]["namespace"], ns);
    assert_eq!(pod["spec"]["serviceAccountName"], "weft-dashboard");
    let bound = |kind: &str, role_kind: &str, role: &str| -> Vec<&Value> {
        let role_ref = serde_json::json!({
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": role,
        });
        docs.iter()
            .filter(|d| d["kind"] == kind && d["roleRef"] == role_ref)
            .collect()
    };
    let the_dashboard = serde_json::json!([
        { "kind": "ServiceAccount", "name": "weft-dashboard", "namespace": ns }
    ]);
    // It reads the aggregator's CA with its own token, and takes only the aggregator.
    assert_eq!(pod["spec"]["automountServiceAccountToken"], true);
    assert!(serde_json::to_string(&pod)
        .unwrap()
        .contains("--metrics-api-kube-auth"));
    let auth_reader = bound(
        "RoleBinding",
        "Role",
        "extension-apiserver-authentication-reader",
    );
    assert_eq!(auth_reader.len(), 1);
    assert_eq!(auth_reader[0]["metadata"]["namespace"], "kube-system");
    assert_eq!(auth_reader[0]["subjects"], the_dashboard);
    let reader = find("ClusterRole", "weft-external-metrics-reader");
    assert_eq!(
        reader["rules"],
        serde_json::json!([{
            "apiGroups": ["external.metrics.k8s.io"],
            "resources": ["*"],
            "verbs": ["get", "list"],
        }])
    );
    let hpa = bound(
        "ClusterRoleBinding",
        "ClusterRole",
        "weft-external-metrics-reader",
    );
    assert_eq!(hpa.len(), 1);
    assert_eq!(
        hpa[0]["subjects"],
        serde_json::json!([{
            "kind": "ServiceAccount",
            "name": "horizontal-pod-autoscaler",
            "namespace": "kube-system",
        }])
    );

    // The dashboard's NetworkPolicy lets the API server and KEDA's operator in.
    let policy = find("NetworkPolicy", "weft-dashboard");
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    assert!(rules.contains(&serde_json::json!({
        "ports": [{ "port": "metrics-api", "protocol": "TCP" }],
    })));
    assert!(rules.contains(&serde_json::json!({
        "from": [{ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "keda" } } }],
        "ports": [{ "port": "keda", "protocol": "TCP" }],
    })));

    // Without the flag none of it; with =keda the scaler alone and KEDA's
    // ClusterTriggerAuthentication, and no API taken. No key: the Secrets exist.
    let off = yaml_docs(&stdout(&["--external-ca", "--namespace", ns]));
    assert_eq!(off.len() + 4, docs.len());
    let keda = yaml_docs(&stdout(&[
        "--external-ca",
        "--namespace",
        ns,
        "--autoscaling=keda",
    ]));
    assert_eq!(off.len() + 1, keda.len());
    for docs in [&docs, &keda] {
        let text = serde_json::to_string(docs).unwrap();
        assert!(!text.contains("PRIVATE KEY") && !text.contains("caBundle"));
        assert!(!text.contains("insecureSkipTLSVerify"));
        assert!(!docs.iter().any(|d| d["kind"] == "Secret"));
    }
    for (docs, has_api, has_keda) in [(&off, false, false), (&keda, false, true)] {
        let text = serde_json::to_string(docs).unwrap();
        assert_eq!(text.contains("APIService"), has_api);
        assert_eq!(text.contains("--metrics-api-listen"), has_api);
        assert_eq!(
            text.contains("extension-apiserver-authentication-reader"),
            has_api
        );
        assert_eq!(
            text.contains("\"automountServiceAccountToken\":true"),
            has_api
        );
        assert_eq!(text.contains("--keda-listen"), has_keda);
    }
}

/// `openssl verify` of `cert` against `ca` for `purpose` (`sslserver`, `sslclient`), with
/// `extra` flags: whether it said OK, and what it said.
fn openssl_verify(ca: &Path, cert: &Path, purpose: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["verify", "-purpose", purpose])
        .args(extra)
        .arg("-CAfile")
        .arg(ca)
        .arg(cert)
        .output()
        .expect("openssl runs (scripts/test installs it)");
    let said = said(&out);
    (out.status.success() && said.contains(": OK"), said)
}

/// Without --external-ca, `--autoscaling` makes the dashboard's certificates at install: a
/// Secret the dashboard mounts and serves both listeners with; its CA, which the APIService
/// (caBundle) and KEDA (through the ClusterTriggerAuthentication) trust; and KEDA's client
/// certificate under it. openssl agrees that each is what it is for.
#[test]
fn autoscaling_makes_the_dashboards_certificates_and_everyone_trusts_their_ca() {
    let ns = "mesh-system";
    let dir = weft_tests::TempDir::new("install-certs");
    let full = yaml_docs(&stdout(&["--namespace", ns, "--autoscaling"]));
    let keda = yaml_docs(&stdout(&["--namespace", ns, "--autoscaling=keda"]));
    let find = |docs: &[Value], kind: &str, name: &str| -> Option<Value> {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .cloned()
    };
    let write = |name: &str, pem: &Value| -> PathBuf {
        let path = dir.path(name);
        std::fs::write(&path, pem.as_str().unwrap()).unwrap();
        path
    };
    let mut cas = Vec::new();
    for (tag, docs) in [("full", &full), ("keda", &keda)] {
        let secret = find(docs, "Secret", "weft-dashboard-tls").expect("weft-dashboard-tls");
        assert_eq!(secret["metadata"]["namespace"], ns);
        assert_eq!(secret["type"], "kubernetes.io/tls");
        let data = secret["stringData"].as_object().unwrap();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            ["ca.crt", "tls.crt", "tls.key"]
        );
        let ca = write(&format!("{tag}-ca.crt"), &data["ca.crt"]);
        let cert = write(&format!("{tag}-tls.crt"), &data["tls.crt"]);
        // The names the API server and KEDA dial.
        for host in [
            format!("weft-dashboard.{ns}.svc"),
            format!("weft-dashboard.{ns}.svc.cluster.local"),
        ] {
            let (ok, said) = openssl_verify(&ca, &cert, "sslserver", &["-verify_hostname", &host]);
            assert!(ok, "{tag}: {host}: {said}");
        }
        let (ok, said) = openssl_verify(
            &ca,
            &cert,
            "sslserver",
            &["-verify_hostname", "weft-dashboard.weft.svc"],
        );
        assert!(!ok, "{tag}: another namespace's name: {said}");
        cas.push(data["ca.crt"].clone());

        // The dashboard mounts the Secret and serves both listeners from it.
        let pod = &find(docs, "Deployment", "weft-dashboard").unwrap()["spec"]["template"]["spec"];
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["secret"]["secretName"] == "weft-dashboard-tls")
            .expect("a volume of the Secret");
        let container = &pod["containers"][0];
        let mount = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume["name"])
            .expect("the Secret mounted");
        assert_eq!(mount["readOnly"], true);
        let at = mount["mountPath"].as_str().unwrap();
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let flag = |name: &str| -> Option<&str> {
            let i = args.iter().position(|a| *a == name)?;
            Some(args[i + 1])
        };
        let mut files = vec![
            ("--keda-tls-cert", "tls.crt"),
            ("--keda-tls-key", "tls.key"),
            ("--keda-client-ca", "ca.crt"),
        ];
        if tag == "full" {
            files.extend([
                ("--metrics-api-tls-cert", "tls.crt"),
                ("--metrics-api-tls-key", "tls.key"),
            ]);
        }
        for (name, file) in files {
            assert_eq!(
                flag(name),
                Some(format!("{at}/{file}").as_str()),
                "{tag}: {name}"
            );
        }
        assert_eq!(flag("--keda-allowed-names"), Some("keda-operator"));
        assert_eq!(
            flag("--metrics-api-tls-cert").is_some(),
            tag == "full",
            "{tag}"
        );
    }
    assert_ne!(cas[0], cas[1], "each install makes its own CA");

    // The APIService trusts the Secret's CA, and nothing else.
    let api = find(&full, "APIService", "v1beta1.external.metrics.k8s.io").unwrap();
    assert!(api["spec"].get("insecureSkipTLSVerify").is_none(), "{api}");
    assert!(api["metadata"].get("annotations").is_none(), "{api}");
    let bundle = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        api["spec"]["caBundle"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(String::from_utf8(bundle).unwrap(), cas[0].as_str().unwrap());
    // KEDA's side only where KEDA runs: its namespace and CRD are missing otherwise.
    assert!(find(&full, "Secret", "weft-keda-client").is_none());
    assert!(find(&full, "ClusterTriggerAuthentication", "weft-dashboard").is_none());
    assert!(find(&keda, "APIService", "v1beta1.external.metrics.k8s.io").is_none());

    // KEDA's client certificate: in KEDA's namespace, under the same CA, for client auth.
    let client = find(&keda, "Secret", "weft-keda-client").expect("weft-keda-client");
    assert_eq!(client["metadata"]["namespace"], "keda");
    assert_eq!(client["type"], "kubernetes.io/tls");
    let data = &client["stringData"];
    assert_eq!(data["ca.crt"], cas[1]);
    let ca = write("keda-client-ca.crt", &data["ca.crt"]);
    let cert = write("keda-client-tls.crt", &data["tls.crt"]);
    let (ok, said) = openssl_verify(&ca, &cert, "sslclient", &[]);
    assert!(ok, "{said}");
    let (ok, said) = openssl_verify(&ca, &cert, "sslserver", &[]);
    assert!(!ok, "KEDA's certificate can serve: {said}");
    let server = dir.path("keda-tls.crt");
    let (ok, said) = openssl_verify(&ca, &server, "sslclient", &[]);
    assert!(!ok, "the dashboard's certificate can log in: {said}");
    let subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let subject = self::said(&subject);
    assert!(
        subject.contains("CN=keda-operator") || subject.contains("CN = keda-operator"),
        "{subject}"
    );
    assert!(data["tls.key"].as_str().unwrap().contains("PRIVATE KEY"));

    // The ClusterTriggerAuthentication hands KEDA that Secret as its external scaler's TLS
    // parameters, and the ScaledObject in deploy/ names it.
    let auth = find(&keda, "ClusterTriggerAuthentication", "weft-dashboard").unwrap();
    assert_eq!(auth["apiVersion"], "keda.sh/v1alpha1");
    assert_eq!(
        auth["spec"],
        serde_json::json!({ "secretTargetRef": [
            { "parameter": "caCert", "name": "weft-keda-client", "key": "ca.crt" },
            { "parameter": "tlsClientCert", "name": "weft-keda-client", "key": "tls.crt" },
            { "parameter": "tlsClientKey", "name": "weft-keda-client", "key": "tls.key" },
        ]})
    );
    let scaled =
        std::fs::read_to_string(repo_file("deploy/autoscaling/world-scaledobject.yaml")).unwrap();
    let scaled = &yaml_docs(&scaled)[0];
    assert_eq!(
        scaled["spec"]["triggers"][0]["authenticationRef"],
        serde_json::json!({ "name": "weft-dashboard", "kind": "ClusterTriggerAuthentication" })
    );
}

/// prometheus-adapter's rules, filled in as the adapter fills them for an HPA selecting
/// `service: world`, compute over two proxies' series what weft's own API would serve;
/// every series they read is one a real proxy exports.
#[tokio::test]
async fn the_prometheus_adapter_rules_give_the_figures_weft_serves() {
    let text =
        std::fs::read_to_string(repo_file("deploy/autoscaling/prometheus-adapter.yaml")).unwrap();
    let configmap = &yaml_docs(&text)[0];
    let config = &yaml_docs(configmap["data"]["config.yaml"].as_str().unwrap())[0];
    let rules = config["externalRules"].as_array().unwrap();
    // Each proxy: 10 requests/s to world, 9 of them answered well, 0.2 s of waiting per
    // second, every answer between 50 and 100 ms; world has 4 ready instances.
    let want = [
        ("requests-per-second", 20.0),
        ("requests-per-second-per-instance", 5.0),
        ("in-flight-requests", 4.0),
        ("p99-latency-seconds", 0.0995),
        ("success-rate", 0.9),
    ];
    let names: Vec<&str> = rules
        .iter()
        .map(|r| r["name"]["as"].as_str().unwrap())
        .collect();
    assert_eq!(names, want.map(|(n, _)| n));
    let mut input = Vec::new();
    for i in 1..=2 {
        let series = |name: &str, extra: &str, values: &str| {
            serde_json::json!({
                "series": format!("{name}{{direction=\"outbound\",service=\"world\",endpoint=\"10.0.0.{i}:7778\",instance=\"10.1.0.{i}:9990\"{extra}}}"),
                "values": values,
            })
        };
        let responses = "weft_responses_total";
        let buckets = "weft_response_latency_seconds_bucket";
        input.extend([
            series("weft_requests_total", "", "0+150x40"),
            series(responses, ",status_code=\"200\",classification=\"success\",error=\"\"", "0+135x40"),
            series(responses, ",status_code=\"503\",classification=\"failure\",error=\"\"", "0+15x40"),
            series("weft_response_latency_seconds_sum", "", "0+30x40"),
            series(buckets, ",le=\"0.05\"", "0x40"),
            series(buckets, ",le=\"0.1\"", "0+150x40"),
            series(buckets, ",le=\"+Inf\"", "0+150x40"),
            serde_json::json!({
                "series": format!("weft_service_endpoints{{direction=\"outbound\",service=\"world\",instance=\"10.1.0.{i}:9990\"}}"),
                "values": "4x40",
            }),
        ]);
    }
    // What must not count: the inbound side (each attempt again), and other services.
    input.extend([
        serde_json::json!({ "series": "weft_requests_total{direction=\"inbound\",service=\"world\",endpoint=\"e\",instance=\"i\"}", "values": "0+1500x40" }),
        serde_json::json!({ "series": "weft_requests_total{direction=\"outbound\",service=\"hello\",endpoint=\"e\",instance=\"i\"}", "values": "0+1500x40" }),
    ]);
    let mut used = std::collections::BTreeSet::new();
    let mut exprs = Vec::new();
    for (rule, (_, value)) in rules.iter().zip(want) {
        let series_query = rule["seriesQuery"].as_str().unwrap();
        let series = series_query.split('{').next().unwrap();
        let expr = rule["metricsQuery"]
            .as_str()
            .unwrap()
            .replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", "service=\"world\"");
        assert!(!expr.contains("<<"), "{expr}");
        let both = format!("{series_query} {expr}");
        for (i, _) in both.match_indices("weft_") {
            let rest = &both[i..];
            let end = rest
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(rest.len());
            used.insert(rest[..end].to_string());
        }
        exprs.push(serde_json::json!({
            "expr": expr,
            "eval_time": "5m",
            "exp_samples": [{ "labels": "{service=\"world\"}", "value": value }],
        }));
    }
    let dir = weft_tests::TempDir::new("adapter");
    let file = dir.path("adapter-test.json");
    let test = serde_json::json!({
        "rule_files": [],
        "evaluation_interval": "15s",
        "tests": [{ "interval": "15s", "input_series": input, "promql_expr_test": exprs }],
    });
    std::fs::write(&file, test.to_string()).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .expect("promtool (the test command installs the prometheus package)");
    assert!(out.status.success(), "{}", said(&out));

    let mesh = weft_tests::mesh::Mesh::start().await;
    weft_tests::client::curl(&["-x", &mesh.proxy_flag(), "http://world/echo"]).await;
    let exported = weft_tests::proxy::metric_names(&mesh.a.metrics().await);
    for name in &used {
        assert!(
            exported.contains(name),
            "{name} is not exported; proxies export {exported:?}"
        );
    }
}
