//! `POST /v1/certificate`: the agent's certificate renewed in place by the scheduler, over the
//! mutual TLS only cluster clients pass.
//!
//! The new certificate must be for the key the agent already holds (the key never leaves the
//! host), carry the served certificate's name, chain to the cluster CA and be valid now. It
//! replaces `agent.pem` atomically; the listener serves it from the next handshake on
//! ([`super::tls::ReloadingCert`]).

use super::pki;
use super::{Agent, Error, Listen};
use crate::join::{sync_dir, write_new};
use crate::protocol::{CertificateInfo, CertificateRenewal};
use x509_parser::prelude::{FromDer, X509Certificate};

impl Agent {
    /// Checks `renewal.cert` against the served certificate and the CA and puts it in place.
    pub async fn renew_certificate(
        &self,
        renewal: CertificateRenewal,
    ) -> Result<CertificateInfo, Error> {
        let Listen::Tls { files, .. } = &self.config.listen else {
            return Err(Error::BadRequest(
                "this agent serves without TLS (development mode): it has no certificate to renew"
                    .into(),
            ));
        };
        let files = files.clone();
        let bad = |why: String| Error::BadRequest(format!("the renewed certificate {why}"));
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|e| Error::io("reading", p, e))
        };
        let (current, ca) = (read(&files.cert)?, read(&files.ca)?);
        let new = pki::inspect(&renewal.cert).map_err(|e| bad(format!("is unusable: {e}")))?;
        let old = pki::inspect(&current)?;
        if new.public_key != old.public_key {
            return Err(bad("is not for this agent's key".into()));
        }
        if new.common_name != old.common_name {
            return Err(bad(format!(
                "names {:?}, this agent is {:?}",
                new.common_name, old.common_name
            )));
        }
        let ca = pki::inspect(&ca)?;
        let (_, ca_cert) = X509Certificate::from_der(&ca.der)
            .map_err(|e| Error::Tls(format!("the cluster CA: {e}")))?;
        let (_, cert) =
            X509Certificate::from_der(&new.der).map_err(|e| bad(format!("is unusable: {e}")))?;
        cert.verify_signature(Some(ca_cert.public_key()))
            .map_err(|_| bad("is not signed by the cluster CA".into()))?;
        if !cert.validity().is_valid() {
            return Err(bad("is not valid now".into()));
        }
        let temp = files.cert.with_extension("pem.renewed");
        let _ = std::fs::remove_file(&temp);
        write_new(&temp, &renewal.cert, 0o644)?;
        std::fs::rename(&temp, &files.cert).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            Error::io("renaming", &files.cert, e)
        })?;
        if let Some(dir) = files.cert.parent() {
            sync_dir(dir)?;
        }
        let not_after = humantime::format_rfc3339_seconds(new.not_after).to_string();
        self.log(&format!("certificate renewed, valid until {not_after}"));
        Ok(CertificateInfo { not_after })
    }
}
