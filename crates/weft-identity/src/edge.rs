//! TLS for callers outside the mesh — at the ingress, and at the dashboard's external
//! metrics API and KEDA scaler, which Kubernetes' API server and KEDA's operator call: a
//! certificate and key from files (a cert-manager Secret, say), swapped in whole when the
//! files change, and a client certificate asked for only where [`Callers`] are given. A
//! pair that does not load leaves the last good one in place.
//! Without files, a self-signed certificate made at start (callers then skip
//! verification, as an APIService with `insecureSkipTLSVerify` does).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::callers::Callers;
use crate::material;
use crate::tls::{provider, ALPN_H2, ALPN_HTTP1};

/// The certificate the ingress presents, as last loaded from its two files.
pub struct EdgeCert {
    /// Empty for a self-signed certificate: there is nothing to read again.
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for EdgeCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl EdgeCert {
    /// Loads the pair; the error names the file at fault.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, String> {
        let certified = read_pair(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: ArcSwap::from(certified),
        }))
    }

    /// A certificate for `names` (DNS names), signed by its own key, made now.
    pub fn self_signed(names: Vec<String>) -> Result<Arc<Self>, String> {
        let made = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
        let key_der = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let signing = provider()
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(Self {
            cert: PathBuf::new(),
            key: PathBuf::new(),
            current: ArcSwap::from_pointee(CertifiedKey::new(
                vec![made.cert.der().clone()],
                signing,
            )),
        }))
    }

    /// Reads the files again: the new pair from the next handshake on, or, when it does not
    /// load (a half-written file, a key that is not the certificate's), the old one kept.
    /// A self-signed certificate has no files and stays.
    pub fn reload(&self) -> Result<(), String> {
        if self.cert.as_os_str().is_empty() {
            return Ok(());
        }
        let certified = read_pair(&self.cert, &self.key)?;
        self.current.store(certified);
        Ok(())
    }

    pub fn files(&self) -> [&Path; 2] {
        [&self.cert, &self.key]
    }

    /// The TLS a listener serves outside callers with: TLS 1.3, ALPN `h2` and `http/1.1`.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, String> {
        self.config_for(&[ALPN_H2, ALPN_HTTP1], None)
    }

    /// The same for a listener that speaks HTTP/1.1 alone (a Go client, the API server,
    /// offers `h2` first and would get it otherwise), taking only `callers` when given.
    pub fn http1_server_config(
        self: &Arc<Self>,
        callers: Option<Arc<Callers>>,
    ) -> Result<Arc<ServerConfig>, String> {
        self.config_for(&[ALPN_HTTP1], callers)
    }

    /// The same for a gRPC server (KEDA's scaler): ALPN `h2` alone, as gRPC clients (Go's
    /// among them) insist on; taking only `callers` when given.
    pub fn grpc_server_config(
        self: &Arc<Self>,
        callers: Option<Arc<Callers>>,
    ) -> Result<Arc<ServerConfig>, String> {
        self.config_for(&[ALPN_H2], callers)
    }

    fn config_for(
        self: &Arc<Self>,
        alpn: &[&[u8]],
        callers: Option<Arc<Callers>>,
    ) -> Result<Arc<ServerConfig>, String> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?;
        let mut config = match callers {
            Some(callers) => builder.with_client_cert_verifier(callers),
            None => builder.with_no_client_auth(),
        }
        .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for EdgeCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let chain =
        material::certificates(&read(cert)?).map_err(|e| format!("{}: {e}", cert.display()))?;
    let key_der = PrivateKeyDer::from_pem_slice(read(key)?.as_bytes())
        .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?;
    let signing = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "{} is not the key of {}: {e}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(Arc::new(certified))
}
