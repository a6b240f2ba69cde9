//! Whom a proxy accepts: a peer whose chain ends at one of the mesh's trust anchors and
//! whose certificate names a weft identity in the mesh's trust domain — and, where the
//! caller knows whom it dials, exactly that identity. Anchors can be replaced while
//! connections run (rotation): each handshake reads the bundle as it is then.

use std::fmt;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use webpki::{EndEntityCert, KeyUsage};

use crate::error::IdentityError;
use crate::id::{Identity, TrustDomain};

/// Why a peer was refused, as the log and the refusal counter name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Expired,
    NotYetValid,
    /// Its chain ends at no anchor of ours: another CA's.
    UnknownIssuer,
    /// A certificate that vouches for itself.
    SelfSigned,
    /// A valid chain, but not a weft identity of our trust domain.
    WrongTrustDomain,
    /// A mesh identity, but not the one dialled.
    WrongIdentity,
    NoCertificate,
    Malformed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::UnknownIssuer => "unknown_issuer",
            Self::SelfSigned => "self_signed",
            Self::WrongTrustDomain => "wrong_trust_domain",
            Self::WrongIdentity => "wrong_identity",
            Self::NoCertificate => "no_certificate",
            Self::Malformed => "malformed",
        }
    }

    fn error(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(match self {
            Self::Expired => CertificateError::Expired,
            Self::NotYetValid => CertificateError::NotValidYet,
            Self::UnknownIssuer | Self::SelfSigned => CertificateError::UnknownIssuer,
            Self::WrongTrustDomain | Self::WrongIdentity => CertificateError::NotValidForName,
            Self::NoCertificate | Self::Malformed => CertificateError::BadEncoding,
        })
    }
}

/// Told of every refused peer: the proxy counts them.
pub type OnRefused = Arc<dyn Fn(Refusal) + Send + Sync>;

/// Whom a handshake must find on the other side.
#[derive(Clone, Copy, Debug)]
pub enum Wanted<'a> {
    /// Exactly this identity: the proxy on the node dialled.
    Exactly(&'a Identity),
    /// A proxy that runs as this one does (trust domain, namespace, account), on any node.
    PeerOf(&'a Identity),
    /// As [`Wanted::PeerOf`], or exactly one of these (the ingress, beside the proxies).
    PeerOfOr(&'a Identity, &'a [Identity]),
}

impl fmt::Display for Wanted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exactly(id) => write!(f, "{id}"),
            Self::PeerOf(own) => write!(f, "a proxy on any node, as {own}"),
            Self::PeerOfOr(own, also) => {
                write!(f, "a proxy on any node, as {own}")?;
                also.iter().try_for_each(|id| write!(f, ", or {id}"))
            }
        }
    }
}

/// The anchors a proxy trusts, replaceable while it runs.
pub struct TrustBundle {
    td: TrustDomain,
    anchors: ArcSwap<Vec<CertificateDer<'static>>>,
    algs: WebPkiSupportedAlgorithms,
    on_refused: OnceLock<OnRefused>,
}

impl fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustBundle")
            .field("trust_domain", &self.td)
            .field("anchors", &self.anchors.load().len())
            .finish()
    }
}

impl TrustBundle {
    pub fn new(
        td: TrustDomain,
        anchors: Vec<CertificateDer<'static>>,
        algs: WebPkiSupportedAlgorithms,
    ) -> Result<Self, IdentityError> {
        check_anchors(&anchors)?;
        Ok(Self {
            td,
            anchors: ArcSwap::from_pointee(anchors),
            algs,
            on_refused: OnceLock::new(),
        })
    }

    /// Tells `f` of every refused peer from now on (the first caller's `f` stays).
    pub fn on_refused(&self, f: OnRefused) {
        let _ = self.on_refused.set(f);
    }

    /// Trusts `anchors` from the next handshake on.
    pub fn replace(&self, anchors: Vec<CertificateDer<'static>>) -> Result<(), IdentityError> {
        check_anchors(&anchors)?;
        self.anchors.store(Arc::new(anchors));
        Ok(())
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.td
    }

    /// The anchors trusted now.
    pub fn anchors(&self) -> Arc<Vec<CertificateDer<'static>>> {
        self.anchors.load_full()
    }

    /// Logs and counts a refusal, once per refused peer.
    fn refuse(&self, why: Refusal, wanted: &dyn fmt::Display) -> Refusal {
        tracing::warn!(reason = why.as_str(), %wanted, "refused a peer's certificate");
        if let Some(f) = self.on_refused.get() {
            f(why);
        }
        why
    }

    /// The peer's identity when its chain is good and it is who `wanted` says.
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: KeyUsage,
        wanted: Wanted<'_>,
    ) -> Result<Identity, Refusal> {
        self.check(end_entity, intermediates, now, usage, wanted)
            .map_err(|why| self.refuse(why, &wanted))
    }

    pub(crate) fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: KeyUsage,
        wanted: Wanted<'_>,
    ) -> Result<Identity, Refusal> {
        let ders = self.anchors.load();
        let anchors: Vec<_> = ders
            .iter()
            .filter_map(|a| webpki::anchor_from_trusted_cert(a).ok())
            .collect();
        let cert = EndEntityCert::try_from(end_entity).map_err(|_| Refusal::Malformed)?;
        cert.verify_for_usage(
            self.algs.all,
            &anchors,
            intermediates,
            now,
            usage,
            None,
            None,
        )
        .map_err(|e| match e {
            webpki::Error::CertExpired { .. } => Refusal::Expired,
            webpki::Error::CertNotValidYet { .. } => Refusal::NotYetValid,
            _ if self_issued(end_entity) => Refusal::SelfSigned,
            // A chain whose names match our anchor but whose signatures do not is another
            // CA's that took the same names (every weft CA names itself alike).
            webpki::Error::UnknownIssuer
            | webpki::Error::InvalidSignatureForPublicKey
            | webpki::Error::CaUsedAsEndEntity => Refusal::UnknownIssuer,
            _ => Refusal::Malformed,
        })?;
        let id = peer_identity(end_entity).ok_or(Refusal::WrongTrustDomain)?;
        if id.trust_domain() != self.td.as_str() {
            return Err(Refusal::WrongTrustDomain);
        }
        let fits = match wanted {
            Wanted::Exactly(e) => *e == id,
            Wanted::PeerOf(own) => own.is_peer(&id),
            Wanted::PeerOfOr(own, also) => own.is_peer(&id) || also.contains(&id),
        };
        if !fits {
            return Err(Refusal::WrongIdentity);
        }
        Ok(id)
    }
}

