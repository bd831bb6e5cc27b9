//! process.capabilities: the five sets. The bounding set is cut first (it needs CAP_SETPCAP),
//! the others are set after the user switch, ambient last (it needs permitted and inheritable).

use crate::error::{Error, Result};
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};
use std::str::FromStr;

fn convert(set: &Option<Capabilities>) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = format!("CAP_{c}");
        let cap = Capability::from_str(&name)
            .map_err(|_| Error::invalid(format!("unknown capability {name}")))?;
        out.insert(cap);
    }
    Ok(out)
}

fn set_err(which: &str, e: caps::errors::CapsError) -> Error {
    Error::invalid(format!("setting {which} capabilities: {e}"))
}

/// Drops from the bounding set every capability the spec does not list.
pub fn limit_bounding(spec: &LinuxCapabilities) -> Result<()> {
    let keep = convert(spec.bounding())?;
    let current = caps::read(None, CapSet::Bounding).map_err(|e| set_err("bounding", e))?;
    for cap in current.difference(&keep) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(|e| set_err("bounding", e))?;
    }
    Ok(())
}

/// Sets inheritable, effective, permitted and ambient (after the user switch).
pub fn apply(spec: &LinuxCapabilities) -> Result<()> {
    caps::set(None, CapSet::Inheritable, &convert(spec.inheritable())?)
        .map_err(|e| set_err("inheritable", e))?;
    let permitted = convert(spec.permitted())?;
    let effective = convert(spec.effective())?;
    // Effective must stay within permitted at every step.
    caps::set(
        None,
        CapSet::Effective,
        &effective.intersection(&permitted).copied().collect(),
    )
    .map_err(|e| set_err("effective", e))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(|e| set_err("permitted", e))?;
    caps::set(None, CapSet::Effective, &effective).map_err(|e| set_err("effective", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| set_err("ambient", e))?;
    // The kernel only raises an ambient capability that is permitted and inheritable; like
    // runc, a spec asking for others (runc's own default spec does) is not an error.
    for cap in convert(spec.ambient())? {
        if caps::raise(None, CapSet::Ambient, cap).is_err() {
            crate::logging::debug(&format!(
                "ambient capability {cap} not raised: not inheritable"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_names_convert_to_kernel_capabilities() {
        let set: Capabilities = [oci_spec::runtime::Capability::NetBindService]
            .into_iter()
            .collect();
        let out = convert(&Some(set)).unwrap();
        assert!(out.contains(&Capability::CAP_NET_BIND_SERVICE));
    }
}
