//! `weft install`: the Kubernetes manifests that run the mesh, rendered from templates
//! kept beside this file (plain YAML, checked by kubernetes-validate in CI).

use std::path::PathBuf;

use base64::Engine as _;
use weft_identity::autoscaling::{self as certs, AutoscalingCerts};
use weft_identity::material::{self, Material};
use weft_identity::TrustDomain;

const MESH: &str = include_str!("manifests/mesh.yaml");
const DEMO: &str = include_str!("manifests/demo.yaml");
const INGRESS: &str = include_str!("manifests/ingress.yaml");
const AUTOSCALING: &str = include_str!("manifests/autoscaling.yaml");

pub const DEFAULT_NAMESPACE: &str = "weft";
pub const DEFAULT_IMAGE: &str = concat!("weft:", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Debug)]
pub struct InstallOptions {
    pub namespace: String,
    pub image: String,
    pub with_demo: bool,
    /// Add the ingress: a Deployment behind a LoadBalancer Service, and its routes.
    pub ingress: bool,
    pub ca: CaSource,
    /// Proxies' inbounds take plaintext from peers too (a mesh moving to mutual TLS).
    pub allow_plaintext_peers: bool,
    /// The OTLP/gRPC collector (`HOST:PORT`) the proxies and the ingress send spans to.
    pub otlp: Option<String>,
    /// What the dashboard serves autoscalers.
    pub autoscaling: Autoscaling,
}

/// What the dashboard serves autoscalers (`weft install --autoscaling`; docs/autoscaling.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Autoscaling {
    /// Nothing.
    #[default]
    Off,
    /// The external metrics API, registered by an APIService with the RBAC an extension API
    /// server needs, and KEDA's external scaler.
    Full,
    /// KEDA's external scaler only: for clusters where another server (KEDA's own,
    /// prometheus-adapter) holds the external metrics API, which one server per cluster may.
    KedaOnly,
}

/// Where the mesh's CA (trust anchors and issuer) comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaSource {
    /// A new one, made now and put in the manifests.
    Generate,
    /// The files `weft identity init` wrote to this folder, put in the manifests.
    Dir(PathBuf),
    /// Neither: the cluster already holds the Secret and the ConfigMap (see docs/identity.md),
    /// so the manifests carry no key and render the same every time.
    External,
}

