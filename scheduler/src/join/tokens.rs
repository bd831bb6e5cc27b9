//! Join tokens: `mst1.<32 hex secret>.<sha256 hex of the CA certificate>`.
//!
//! The secret proves to the scheduler that the agent was given a token; the CA hash proves to
//! the agent that the scheduler it reached is the cluster's. Only the SHA-256 of each secret
//! is stored, with its expiry, in `D/tokens.json` (mode 0600, replaced atomically, changed
//! under an exclusive lock on `D/tokens.lock` since `mini-sched token create` and the daemon
//! share it). A token is accepted until it expires, it is revoked (`token revoke ID`,
//! which removes it) or, when made with `--uses N`, until N agents have joined with it: each
//! use is counted under the lock, so N concurrent joins with a one-use token admit one. A
//! token made with `--rejoin NODE` joins only that node, and may replace it without its
//! certificate (the admin's explicit word that the node's identity is to be reissued).

use super::{hex, ClusterPki, Error};
use mini_shim::join::Token;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The longest a token may stay valid (`--ttl`): 30 days.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 86_400);

/// `D/tokens.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    tokens: Vec<StoredToken>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredToken {
    /// The first 12 hex digits of the secret's hash: names the token in listings.
    id: String,
    /// SHA-256 of the secret, lowercase hex.
    secret_sha256: String,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    expires_at: String,
    /// How many joins it admitted.
    #[serde(default)]
    uses: u32,
    /// How many joins it may admit (none: any number until it expires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_uses: Option<u32>,
    /// The only node it joins, which it may replace without the node's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rejoin: Option<String>,
}

/// What a new token may do (`token create`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// How long it stays valid (at most [`MAX_TOKEN_TTL`]).
    pub ttl: Duration,
    /// How many joins it may admit (none: any number until it expires).
    pub max_uses: Option<u32>,
    /// The one node it joins again without that node's certificate.
    pub rejoin: Option<String>,
}

impl TokenSpec {
    /// A token any number of agents may join with for `ttl`.
    pub fn reusable(ttl: Duration) -> TokenSpec {
        TokenSpec {
            ttl,
            max_uses: None,
            rejoin: None,
        }
    }
}

/// A token as `token list` shows it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// A short public name for the token.
    pub id: String,
    /// When it was made.
    pub created_at: SystemTime,
    /// When it stops being accepted.
    pub expires_at: SystemTime,
    /// How many joins it admitted.
    pub uses: u32,
    /// How many it may admit (none: any number).
    pub max_uses: Option<u32>,
    /// The only node it joins (`--rejoin`).
    pub rejoin: Option<String>,
}

impl TokenInfo {
    /// Whether it has expired by now.
    pub fn expired(&self) -> bool {
        SystemTime::now() >= self.expires_at
    }

    /// Whether it has admitted as many joins as it may.
    pub fn used_up(&self) -> bool {
        self.max_uses.is_some_and(|max| self.uses >= max)
    }
}

/// Why a token is refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// It does not have the token format.
    #[error("{0}")]
    Malformed(String),
    /// It names another CA: made by another cluster.
    #[error("the join token belongs to another cluster (its CA hash is not this cluster's); make one here with mini-sched token create")]
    OtherCluster,
    /// No such token.
    #[error("the join token is not valid here; make one with mini-sched token create")]
    Unknown,
    /// It has expired.
    #[error("the join token expired at {at}; make a new one with mini-sched token create")]
    Expired {
        /// The expiry, RFC 3339.
        at: String,
    },
    /// It has admitted as many joins as it may.
    #[error("the join token has been used {uses} time(s), all it may be; make a new one with mini-sched token create")]
    UsedUp {
        /// How many joins it admitted.
        uses: u32,
    },
    /// It was made for another node (`--rejoin`).
    #[error("the join token is for node {0} only")]
    OtherNode(String),
    /// The token file could not be read.
    #[error("{0}")]
    Store(#[from] Error),
}

/// The cluster's join tokens (`D/tokens.json`).
#[derive(Debug, Clone)]
pub struct Tokens {
    path: PathBuf,
    lock: PathBuf,
    ca_sha256: String,
}

impl Tokens {
    /// The tokens of `pki`'s cluster.
    pub fn new(pki: &ClusterPki) -> Tokens {
        Tokens {
            path: pki.state_dir().join("tokens.json"),
            lock: pki.state_dir().join("tokens.lock"),
            ca_sha256: pki.ca_sha256().to_string(),
        }
    }

