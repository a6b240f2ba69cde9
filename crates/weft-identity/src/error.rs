//! What can go wrong with identities, certificates and signing requests.

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    BadName(String),
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{what} is not valid PEM: {cause}")]
    Pem { what: &'static str, cause: String },
    #[error("the system's random source failed")]
    Random,
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why the CA refused to sign a request. Each is a client's mistake or an attack, named so
/// the caller can be told.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertifyError {
    #[error("the signing request is {0} bytes, more than the {max} allowed", max = crate::ca::MAX_CSR_BYTES)]
    TooLarge(usize),
    #[error("the signing request does not parse or its signature is wrong")]
    Malformed,
    #[error("the signing request asks for a CA certificate")]
    AsksForCa,
    #[error("the signing request names {asked:?}, but the caller proved {proven}")]
    WrongIdentity { asked: Vec<String>, proven: String },
    #[error("signing failed: {0}")]
    Sign(String),
}