impl Default for InstallOptions {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_string(),
            image: DEFAULT_IMAGE.to_string(),
            with_demo: false,
            ingress: false,
            ca: CaSource::Generate,
            allow_plaintext_peers: false,
            otlp: None,
            autoscaling: Autoscaling::Off,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstallError {
    #[error("--namespace {0:?} is not a Kubernetes namespace name (lower-case letters, digits and '-', at most 63)")]
    Namespace(String),
    #[error("--image {0:?} is not an image reference")]
    Image(String),
    #[error("--otlp {0:?} is not HOST:PORT")]
    Otlp(String),
    #[error("the mesh's CA: {0}")]
    Ca(String),
    #[error("the autoscaling certificates: {0}")]
    AutoscalingCerts(String),
}

/// The manifests as one multi-document YAML stream.
pub fn render(opts: &InstallOptions) -> Result<String, InstallError> {
    let ns = &opts.namespace;
    let label_ok = !ns.is_empty()
        && ns.len() <= 63
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    if !label_ok {
        return Err(InstallError::Namespace(ns.clone()));
    }
    // Anything else could break out of the YAML scalar it is pasted into.
    let image_ok = !opts.image.is_empty()
        && opts.image.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/' | b':' | b'@')
        });
    if !image_ok {
        return Err(InstallError::Image(opts.image.clone()));
    }
    // Pasted into the manifests: a host name or address and a port, nothing else.
    let tracing = match &opts.otlp {
        None => String::new(),
        Some(otlp) => {
            let ok = otlp.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
                    && port.parse::<u16>().is_ok_and(|p| p != 0)
            });
            if !ok {
                return Err(InstallError::Otlp(otlp.clone()));
            }
            format!(
                "            # Spans to this OTLP collector (weft install --otlp; docs/tracing.md).\n            - name: WEFT_OTLP\n              value: \"{otlp}\"\n"
            )
        }
    };
    let identity = match &opts.ca {
        CaSource::External => {
            "# The mesh's CA is not in these manifests (weft install --external-ca): create the\n\
             # Secret weft-identity-issuer and the ConfigMap weft-identity-trust-anchors in\n\
             # {{NAMESPACE}} first (docs/identity.md: weft identity init, kubectl create ...).\n"
                .to_string()
        }
        CaSource::Generate => {
            let td = TrustDomain::new(TRUST_DOMAIN).map_err(|e| InstallError::Ca(e.to_string()))?;
            let made = Material::generate(&td).map_err(|e| InstallError::Ca(e.to_string()))?;
            let anchors: String = made.anchors.iter().map(material::to_pem).collect();
            identity_objects(
                &anchors,
                &material::to_pem(made.issuer.cert()),
                &made.issuer.key_pem(),
            )
        }
        CaSource::Dir(dir) => {
            let td = TrustDomain::new(TRUST_DOMAIN).map_err(|e| InstallError::Ca(e.to_string()))?;
            // Checked as the control plane will check it, so a bad folder fails here.
            material::read_ca(dir, &td, std::time::Duration::from_secs(3600))
                .map_err(|e| InstallError::Ca(e.to_string()))?;
            let read = |f: &str| {
                std::fs::read_to_string(dir.join(f))
                    .map_err(|e| InstallError::Ca(format!("{}: {e}", dir.join(f).display())))
            };
            identity_objects(
                &read(material::ANCHORS_FILE)?,
                &read(material::ISSUER_FILE)?,
                &read(material::ISSUER_KEY_FILE)?,
            )
        }
    };
    let (metrics_api, keda) = match opts.autoscaling {
        Autoscaling::Off => (false, false),
        Autoscaling::Full => (true, true),
        Autoscaling::KedaOnly => (false, true),
    };
    let tls = AutoscalingTls::render(&opts.ca, ns, opts.autoscaling)?;
    let mut out = MESH
        .replace("{{IDENTITY}}", &identity)
        .replace("{{AUTOSCALING_TLS}}", &tls.dashboard_secret)
        .replace(
            "{{ALLOW_PLAINTEXT_PEERS}}",
            if opts.allow_plaintext_peers {
                "true"
            } else {
                "false"
            },
        );
    let pick = |(api, for_keda): (&str, &str)| {
        format!(
            "{}{}",
            if metrics_api { api } else { "" },
            if keda { for_keda } else { "" }
        )
    };
    let either = |lines: &'static str| if metrics_api || keda { lines } else { "" };
    out = out
        .replace("{{AUTOSCALING_ARGS}}", &pick(DASHBOARD_ARGS))
        .replace("{{AUTOSCALING_PORTS}}", &pick(DASHBOARD_PORTS))
        .replace("{{AUTOSCALING_SERVICE_PORTS}}", &pick(SERVICE_PORTS))
        .replace("{{AUTOSCALING_POLICY}}", &pick(POLICY_RULES))
        .replace("{{AUTOSCALING_MOUNTS}}", either(DASHBOARD_TLS_MOUNT))
        .replace("{{AUTOSCALING_VOLUMES}}", either(DASHBOARD_TLS_VOLUME))
        // The external metrics API reads the aggregator's CA from the Kubernetes API: the
        // dashboard's pod then has its account's token.
        .replace(
            "{{DASHBOARD_API_TOKEN}}",
            if metrics_api { "true" } else { "false" },
        );
    if metrics_api {
        out.push_str(
            &AUTOSCALING
                .replace("{{APISERVICE_ANNOTATIONS}}", &tls.apiservice_annotations)
                .replace("{{APISERVICE_CA_BUNDLE}}", &tls.apiservice_ca_bundle),
        );
    }
    out.push_str(&tls.keda_objects);
    if opts.with_demo {
        out.push_str(DEMO);
    }
    if opts.ingress {
        out.push_str(INGRESS);
    }
    Ok(out
        .replace("{{NAMESPACE}}", ns)
        .replace("{{IMAGE}}", &opts.image)
        .replace("{{TRACING}}", &tracing)
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION")))
}