    /// `D/tokens.json`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes a token as `spec` says and returns it (the only time its secret is seen).
    pub fn create(&self, spec: &TokenSpec) -> Result<String, Error> {
        check_ttl(spec.ttl)?;
        if spec.max_uses == Some(0) {
            return Err(Error::Cluster(
                "--uses 0: a token must admit at least one join".into(),
            ));
        }
        if let Some(node) = &spec.rejoin {
            mini_shim::join::validate_node_name(node).map_err(Error::Cluster)?;
        }
        let mut secret = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| Error::Pki("the system's random number generator failed".into()))?;
        let token = Token {
            secret: hex(&secret),
            ca_sha256: self.ca_sha256.clone(),
        };
        let secret_sha256 = sha256(token.secret.as_bytes());
        let now = SystemTime::now();
        let stored = StoredToken {
            id: hex(&secret_sha256[..6]),
            secret_sha256: hex(&secret_sha256),
            created_at: rfc3339(now),
            expires_at: rfc3339(now + spec.ttl),
            uses: 0,
            max_uses: spec.max_uses,
            rejoin: spec.rejoin.clone(),
        };
        let _lock = self.locked()?;
        let mut file = self.read()?;
        file.tokens.push(stored);
        self.write(&file)?;
        Ok(token.to_string())
    }

    /// Every token, expired and used-up ones too, oldest first.
    pub fn list(&self) -> Result<Vec<TokenInfo>, Error> {
        self.read()?.tokens.iter().map(|t| self.info(t)).collect()
    }

    fn info(&self, t: &StoredToken) -> Result<TokenInfo, Error> {
        Ok(TokenInfo {
            id: t.id.clone(),
            created_at: self.time(&t.created_at)?,
            expires_at: self.time(&t.expires_at)?,
            uses: t.uses,
            max_uses: t.max_uses,
            rejoin: t.rejoin.clone(),
        })
    }

    /// Accepts a token of this cluster that exists, has not expired and is not used up, and
    /// says what it may do. The secret's hash is compared with every stored one in constant
    /// time. Counts nothing: see [`Tokens::consume`].
    pub fn verify(&self, text: &str) -> Result<TokenInfo, TokenError> {
        let file = self.read()?;
        let index = self.find(&file, text)?;
        Ok(self.info(&file.tokens[index])?)
    }

    /// [`Tokens::verify`] for a join of `node`, and counts the use, under the lock. A join
    /// that then fails gives the use back with [`Tokens::release`].
    pub fn consume(&self, text: &str, node: &str) -> Result<TokenInfo, TokenError> {
        let _lock = self.locked()?;
        let mut file = self.read()?;
        let index = self.find(&file, text)?;
        let stored = &mut file.tokens[index];
        if let Some(only) = stored.rejoin.as_deref().filter(|only| *only != node) {
            return Err(TokenError::OtherNode(only.to_string()));
        }
        stored.uses = stored.uses.saturating_add(1);
        let info = self.info(stored)?;
        self.write(&file)?;
        Ok(info)
    }

    /// Gives back a use of token `id` counted by [`Tokens::consume`] for a join that failed.
    pub fn release(&self, id: &str) -> Result<(), Error> {
        let _lock = self.locked()?;
        let mut file = self.read()?;
        if let Some(stored) = file.tokens.iter_mut().find(|t| t.id == id) {
            stored.uses = stored.uses.saturating_sub(1);
            self.write(&file)?;
        }
        Ok(())
    }

    /// Removes token `id` (as `token list` shows it): it is refused from now on.
    pub fn revoke(&self, id: &str) -> Result<(), Error> {
        let _lock = self.locked()?;
        let mut file = self.read()?;
        let before = file.tokens.len();
        file.tokens.retain(|t| t.id != id);
        if file.tokens.len() == before {
            return Err(Error::Cluster(format!(
                "no join token {id:?}: mini-sched token list shows the tokens' ids"
            )));
        }
        self.write(&file)
    }

    /// The index in `file` of the usable token `text`.
    fn find(&self, file: &TokenFile, text: &str) -> Result<usize, TokenError> {
        let token = Token::parse(text).map_err(TokenError::Malformed)?;
        if token.ca_sha256 != self.ca_sha256 {
            return Err(TokenError::OtherCluster);
        }
        let hash = hex(&sha256(token.secret.as_bytes()));
        let mut found = None;
        for (i, stored) in file.tokens.iter().enumerate() {
            if equal_in_constant_time(hash.as_bytes(), stored.secret_sha256.as_bytes()) {
                found = Some(i);
            }
        }
        let index = found.ok_or(TokenError::Unknown)?;
        let stored = &file.tokens[index];
        if SystemTime::now() >= self.time(&stored.expires_at)? {
            return Err(TokenError::Expired {
                at: stored.expires_at.clone(),
            });
        }
        if stored.max_uses.is_some_and(|max| stored.uses >= max) {
            return Err(TokenError::UsedUp { uses: stored.uses });
        }
        Ok(index)
    }

    fn time(&self, text: &str) -> Result<SystemTime, Error> {
        humantime::parse_rfc3339(text)
            .map_err(|e| Error::Cluster(format!("{}: time {text:?}: {e}", self.path.display())))
    }

    fn read(&self) -> Result<TokenFile, Error> {
        // Bounded: one entry is ~200 bytes, a token file of 1 MiB holds thousands.
        match mini_run::input_file::read(&self.path, mini_shim::agent::pki::PEM_LIMIT) {
            Ok(text) => serde_json::from_slice(&text)
                .map_err(|e| Error::Cluster(format!("{}: {e}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
            Err(e) => Err(Error::io("reading", &self.path, e)),
        }
    }

    /// Replaces the file: a temporary file (mode 0600), synced, renamed over it.
    fn write(&self, file: &TokenFile) -> Result<(), Error> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let temp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(file).expect("the token file serializes") + "\n";
        let write = || {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&temp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            Error::io("writing", &self.path, e)
        })?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io("syncing", dir, e))?;
        }
        Ok(())
    }

    /// An exclusive lock on `D/tokens.lock`, held until the value is dropped.
    fn locked(&self) -> Result<nix::fcntl::Flock<std::fs::File>, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.lock)
            .map_err(|e| Error::io("opening", &self.lock, e))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::io("locking", &self.lock, e.into()))
    }
}

