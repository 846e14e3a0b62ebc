//! The API keys and their scopes: what `API_KEYS` and `API_KEYS_FILE` hold, kept as secrets.
//! Plain data with no HTTP in it, so that `config` can read keys without depending on the rest
//! of `api` (`tests/layers.rs` holds this file to that).

use secrecy::{ExposeSecret, SecretString};

/// What a key may do. Each scope includes the ones before it: `read` (every GET), `write`
/// (also creating, appending and completing), `admin` (also erasing a session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Read = 1,
    Write = 2,
    Admin = 3,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// The scope whose [`Scope::as_u8`] is `n`, if any.
    pub fn from_u8(n: u8) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_u8() == n)
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The configured API keys with their scopes, held as secrets: neither `Debug` nor logs can
/// show them.
#[derive(Clone, Default)]
pub struct ApiKeys(Vec<(Scope, SecretString)>);

/// Why a keys file gave no keys; it names the file, never a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{path}: {reason}")]
pub struct KeyFileError {
    /// The file, as given.
    pub path: String,
    pub reason: String,
}

impl ApiKeys {
    /// Keys separated by commas or newlines; blank entries and `#` comment lines are skipped.
    /// An entry may start with its scope, `read:`, `write:` or `admin:`; without one it is
    /// `write`. The error never shows a key.
    pub fn parse(text: &str) -> Result<ApiKeys, String> {
        let keys: Vec<(Scope, &str)> = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|k| !k.is_empty() && !k.starts_with('#'))
            .map(|entry| {
                Scope::ALL
                    .into_iter()
                    .find_map(|scope| {
                        entry
                            .strip_prefix(scope.name())
                            .and_then(|rest| rest.strip_prefix(':'))
                            .map(|key| (scope, key))
                    })
                    .unwrap_or((Scope::Write, entry))
            })
            .collect();
        match keys
            .iter()
            .find(|(_, k)| k.len() < 16 || !k.bytes().all(|b| b.is_ascii_graphic()))
        {
            Some(_) => Err("every key must be at least 16 visible ASCII characters".into()),
            None => Ok(ApiKeys(
                keys.into_iter()
                    .map(|(scope, k)| (scope, SecretString::from(k)))
                    .collect(),
            )),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// How many keys have `scope`.
    pub fn count(&self, scope: Scope) -> usize {
        self.0.iter().filter(|(s, _)| *s == scope).count()
    }

    /// The keys' scopes and bytes, for the constant-time comparison in `api::auth` and nothing
    /// else.
    pub fn exposed(&self) -> impl Iterator<Item = (Scope, &[u8])> {
        self.0
            .iter()
            .map(|(scope, k)| (*scope, k.expose_secret().as_bytes()))
    }

    /// These keys with those of the file at `path` (read now) added. Used at startup and on
    /// SIGHUP.
    pub fn with_file(&self, path: &std::path::Path) -> Result<ApiKeys, KeyFileError> {
        let error = |reason| KeyFileError {
            path: path.display().to_string(),
            reason,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| error(format!("cannot read it: {e}")))?;
        let mut keys = self.0.clone();
        keys.extend(ApiKeys::parse(&text).map_err(error)?.0);
        Ok(ApiKeys(keys))
    }
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} configured)", self.0.len())
    }
}
