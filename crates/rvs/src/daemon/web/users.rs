//! Who may use the monitor: web users in a file of argon2id hashes (`NAME ROLE PHC-HASH` a
//! line, written by `rvsd --add-web-user`), and API tokens for scripts, created by an admin and
//! kept in the state directory as SHA-256 digests only (a token is 32 random bytes, so a fast
//! digest is enough; a password is not, hence argon2id).

use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::{Context, Result, bail};
use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};
use serde::{Deserialize, Serialize};

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees everything, changes nothing.
    Viewer,
    /// May change weights and take real servers out and back, and manage tokens.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Role> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "admin" => Ok(Role::Admin),
            _ => bail!("role {s:?}: use viewer or admin"),
        }
    }
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub role: Role,
    /// The argon2id hash in PHC form.
    pub hash: String,
}

/// A user name: letters, digits and `._-`, 1 to 64 of them.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Reads a users file.
pub fn load(path: &Path) -> Result<BTreeMap<String, User>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))
}

fn parse(text: &str) -> Result<BTreeMap<String, User>, String> {
    let mut users = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let (Some(name), Some(role), Some(hash), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(format!("{}: expected NAME ROLE HASH", n + 1));
        };
        let role: Role = role.parse().map_err(|e| format!("{}: {e}", n + 1))?;
        if !valid_name(name) {
            return Err(format!("{}: bad user name {name:?}", n + 1));
        }
        let parsed = PasswordHash::new(hash).map_err(|e| format!("{}: bad hash: {e}", n + 1))?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(format!("{}: the hash must be argon2id", n + 1));
        }
        users.insert(
            name.to_owned(),
            User {
                role,
                hash: hash.to_owned(),
            },
        );
    }
    Ok(users)
}

/// An argon2id hash of `password` in PHC form, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// Whether `password` matches `hash` (slow on purpose: run it off the async threads).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// `rvsd --add-web-user FILE NAME ROLE`: adds or replaces the user, keeping the other lines.
pub fn add_user(path: &Path, name: &str, role: Role, password: &str) -> Result<()> {
    if !valid_name(name) {
        bail!("user name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'");
    }
    if password.is_empty() {
        bail!("an empty password is not accepted");
    }
    let hash = hash_password(password)?;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    parse(&old).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?;
    let mut out = String::new();
    for line in old.lines() {
        if line.split_whitespace().next() != Some(name) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!("{name} {} {hash}\n", role.name()));
    write_private(path, out.as_bytes())
}

/// Replaces `path` atomically with `data`, readable by its owner only.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// `n` random bytes as lower-case hex, from the system's generator.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("the system's random generator");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A token as stored: never the token itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub sha256: String,
    pub created_by: String,
    pub created_unix_ms: u64,
}

/// The API tokens, saved after each change.
pub struct Tokens {
    path: PathBuf,
    tokens: Mutex<Vec<StoredToken>>,
}

impl Tokens {
    pub fn open(path: PathBuf) -> Result<Tokens> {
        let tokens = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("{}: not a token list", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Tokens {
            path,
            tokens: Mutex::new(tokens),
        })
    }

    /// The token's holder, if `token` is one of ours.
    pub fn check(&self, token: &str) -> Option<StoredToken> {
        let digest = sha256_hex(token);
        let tokens = self.tokens.lock().expect("tokens");
        tokens
            .iter()
            .find(|t| {
                bool::from(subtle::ConstantTimeEq::ct_eq(
                    t.sha256.as_bytes(),
                    digest.as_bytes(),
                ))
            })
            .cloned()
    }

    pub fn list(&self) -> Vec<StoredToken> {
        self.tokens.lock().expect("tokens").clone()
    }

    /// A new token: returns what is stored and the token, shown this once.
    pub fn create(
        &self,
        name: &str,
        role: Role,
        by: &str,
        now_ms: u64,
    ) -> Result<(StoredToken, String)> {
        let token = format!("rvs_{}", random_hex(32));
        let t = StoredToken {
            id: random_hex(8),
            name: name.to_owned(),
            role,
            sha256: sha256_hex(&token),
            created_by: by.to_owned(),
            created_unix_ms: now_ms,
        };
        let mut tokens = self.tokens.lock().expect("tokens");
        let mut next = tokens.clone();
        next.push(t.clone());
        self.save(&next)?;
        *tokens = next;
        Ok((t, token))
    }

    /// Revokes a token by id; false if there is none.
    pub fn revoke(&self, id: &str) -> Result<Option<StoredToken>> {
        let mut tokens = self.tokens.lock().expect("tokens");
        let Some(pos) = tokens.iter().position(|t| t.id == id) else {
            return Ok(None);
        };
        let mut next = tokens.clone();
        let gone = next.remove(pos);
        self.save(&next)?;
        *tokens = next;
        Ok(Some(gone))
    }

    fn save(&self, tokens: &[StoredToken]) -> Result<()> {
        write_private(&self.path, &serde_json::to_vec_pretty(tokens)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_file_round_trip() {
        let dir = std::env::temp_dir().join(format!("rvs-web-users-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let f = dir.join("users");
        add_user(&f, "alice", Role::Admin, "secret one").unwrap();
        add_user(&f, "bob", Role::Viewer, "two").unwrap();
        add_user(&f, "alice", Role::Viewer, "changed").unwrap();
        let users = load(&f).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users["alice"].role, Role::Viewer);
        assert!(users["alice"].hash.starts_with("$argon2id$"));
        assert!(verify_password(&users["alice"].hash, "changed"));
        assert!(!verify_password(&users["alice"].hash, "secret one"));
        assert!(add_user(&f, "no spaces", Role::Admin, "x").is_err());
        assert!(add_user(&f, "carol", Role::Admin, "").is_err());
        assert!(parse("x admin $md5$abc").is_err());
        assert!(
            parse("x root $argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
                .is_err()
        );

        let tokens = Tokens::open(dir.join("tokens.json")).unwrap();
        let (t, secret) = tokens.create("ci", Role::Viewer, "alice", 1).unwrap();
        assert!(
            !std::fs::read_to_string(dir.join("tokens.json"))
                .unwrap()
                .contains(&secret)
        );
        assert_eq!(tokens.check(&secret).unwrap().id, t.id);
        let again = Tokens::open(dir.join("tokens.json")).unwrap();
        assert!(again.check(&secret).is_some());
        assert!(again.check("rvs_wrong").is_none());
        assert!(again.revoke(&t.id).unwrap().is_some());
        assert!(again.check(&secret).is_none());
        assert!(again.revoke(&t.id).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
