//! `weft install`: the Kubernetes manifests that run the mesh, rendered from templates
//! kept beside this file (plain YAML, checked by kubernetes-validate in CI).

const MESH: &str = include_str!("manifests/mesh.yaml");
const DEMO: &str = include_str!("manifests/demo.yaml");

pub const DEFAULT_NAMESPACE: &str = "weft";
pub const DEFAULT_IMAGE: &str = concat!("weft:", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Debug)]
pub struct InstallOptions {
    pub namespace: String,
    pub image: String,
    pub with_demo: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_string(),
            image: DEFAULT_IMAGE.to_string(),
            with_demo: false,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstallError {
    #[error("--namespace {0:?} is not a Kubernetes namespace name (lower-case letters, digits and '-', at most 63)")]
    Namespace(String),
    #[error("--image {0:?} is not an image reference")]
    Image(String),
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
    let mut out = MESH.to_string();
    if opts.with_demo {
        out.push_str(DEMO);
    }
    Ok(out
        .replace("{{NAMESPACE}}", ns)
        .replace("{{IMAGE}}", &opts.image)
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION")))
}

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
    }
}