/// Refuses a token lifetime over [`MAX_TOKEN_TTL`].
pub fn check_ttl(ttl: Duration) -> Result<(), Error> {
    if ttl > MAX_TOKEN_TTL {
        return Err(Error::Cluster(format!(
            "--ttl {}: a join token may be valid for at most {}",
            mini_shim::agent::pki::format_lifetime(ttl),
            mini_shim::agent::pki::format_lifetime(MAX_TOKEN_TTL)
        )));
    }
    Ok(())
}

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> (ClusterPki, PathBuf) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mini-sched-tokens-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let pki = super::super::init_cluster(
            &dir,
            "127.0.0.1:7440".parse().unwrap(),
            &super::super::InitOptions::default(),
        )
        .unwrap()
        .pki;
        (pki, dir)
    }

    #[test]
    fn created_tokens_verify_and_are_stored_hashed() {
        use std::os::unix::fs::PermissionsExt;
        let (pki, dir) = cluster();
        let tokens = Tokens::new(&pki);
        let a = tokens
            .create(&TokenSpec::reusable(Duration::from_secs(3600)))
            .unwrap();
        let b = tokens
            .create(&TokenSpec::reusable(Duration::from_secs(60)))
            .unwrap();
        assert_ne!(a, b);
        let parsed = Token::parse(&a).unwrap();
        assert_eq!(parsed.ca_sha256, pki.ca_sha256());
        tokens.verify(&a).unwrap();
        tokens.verify(&b).unwrap();
        let text = std::fs::read_to_string(tokens.path()).unwrap();
        assert!(
            !text.contains(&parsed.secret),
            "the secret is stored: {text}"
        );
        let mode = std::fs::metadata(tokens.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // init's token, then these two.
        let list = tokens.list().unwrap();
        assert_eq!(list.len(), 3);
        assert!(list.iter().all(|t| !t.expired() && !a.contains(&t.id)));
        assert!(list[1].expires_at > list[2].expires_at);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn expired_tokens_are_refused_with_their_expiry() {
        let (pki, dir) = cluster();
        let tokens = Tokens::new(&pki);
        let token = tokens.create(&TokenSpec::reusable(Duration::ZERO)).unwrap();
        let e = tokens.verify(&token).unwrap_err();
        let TokenError::Expired { at } = &e else {
            panic!("{e}")
        };
        assert!(e.to_string().contains(at.as_str()), "{e}");
        assert!(tokens.list().unwrap()[1].expired());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tampered_foreign_and_malformed_tokens_are_refused() {
        let (pki, dir) = cluster();
        let tokens = Tokens::new(&pki);
        let token = Token::parse(
            &tokens
                .create(&TokenSpec::reusable(Duration::from_secs(60)))
                .unwrap(),
        )
        .unwrap();

        let mut secret = token.secret.clone().into_bytes();
        secret[0] = if secret[0] == b'0' { b'1' } else { b'0' };
        let tampered = Token {
            secret: String::from_utf8(secret).unwrap(),
            ..token.clone()
        };
        assert!(matches!(
            tokens.verify(&tampered.to_string()),
            Err(TokenError::Unknown)
        ));

        let foreign = Token {
            ca_sha256: "0".repeat(64),
            ..token.clone()
        };
        assert!(matches!(
            tokens.verify(&foreign.to_string()),
            Err(TokenError::OtherCluster)
        ));
        let (other, other_dir) = cluster();
        assert!(matches!(
            Tokens::new(&other).verify(&token.to_string()),
            Err(TokenError::OtherCluster)
        ));

        let e = tokens.verify("mst1.nope").unwrap_err();
        assert!(matches!(e, TokenError::Malformed(_)), "{e}");
        tokens.verify(&token.to_string()).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::remove_dir_all(other_dir).unwrap();
    }

    #[test]
    fn uses_are_counted_given_back_and_bounded() {
        let (pki, dir) = cluster();
        let tokens = Tokens::new(&pki);
        let spec = TokenSpec {
            max_uses: Some(2),
            ..TokenSpec::reusable(Duration::from_secs(60))
        };
        let token = tokens.create(&spec).unwrap();
        let first = tokens.consume(&token, "n1").unwrap();
        assert_eq!((first.uses, first.max_uses), (1, Some(2)));
        tokens.release(&first.id).unwrap();
        tokens.consume(&token, "n1").unwrap();
        tokens.consume(&token, "n2").unwrap();
        let e = tokens.consume(&token, "n3").unwrap_err();
        assert!(matches!(e, TokenError::UsedUp { uses: 2 }), "{e}");
        assert!(tokens.verify(&token).is_err());
        assert!(tokens.list().unwrap()[1].used_up());
        let e = tokens
            .create(&TokenSpec {
                max_uses: Some(0),
                ..spec
            })
            .unwrap_err();
        assert!(e.to_string().contains("--uses 0"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn revoked_and_other_node_tokens_are_refused() {
        let (pki, dir) = cluster();
        let tokens = Tokens::new(&pki);
        let token = tokens
            .create(&TokenSpec {
                rejoin: Some("n1".into()),
                ..TokenSpec::reusable(Duration::from_secs(60))
            })
            .unwrap();
        let e = tokens.consume(&token, "n2").unwrap_err();
        assert!(
            matches!(e, TokenError::OtherNode(ref n) if n == "n1"),
            "{e}"
        );
        assert_eq!(tokens.verify(&token).unwrap().uses, 0);
        let id = tokens.list().unwrap()[1].id.clone();
        tokens.revoke(&id).unwrap();
        assert!(matches!(tokens.verify(&token), Err(TokenError::Unknown)));
        assert!(tokens
            .revoke(&id)
            .unwrap_err()
            .to_string()
            .contains("no join token"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn lifetimes_are_bounded() {
        let (pki, dir) = cluster();
        let tokens = Tokens::new(&pki);
        let e = tokens
            .create(&TokenSpec::reusable(MAX_TOKEN_TTL + Duration::from_secs(1)))
            .unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
        assert_eq!(tokens.list().unwrap().len(), 1, "only init's token");
        tokens.create(&TokenSpec::reusable(MAX_TOKEN_TTL)).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn comparison_is_exact() {
        assert!(equal_in_constant_time(b"abc", b"abc"));
        assert!(!equal_in_constant_time(b"abc", b"abd"));
        assert!(!equal_in_constant_time(b"abc", b"ab"));
    }
}
