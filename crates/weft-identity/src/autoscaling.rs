//! The certificates `weft install --autoscaling` makes for the dashboard's autoscaling
//! listeners: a CA of their own — not the mesh's, so nothing it signs can pass for a mesh
//! identity — that the API server (the APIService's `caBundle`) and KEDA (`caCert`) trust;
//! the dashboard's server certificate for its Service's names; and KEDA's operator's client
//! certificate. The CA's key is not kept: running the install again makes a new set.

use std::time::Duration;

use rcgen::ExtendedKeyUsagePurpose;

use crate::ca::Authority;
use crate::material::to_pem;
use crate::IdentityError;

/// The dashboard's Service, whose names the server certificate carries.
pub const DASHBOARD_SERVICE: &str = "weft-dashboard";
/// The common name of KEDA's client certificate, and the one name the scaler takes.
pub const KEDA_CLIENT_NAME: &str = "keda-operator";
/// The CA outlives the leaves it signs, so a leaf renewed under it stays trusted.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// As long as the mesh's issuer that the same install makes.
pub const LEAF_LIFETIME: Duration = crate::material::ISSUER_LIFETIME;

/// The set, as PEM.
pub struct AutoscalingCerts {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

/// The names the dashboard is reached by in `namespace`: the API server dials
/// `weft-dashboard.NS.svc`, KEDA the host of its trigger's `scalerAddress`.
pub fn server_names(namespace: &str) -> Vec<String> {
    let svc = DASHBOARD_SERVICE;
    vec![
        svc.to_string(),
        format!("{svc}.{namespace}"),
        format!("{svc}.{namespace}.svc"),
        format!("{svc}.{namespace}.svc.cluster.local"),
    ]
}

/// A new CA, the dashboard's server certificate for its Service in `namespace`, and KEDA's
/// client certificate.
pub fn autoscaling_certs(namespace: &str) -> Result<AutoscalingCerts, IdentityError> {
    let ca = Authority::new_root(&format!("weft autoscaling CA ({namespace})"), CA_LIFETIME)?;
    let names = server_names(namespace);
    let (server, server_key) = ca.sign_leaf(
        &names[2],
        &names,
        ExtendedKeyUsagePurpose::ServerAuth,
        LEAF_LIFETIME,
    )?;
    let (client, client_key) = ca.sign_leaf(
        KEDA_CLIENT_NAME,
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
        LEAF_LIFETIME,
    )?;
    Ok(AutoscalingCerts {
        ca: to_pem(ca.cert()),
        server_cert: to_pem(&server),
        server_key: server_key.serialize_pem(),
        client_cert: to_pem(&client),
        client_key: client_key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::server::danger::ClientCertVerifier;
    use rustls::RootCertStore;

    use super::*;
    use crate::callers::{common_name, Callers};
    use crate::material::certificates;
    use crate::tls::provider;

    fn one(pem: &str) -> CertificateDer<'static> {
        certificates(pem).unwrap().remove(0)
    }

    fn server_verifier(ca: &str) -> Arc<WebPkiServerVerifier> {
        let mut roots = RootCertStore::empty();
        roots.add(one(ca)).unwrap();
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap()
    }

    fn verify_server(certs: &AutoscalingCerts, cert: &str, name: &str) -> Result<(), String> {
        let name = ServerName::try_from(name.to_string()).unwrap();
        server_verifier(&certs.ca)
            .verify_server_cert(&one(cert), &[], &name, &[], UnixTime::now())
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn verify_client(certs: &AutoscalingCerts, cert: &str) -> Result<(), String> {
        let callers = Callers::new(&certs.ca, vec![KEDA_CLIENT_NAME.into()]).unwrap();
        callers
            .verify_client_cert(&one(cert), &[], UnixTime::now())
            .map(drop)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_server_certificate_verifies_against_the_ca_for_every_service_name() {
        let certs = autoscaling_certs("mesh-system").unwrap();
        for name in [
            "weft-dashboard",
            "weft-dashboard.mesh-system",
            "weft-dashboard.mesh-system.svc",
            "weft-dashboard.mesh-system.svc.cluster.local",
        ] {
            verify_server(&certs, &certs.server_cert, name).unwrap();
        }
        let wrong = verify_server(&certs, &certs.server_cert, "weft-dashboard.weft.svc");
        assert!(wrong.is_err(), "another namespace's name: {wrong:?}");
        // Another install's CA does not vouch for it.
        let other = autoscaling_certs("mesh-system").unwrap();
        assert!(verify_server(&other, &certs.server_cert, "weft-dashboard").is_err());
    }

    #[test]
    fn the_client_certificate_is_kedas_for_client_auth_only() {
        let certs = autoscaling_certs("weft").unwrap();
        verify_client(&certs, &certs.client_cert).unwrap();
        assert_eq!(
            common_name(&one(&certs.client_cert)).as_deref(),
            Some(KEDA_CLIENT_NAME)
        );
        // Each has the one usage it needs: the server's cannot log in, the client's cannot
        // serve.
        let server_as_client = verify_client(&certs, &certs.server_cert);
        assert!(server_as_client.is_err(), "{server_as_client:?}");
        let client_as_server = verify_server(&certs, &certs.client_cert, "keda-operator");
        assert!(client_as_server.is_err(), "{client_as_server:?}");
        let other = autoscaling_certs("weft").unwrap();
        assert!(verify_client(&other, &certs.client_cert).is_err());
    }

    #[test]
    fn the_dashboard_loads_the_pair_as_the_install_writes_it() {
        let certs = autoscaling_certs("weft").unwrap();
        let dir = std::env::temp_dir().join(format!(
            "weft-autoscaling-certs-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert, &certs.server_cert).unwrap();
        std::fs::write(&key, &certs.server_key).unwrap();
        let loaded = crate::edge::EdgeCert::load(&cert, &key);
        std::fs::remove_dir_all(&dir).unwrap();
        loaded.unwrap();
        assert!(certs.client_key.starts_with("-----BEGIN PRIVATE KEY-----"));
    }
}