// What `--autoscaling` adds to the dashboard's Deployment, Service and NetworkPolicy in
// mesh.yaml: each a pair of (the external metrics API's lines, the KEDA scaler's lines).
const DASHBOARD_ARGS: (&str, &str) = (
    "            # The external metrics API over TLS, with the certificate of the Secret
            # weft-dashboard-tls (the APIService's CA vouches for it).
            - --metrics-api-listen
            - 0.0.0.0:6443
            - --metrics-api-tls-cert
            - /var/run/weft/dashboard-tls/tls.crt
            - --metrics-api-tls-key
            - /var/run/weft/dashboard-tls/tls.key
            # Only the aggregator: by the client CA and names in the ConfigMap
            # kube-system/extension-apiserver-authentication.
            - --metrics-api-kube-auth
",
    "            # KEDA's external scaler (gRPC) over mutual TLS: the same certificate, and only
            # KEDA's operator, by its client certificate from the Secret's CA.
            - --keda-listen
            - 0.0.0.0:8087
            - --keda-tls-cert
            - /var/run/weft/dashboard-tls/tls.crt
            - --keda-tls-key
            - /var/run/weft/dashboard-tls/tls.key
            - --keda-client-ca
            - /var/run/weft/dashboard-tls/ca.crt
            - --keda-allowed-names
            - keda-operator
",
);
// The Secret weft-dashboard-tls in the dashboard's pod, for either listener (read again
// every minute, so a renewed certificate is taken without a restart).
const DASHBOARD_TLS_MOUNT: &str = "            - name: dashboard-tls
              mountPath: /var/run/weft/dashboard-tls
              readOnly: true
";
const DASHBOARD_TLS_VOLUME: &str = "        - name: dashboard-tls
          secret:
            secretName: weft-dashboard-tls
";
const DASHBOARD_PORTS: (&str, &str) = (
    "            - name: metrics-api
              containerPort: 6443
              protocol: TCP
",
    "            - name: keda
              containerPort: 8087
              protocol: TCP
",
);
const SERVICE_PORTS: (&str, &str) = (
    "    # Where the APIService sends the API server's external metrics requests.
    - name: metrics-api
      port: 443
      targetPort: metrics-api
      protocol: TCP
",
    "    - name: keda
      port: 8087
      targetPort: keda
      protocol: TCP
",
);
const POLICY_RULES: (&str, &str) = (
    "    # The API server is no pod a policy could pick out: the external metrics API (read-only
    # figures) is open to any source.
    - ports:
        - port: metrics-api
          protocol: TCP
",
    "    # KEDA's operator, in the namespace KEDA installs to (change it if yours runs elsewhere).
    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: keda
      ports:
        - port: keda
          protocol: TCP
",
);

/// The Secret with the dashboard's certificate, its key and the CA that signed it.
pub const DASHBOARD_TLS_SECRET: &str = "weft-dashboard-tls";
/// The Secret with KEDA's client certificate, in [`KEDA_NAMESPACE`].
pub const KEDA_CLIENT_SECRET: &str = "weft-keda-client";
/// Where KEDA runs: a ClusterTriggerAuthentication reads its Secrets from there.
pub const KEDA_NAMESPACE: &str = "keda";
/// The ClusterTriggerAuthentication a ScaledObject's trigger names.
pub const KEDA_TRIGGER_AUTH: &str = "weft-dashboard";

/// What `--autoscaling` renders for TLS: the dashboard's Secret (or, with `--external-ca`, a
/// comment saying it must exist), the APIService's trust in it, and KEDA's side.
#[derive(Default)]
struct AutoscalingTls {
    /// Before the Deployment that mounts it, after the Namespace.
    dashboard_secret: String,
    apiservice_annotations: String,
    apiservice_ca_bundle: String,
    /// KEDA's client Secret and the ClusterTriggerAuthentication, with `--autoscaling=keda`.
    keda_objects: String,
}

