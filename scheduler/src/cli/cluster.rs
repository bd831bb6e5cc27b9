//! `init`, `token create|list|revoke` and `cert admin`: the cluster's files in the state
//! directory, without the daemon (see [`crate::join`]).

use super::format;
use super::table::Table;
use crate::join::{self, ClusterPki, InitOptions, TokenInfo, TokenSpec, Tokens};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// `init`: makes the cluster in `state_dir`; returns what to print (the token and the join
/// command).
pub fn init(
    state_dir: &Path,
    advertise: SocketAddr,
    options: &InitOptions,
) -> Result<String, join::Error> {
    let made = join::init_cluster(state_dir, advertise, options)?;
    Ok(format!(
        "cluster initialized in {}; agents join through {advertise}\n\
         join token ({}): {}\n\
         on each agent host, run:\n  {}\n\
         admin certificate {} valid {}\n",
        state_dir.display(),
        token_terms(&options.token),
        made.token,
        join::join_command(advertise, &made.token),
        made.pki.admin_tls().cert.display(),
        mini_shim::agent::pki::format_lifetime(options.lifetimes.admin),
    ))
}

/// How long a token stays valid and how often it may be used, for people.
fn token_terms(spec: &TokenSpec) -> String {
    let mut terms = format!("valid {}", mini_shim::agent::pki::format_lifetime(spec.ttl));
    match spec.max_uses {
        Some(1) => terms.push_str(", one use"),
        Some(n) => terms.push_str(&format!(", {n} uses")),
        None => {}
    }
    if let Some(node) = &spec.rejoin {
        terms.push_str(&format!(", only for node {node}, which it may replace"));
    }
    terms
}

/// `token create`: a new join token for the cluster in `state_dir`, and the join command.
pub fn token_create(state_dir: &Path, spec: &TokenSpec) -> Result<String, join::Error> {
    let pki = ClusterPki::load(state_dir)?;
    let token = Tokens::new(&pki).create(spec)?;
    let mut command = join::join_command(pki.advertise(), &token);
    if let Some(node) = &spec.rejoin {
        command = format!("{command} --node-name {node} --rejoin");
    }
    Ok(format!(
        "{token}\n{}; join with:\n  {command}\n",
        token_terms(spec)
    ))
}

/// `token revoke ID`.
pub fn token_revoke(state_dir: &Path, id: &str) -> Result<String, join::Error> {
    let pki = ClusterPki::load(state_dir)?;
    Tokens::new(&pki).revoke(id)?;
    Ok(format!("token {id} revoked\n"))
}

/// `cert admin --ttl`: a new admin certificate and key in place of the old.
pub fn cert_admin(state_dir: &Path, ttl: Duration) -> Result<String, join::Error> {
    join::check_cert_ttl("--ttl", ttl, Duration::from_secs(1))?;
    let pki = ClusterPki::load(state_dir)?;
    let path = pki.reissue_admin(ttl)?;
    Ok(format!(
        "{} (key {}) valid {}\n",
        path.display(),
        pki.admin_tls().key.display(),
        mini_shim::agent::pki::format_lifetime(ttl)
    ))
}

/// `token list`: the cluster's tokens (never their secrets).
pub fn token_list(state_dir: &Path) -> Result<Table, join::Error> {
    let pki = ClusterPki::load(state_dir)?;
    Ok(tokens_table(&Tokens::new(&pki).list()?, SystemTime::now()))
}

/// The table of `token list`.
pub fn tokens_table(tokens: &[TokenInfo], now: SystemTime) -> Table {
    let mut table = Table::new(&["ID", "CREATED", "EXPIRES", "USES", "STATUS", "REJOIN"]);
    for t in tokens {
        let created = humantime::format_rfc3339_seconds(t.created_at).to_string();
        let (expires, status) = match t.expires_at.duration_since(now) {
            Ok(left) if !left.is_zero() => (format!("in {}", format::duration(left)), "valid"),
            _ => (
                format!(
                    "{} ago",
                    format::duration(now.duration_since(t.expires_at).unwrap_or_default())
                ),
                "expired",
            ),
        };
        let uses = match t.max_uses {
            Some(max) => format!("{}/{max}", t.uses),
            None => t.uses.to_string(),
        };
        let status = if t.used_up() && status == "valid" {
            "used"
        } else {
            status
        };
        table.row(vec![
            t.id.clone(),
            created,
            expires,
            uses,
            status.to_string(),
            t.rejoin.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_show_when_they_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let tokens = [
            TokenInfo {
                id: "a1b2c3d4e5f6".into(),
                created_at: now - Duration::from_secs(3600),
                expires_at: now + Duration::from_secs(23 * 3600),
                uses: 2,
                max_uses: None,
                rejoin: None,
            },
            TokenInfo {
                id: "a1a1a1a1a1a1".into(),
                created_at: now - Duration::from_secs(3600),
                expires_at: now + Duration::from_secs(3600),
                uses: 1,
                max_uses: Some(1),
                rejoin: Some("n1".into()),
            },
            TokenInfo {
                id: "0f0f0f0f0f0f".into(),
                created_at: now - Duration::from_secs(3 * 86_400),
                expires_at: now - Duration::from_secs(2 * 86_400),
                uses: 0,
                max_uses: Some(3),
                rejoin: None,
            },
        ];
        assert_eq!(
            tokens_table(&tokens, now).render(),
            "ID            CREATED               EXPIRES  USES  STATUS   REJOIN\n\
             a1b2c3d4e5f6  2023-11-14T21:13:20Z  in 23h   2     valid    -\n\
             a1a1a1a1a1a1  2023-11-14T21:13:20Z  in 1h    1/1   used     n1\n\
             0f0f0f0f0f0f  2023-11-11T22:13:20Z  2d ago   0/3   expired  -\n"
        );
    }
}
