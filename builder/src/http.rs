//! HTTP to registries' sparse indexes, trusting what the host trusts.
//!
//! cargo and git verify TLS against the system's certificates; so does docbuild, so
//! that an index behind a company's own certificate authority (or a TLS-inspecting
//! proxy the host trusts) answers docbuild as it answers cargo. Without a system
//! bundle, Mozilla's roots are used.

use std::sync::OnceLock;
use std::time::Duration;

use ureq::tls::{PemItem, RootCerts, TlsConfig, parse_pem};

/// Where systems keep their bundle of trusted certificates.
const BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// An agent that answers every status (callers look at it), with a time limit for
/// each whole request.
pub fn agent(timeout: Duration) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout));
    if let Some(roots) = system_roots() {
        config = config.tls_config(TlsConfig::builder().root_certs(roots.clone()).build());
    }
    config.build().into()
}

/// The system's certificates: `SSL_CERT_FILE`, else the first bundle found.
fn system_roots() -> Option<&'static RootCerts> {
    static ROOTS: OnceLock<Option<RootCerts>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let files = std::env::var_os("SSL_CERT_FILE")
                .map(std::path::PathBuf::from)
                .into_iter()
                .chain(BUNDLES.iter().map(std::path::PathBuf::from));
            files.into_iter().find_map(|file| {
                let pem = std::fs::read(&file).ok()?;
                let certs: Vec<_> = parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(PemItem::Certificate(cert)) => Some(cert.to_owned()),
                        _ => None,
                    })
                    .collect();
                (!certs.is_empty()).then(|| RootCerts::new_with_certs(&certs))
            })
        })
        .as_ref()
}