fn check_anchors(anchors: &[CertificateDer<'_>]) -> Result<(), IdentityError> {
    if anchors.is_empty() {
        return Err(IdentityError::BadName(
            "a trust bundle needs an anchor".into(),
        ));
    }
    for a in anchors {
        webpki::anchor_from_trusted_cert(a)
            .map_err(|e| IdentityError::BadName(format!("a trust anchor does not parse: {e}")))?;
    }
    Ok(())
}

/// Whether a certificate names itself as its issuer.
fn self_issued(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert)
        .is_ok_and(|(_, c)| c.subject().as_raw() == c.issuer().as_raw())
}

/// The weft identity a certificate names in its one URI SAN.
pub fn peer_identity(cert: &CertificateDer<'_>) -> Option<Identity> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(u) => Some(*u),
        _ => None,
    });
    let uri = uris.next()?;
    if uris.next().is_some() {
        return None;
    }
    Identity::parse(uri).ok()
}

/// The client side's check of the proxy it dialled. Mesh certificates carry no DNS name: a
/// DNS server name is read as the node dialled, whose proxy's identity (ours, on that node)
/// the peer must have; an address asks for a proxy of ours on any node.
#[derive(Debug)]
pub struct ServerVerifier {
    bundle: Arc<TrustBundle>,
    own: Identity,
    /// Set when the server is no proxy but a workload of known identity (the control plane).
    exactly: Option<Identity>,
}

impl ServerVerifier {
    /// A check that the server is a proxy: the one on the node dialled, when a node is
    /// named. `own` is the dialler's identity; a workload's (the ingress) dials node proxies.
    pub fn new(bundle: Arc<TrustBundle>, own: Identity) -> Self {
        Self {
            bundle,
            own: own.proxies(),
            exactly: None,
        }
    }

    /// A check that the server is `expected`, whatever name was dialled.
    pub fn exactly(bundle: Arc<TrustBundle>, own: Identity, expected: Identity) -> Self {
        Self {
            bundle,
            own,
            exactly: Some(expected),
        }
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let dialled = match server_name {
            _ if self.exactly.is_some() => self.exactly.clone(),
            ServerName::DnsName(node) => Some(self.own.on_node(node.as_ref()).map_err(|_| {
                let name = format!("a proxy on {:?}", node.as_ref());
                self.bundle.refuse(Refusal::WrongIdentity, &name).error()
            })?),
            _ => None,
        };
        let wanted = match &dialled {
            Some(id) => Wanted::Exactly(id),
            None => Wanted::PeerOf(&self.own),
        };
        self.bundle
            .verify(
                end_entity,
                intermediates,
                now,
                KeyUsage::server_auth(),
                wanted,
            )
            .map(|_| ServerCertVerified::assertion())
            .map_err(Refusal::error)
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.bundle.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.bundle.algs.supported_schemes()
    }
}

/// The mesh speaks TLS 1.3 only; rustls never asks for a TLS 1.2 signature.
fn no_tls12() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered)
}

/// The server side's check of a connecting proxy: a certificate is required, and it must
/// name a proxy of ours (same trust domain, namespace and account) on some node, or the
/// ingress or the dashboard of that namespace (the proxy lets the dashboard only tap).
#[derive(Debug)]
pub struct ClientVerifier {
    bundle: Arc<TrustBundle>,
    own: Identity,
    /// Clients taken beside the proxies: the ingress and the dashboard of the same namespace.
    also: Vec<Identity>,
    mandatory: bool,
}

impl ClientVerifier {
    pub fn new(bundle: Arc<TrustBundle>, own: Identity) -> Self {
        let own = own.proxies();
        Self {
            also: [crate::INGRESS_ACCOUNT, crate::DASHBOARD_ACCOUNT]
                .into_iter()
                .filter_map(|sa| own.sibling(sa).ok())
                .collect(),
            bundle,
            own,
            mandatory: true,
        }
    }

    /// The control plane's check: a client without a certificate is let in (a proxy asking
    /// for its first), one with a certificate must be a proxy like `peers_of` on some node,
    /// or the ingress of its namespace.
    pub fn optional(bundle: Arc<TrustBundle>, peers_of: Identity) -> Self {
        Self {
            also: peers_of
                .sibling(crate::INGRESS_ACCOUNT)
                .into_iter()
                .collect(),
            bundle,
            own: peers_of,
            mandatory: false,
        }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.bundle
            .verify(
                end_entity,
                intermediates,
                now,
                KeyUsage::client_auth(),
                Wanted::PeerOfOr(&self.own, &self.also),
            )
            .map(|_| ClientCertVerified::assertion())
            .map_err(Refusal::error)
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.bundle.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.bundle.algs.supported_schemes()
    }
}