impl AutoscalingTls {
    fn render(ca: &CaSource, ns: &str, autoscaling: Autoscaling) -> Result<Self, InstallError> {
        let (metrics_api, for_keda) = match autoscaling {
            Autoscaling::Off => return Ok(Self::default()),
            Autoscaling::Full => (true, false),
            // KEDA's objects only where KEDA runs: without it, its CRD and namespace are
            // missing and `kubectl apply` would fail on them; with plain --autoscaling, KEDA
            // cannot run anyway (the APIService is the dashboard's).
            Autoscaling::KedaOnly => (false, true),
        };
        let mut out = Self::default();
        if *ca == CaSource::External {
            out.dashboard_secret = format!(
                "# The dashboard's certificate is not in these manifests (weft install --external-ca):\n\
                 # the Secret {DASHBOARD_TLS_SECRET} in {{{{NAMESPACE}}}} must exist (ca.crt, tls.crt, tls.key,\n\
                 # for the names weft-dashboard.{{{{NAMESPACE}}}}.svc...; docs/autoscaling.md: cert-manager).\n"
            );
            if metrics_api {
                out.apiservice_annotations = format!(
                    "  annotations:\n\
                     \x20   # cert-manager's CA injector sets caBundle to the CA of the Certificate\n\
                     \x20   # {DASHBOARD_TLS_SECRET}.\n\
                     \x20   cert-manager.io/inject-ca-from: {{{{NAMESPACE}}}}/{DASHBOARD_TLS_SECRET}\n"
                );
            }
            if for_keda {
                out.keda_objects = format!(
                    "# KEDA's client certificate is not in these manifests (weft install --external-ca):\n\
                     # the Secret {KEDA_CLIENT_SECRET} in {KEDA_NAMESPACE} must exist (ca.crt, tls.crt, tls.key; common\n\
                     # name {KEDA_CLIENT}, from the CA of {DASHBOARD_TLS_SECRET}; docs/autoscaling.md).\n{}",
                    trigger_authentication(),
                    KEDA_CLIENT = certs::KEDA_CLIENT_NAME,
                );
            }
            return Ok(out);
        }
        let made = certs::autoscaling_certs(ns)
            .map_err(|e| InstallError::AutoscalingCerts(e.to_string()))?;
        out.dashboard_secret = tls_secret(
            "# The dashboard's certificate for the external metrics API and KEDA's scaler, and\n\
             # the CA the API server and KEDA check it with: made by this install, valid for a\n\
             # year; the CA's key was not kept (docs/autoscaling.md).\n",
            DASHBOARD_TLS_SECRET,
            "{{NAMESPACE}}",
            &made,
            (&made.server_cert, &made.server_key),
        );
        if metrics_api {
            let bundle = base64::engine::general_purpose::STANDARD.encode(&made.ca);
            out.apiservice_ca_bundle = format!("  caBundle: {bundle}\n");
        }
        if for_keda {
            out.keda_objects = tls_secret(
                "# KEDA's operator's client certificate for the dashboard's scaler, where KEDA runs:\n\
                 # a ClusterTriggerAuthentication reads Secrets from KEDA's namespace.\n",
                KEDA_CLIENT_SECRET,
                KEDA_NAMESPACE,
                &made,
                (&made.client_cert, &made.client_key),
            ) + &trigger_authentication();
        }
        Ok(out)
    }
}

/// A `kubernetes.io/tls` Secret holding `pair` and the CA.
fn tls_secret(
    comment: &str,
    name: &str,
    namespace: &str,
    made: &AutoscalingCerts,
    (cert, key): (&str, &str),
) -> String {
    format!(
        "---\n{comment}apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n\
         \x20 labels:\n    app.kubernetes.io/name: weft-dashboard\n    app.kubernetes.io/part-of: weft\n\
         type: kubernetes.io/tls\nstringData:\n  ca.crt: |\n{}  tls.crt: |\n{}  tls.key: |\n{}",
        pem_block(&made.ca),
        pem_block(cert),
        pem_block(key),
    )
}

