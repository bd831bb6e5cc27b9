//! `init` and `token create|list`: the cluster's files in the state directory, without the
//! daemon (see [`crate::join`]).

use super::format;
use super::table::Table;
use crate::join::{self, ClusterPki, TokenInfo, Tokens};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// `init`: makes the cluster in `state_dir`; returns what to print (the token and the join
/// command).
pub fn init(state_dir: &Path, advertise: SocketAddr, ttl: Duration) -> Result<String, join::Error> {
    let made = join::init_cluster(state_dir, advertise, ttl)?;
    Ok(format!(
        "cluster initialized in {}; agents join through {advertise}\n\
         join token (valid {}): {}\n\
         on each agent host, run:\n  {}\n",
        state_dir.display(),
        humantime::format_duration(ttl),
        made.token,
        join::join_command(advertise, &made.token)
    ))
}

/// `token create`: a new join token for the cluster in `state_dir`, and the join command.
pub fn token_create(state_dir: &Path, ttl: Duration) -> Result<String, join::Error> {
    let pki = ClusterPki::load(state_dir)?;
    let token = Tokens::new(&pki).create(ttl)?;
    Ok(format!(
        "{token}\nvalid {}; join with:\n  {}\n",
        humantime::format_duration(ttl),
        join::join_command(pki.advertise(), &token)
    ))
}

/// `token list`: the cluster's tokens (never their secrets).
pub fn token_list(state_dir: &Path) -> Result<Table, join::Error> {
    let pki = ClusterPki::load(state_dir)?;
    Ok(tokens_table(&Tokens::new(&pki).list()?, SystemTime::now()))
}

/// The table of `token list`.
pub fn tokens_table(tokens: &[TokenInfo], now: SystemTime) -> Table {
    let mut table = Table::new(&["ID", "CREATED", "EXPIRES", "STATUS"]);
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
        table.row(vec![t.id.clone(), created, expires, status.to_string()]);
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
            },
            TokenInfo {
                id: "0f0f0f0f0f0f".into(),
                created_at: now - Duration::from_secs(3 * 86_400),
                expires_at: now - Duration::from_secs(2 * 86_400),
            },
        ];
        assert_eq!(
            tokens_table(&tokens, now).render(),
            "ID            CREATED               EXPIRES  STATUS\n\
             a1b2c3d4e5f6  2023-11-14T21:13:20Z  in 23h   valid\n\
             0f0f0f0f0f0f  2023-11-11T22:13:20Z  2d ago   expired\n"
        );
    }
}