/// What a ScaledObject's trigger names to reach the scaler over mutual TLS: KEDA's
/// external scaler takes `caCert`, `tlsClientCert` and `tlsClientKey` as PEM.
fn trigger_authentication() -> String {
    let refs: String = [
        ("caCert", "ca.crt"),
        ("tlsClientCert", "tls.crt"),
        ("tlsClientKey", "tls.key"),
    ]
    .iter()
    .map(|(parameter, key)| {
        format!(
            "    - parameter: {parameter}\n      name: {KEDA_CLIENT_SECRET}\n      key: {key}\n"
        )
    })
    .collect();
    format!(
        "---\n# For ScaledObjects asking the dashboard's scaler: their external trigger names\n\
         # authenticationRef: {{name: {KEDA_TRIGGER_AUTH}, kind: ClusterTriggerAuthentication}}.\n\
         apiVersion: keda.sh/v1alpha1\nkind: ClusterTriggerAuthentication\nmetadata:\n  name: {KEDA_TRIGGER_AUTH}\n\
         \x20 labels:\n    app.kubernetes.io/name: weft-dashboard\n    app.kubernetes.io/part-of: weft\n\
         spec:\n  secretTargetRef:\n{refs}"
    )
}

/// A PEM text as a YAML block scalar's lines.
fn pem_block(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

/// The trust domain `weft install` sets up, and every component's default.
const TRUST_DOMAIN: &str = "cluster.local";

/// The Secret the control plane reads its CA from, and the ConfigMap of anchors proxies
/// check the control plane against before their first leaf.
fn identity_objects(anchors: &str, issuer: &str, key: &str) -> String {
    let block = pem_block;
    format!(
        "---\n# The mesh's CA. Rotate it by updating this Secret and the ConfigMap below\n\
         # (docs/identity.md); nothing restarts.\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: {ISSUER_SECRET}\n  namespace: {{{{NAMESPACE}}}}\n\
         \x20 labels:\n    app.kubernetes.io/name: weft-control\n    app.kubernetes.io/part-of: weft\n\
         type: Opaque\nstringData:\n  {}: |\n{}  {}: |\n{}  {}: |\n{}\
         ---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {ANCHORS_CONFIGMAP}\n  namespace: {{{{NAMESPACE}}}}\n\
         \x20 labels:\n    app.kubernetes.io/name: weft-proxy\n    app.kubernetes.io/part-of: weft\n\
         data:\n  {}: |\n{}",
        material::ANCHORS_FILE,
        block(anchors),
        material::ISSUER_FILE,
        block(issuer),
        material::ISSUER_KEY_FILE,
        block(key),
        material::ANCHORS_FILE,
        block(anchors),
    )
}

pub const ISSUER_SECRET: &str = "weft-identity-issuer";
pub const ANCHORS_CONFIGMAP: &str = "weft-identity-trust-anchors";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        let opts = InstallOptions {
            with_demo: true,
            ..Default::default()
        };
        let text = render(&opts).unwrap();
        assert!(!text.contains("{{"), "{text}");
        assert!(text.contains("namespace: weft\n"));
        assert!(text.contains("kind: DaemonSet"));
        assert!(text.contains("name: world"));
    }

    #[test]
    fn the_ingress_config_it_renders_is_one_the_ingress_takes() {
        let opts = InstallOptions {
            ingress: true,
            ..Default::default()
        };
        let text = render(&opts).unwrap();
        let start = text.find("  ingress.toml: |\n").unwrap() + "  ingress.toml: |\n".len();
        let toml: String = text[start..]
            .lines()
            .take_while(|l| l.is_empty() || l.starts_with("    "))
            .map(|l| format!("{}\n", l.trim_start()))
            .collect();
        let config: weft_core::config::ProxyConfig = toml::from_str(&toml).unwrap();
        config
            .validate(std::path::Path::new("ingress.toml"))
            .unwrap();
        assert!(config.ingress.listen.is_some());
        assert!(text.contains("type: LoadBalancer"));
    }

    #[test]
    fn proxies_carry_what_the_control_plane_finds_them_by() {
        let text = render(&InstallOptions::default()).unwrap();
        let (key, value) = crate::cluster::PROXY_LABEL;
        assert!(text.contains(&format!("{key}: {value}")));
        assert!(text.contains(&format!(
            "- name: {}\n              containerPort: 4141\n              hostPort: 4141",
            crate::cluster::INBOUND_PORT_NAME
        )));
    }

    #[test]
    fn autoscaling_opens_the_dashboards_listeners_and_only_full_takes_the_api() {
        let render_with = |autoscaling| {
            render(&InstallOptions {
                ca: CaSource::External,
                autoscaling,
                ..Default::default()
            })
            .unwrap()
        };
        let off = render_with(Autoscaling::Off);
        let full = render_with(Autoscaling::Full);
        let keda = render_with(Autoscaling::KedaOnly);
        assert!(
            !off.contains("metrics-api") && !off.contains("keda"),
            "{off}"
        );
        for text in [&full, &keda] {
            assert!(!text.contains("{{"), "{text}");
            assert!(text.contains("            - --keda-listen\n            - 0.0.0.0:8087\n"));
            assert!(text.contains("    - name: keda\n      port: 8087\n      targetPort: keda\n"));
            assert!(text.contains("kubernetes.io/metadata.name: keda"));
        }
        assert!(full.contains("            - --metrics-api-listen\n            - 0.0.0.0:6443\n"));
        assert!(full
            .contains("    - name: metrics-api\n      port: 443\n      targetPort: metrics-api\n"));
        assert!(full.contains("kind: APIService") && full.contains("--metrics-api-kube-auth"));
        assert!(
            !keda.contains("metrics-api") && !keda.contains("kind: APIService"),
            "{keda}"
        );
    }

    #[test]
    fn autoscaling_certificates_are_made_unless_the_cluster_holds_them() {
        let render_with = |ca, autoscaling| {
            render(&InstallOptions {
                ca,
                autoscaling,
                ..Default::default()
            })
            .unwrap()
        };
        let full = render_with(CaSource::Generate, Autoscaling::Full);
        let keda = render_with(CaSource::Generate, Autoscaling::KedaOnly);
        for text in [&full, &keda] {
            assert!(!text.contains("{{"), "{text}");
            assert!(text.contains(&format!(
                "  name: {DASHBOARD_TLS_SECRET}\n  namespace: weft\n"
            )));
            assert!(text.contains("secretName: weft-dashboard-tls"));
            assert!(!text.contains("insecureSkipTLSVerify"));
        }
        assert!(full.contains("  caBundle: LS0t"), "{full}");
        assert!(!full.contains("kind: ClusterTriggerAuthentication"));
        assert!(keda.contains(&format!(
            "  name: {KEDA_CLIENT_SECRET}\n  namespace: keda\n"
        )));
        assert!(keda.contains("kind: ClusterTriggerAuthentication"));

        let external = render_with(CaSource::External, Autoscaling::Full);
        assert!(!external.contains("PRIVATE KEY") && !external.contains("  caBundle:"));
        assert!(external.contains("cert-manager.io/inject-ca-from: weft/weft-dashboard-tls\n"));
        let off = render_with(CaSource::External, Autoscaling::Off);
        assert!(!off.contains("dashboard-tls"), "{off}");
    }

    #[test]
    fn names_that_would_break_the_yaml_are_refused() {
        let bad_ns = InstallOptions {
            namespace: "Weft\nkind: x".into(),
            ..Default::default()
        };
        assert!(matches!(render(&bad_ns), Err(InstallError::Namespace(_))));
        let bad_image = InstallOptions {
            image: "weft:1 # x".into(),
            ..Default::default()
        };
        assert!(matches!(render(&bad_image), Err(InstallError::Image(_))));
        let bad_otlp = InstallOptions {
            otlp: Some("collector:4317\"\n  x".into()),
            ..Default::default()
        };
        assert!(matches!(render(&bad_otlp), Err(InstallError::Otlp(_))));
    }

    #[test]
    fn with_otlp_every_proxy_and_the_ingress_export_spans_there() {
        let opts = InstallOptions {
            ingress: true,
            otlp: Some("otel-collector.observability:4317".into()),
            ..Default::default()
        };
        let text = render(&opts).unwrap();
        let env = "- name: WEFT_OTLP\n              value: \"otel-collector.observability:4317\"";
        assert_eq!(text.matches(env).count(), 2, "{text}");
        assert!(!render(&InstallOptions::default())
            .unwrap()
            .contains("WEFT_OTLP"));
    }
}
