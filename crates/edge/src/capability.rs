//! Capabilities: `fbx1.{sandbox}.{ops}.{expires}.{origin}.{mac}`.
//!
//! - `sandbox`: the sandbox (service) id, `[a-z0-9-]`;
//! - `ops`: the granted operations, one letter each (see [`Op`]);
//! - `expires`: Unix seconds;
//! - `origin`: the web origin it is bound to, base64url, or empty for any;
//! - `mac`: HMAC-SHA256 over everything before it, under the proxy's secret, base64url.
//!
//! Nothing else is stored anywhere: rotating the secret invalidates every capability at once.

use flankbox_protocol::base64::{decode_url, encode_url};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::EdgeError;

type HmacSha256 = Hmac<Sha256>;

/// The format's version prefix.
const PREFIX: &str = "fbx1";
/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// An operation on one sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Read its status.
    Status,
    /// Run commands in it.
    Exec,
    /// Scale it to 0.
    Pause,
    /// Scale it back to 1.
    Resume,
    /// Delete it.
    Destroy,
    /// Read and change its ports.
    Ports,
    /// Read its logs.
    Logs,
}

impl Op {
    /// Every operation, in letter order.
    pub const ALL: [Op; 7] = [
        Op::Status,
        Op::Exec,
        Op::Pause,
        Op::Resume,
        Op::Destroy,
        Op::Ports,
        Op::Logs,
    ];

    fn letter(self) -> char {
        match self {
            Op::Status => 's',
            Op::Exec => 'x',
            Op::Pause => 'p',
            Op::Resume => 'r',
            Op::Destroy => 'd',
            Op::Ports => 'o',
            Op::Logs => 'l',
        }
    }

    /// The name used in policies and messages.
    pub fn name(self) -> &'static str {
        match self {
            Op::Status => "status",
            Op::Exec => "exec",
            Op::Pause => "pause",
            Op::Resume => "resume",
            Op::Destroy => "destroy",
            Op::Ports => "ports",
            Op::Logs => "logs",
        }
    }

    /// The operation called `name`.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// A set of operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ops(u8);

impl Ops {
    /// Every operation.
    pub fn all() -> Self {
        Op::ALL.into_iter().collect()
    }

    /// Whether `op` is in the set.
    pub fn contains(self, op: Op) -> bool {
        self.0 & (1 << op as u8) != 0
    }

    fn encode(self) -> String {
        Op::ALL
            .into_iter()
            .filter(|op| self.contains(*op))
            .map(Op::letter)
            .collect()
    }

    fn decode(s: &str) -> Option<Self> {
        s.chars()
            .map(|c| Op::ALL.into_iter().find(|op| op.letter() == c))
            .collect::<Option<Vec<_>>>()
            .map(|ops| ops.into_iter().collect())
    }
}

impl FromIterator<Op> for Ops {
    fn from_iter<I: IntoIterator<Item = Op>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |bits, op| bits | (1 << op as u8)))
    }
}

/// What a capability grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// The sandbox (service id).
    pub sandbox_id: String,
    /// The operations.
    pub ops: Ops,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// The only web origin it may be used from, if bound.
    pub origin: Option<String>,
}

fn mac(secret: &[u8], message: &str) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(message.as_bytes());
    mac
}

/// Checks that a secret is long enough to sign with.
pub fn check_secret(secret: &[u8]) -> Result<(), EdgeError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(EdgeError::Config(format!(
            "the secret must be at least {MIN_SECRET_LEN} bytes (got {}); generate one with `openssl rand -hex 32`",
            secret.len()
        )));
    }
    Ok(())
}

/// A keyed digest of `purpose` and `data` under the secret, base64url: for values the proxy
/// derives (an owner's tag) that must not be guessable or forgeable.
pub fn derive(secret: &[u8], purpose: &str, data: &str) -> Vec<u8> {
    mac(secret, &format!("{purpose}\n{data}"))
        .finalize()
        .into_bytes()
        .to_vec()
}

impl Capability {
    /// Signs the capability with `secret`.
    pub fn mint(&self, secret: &[u8]) -> String {
        let origin = self
            .origin
            .as_deref()
            .map(|o| encode_url(o.as_bytes()))
            .unwrap_or_default();
        let body = format!(
            "{PREFIX}.{}.{}.{}.{origin}",
            self.sandbox_id,
            self.ops.encode(),
            self.expires_at
        );
        let tag = encode_url(&mac(secret, &body).finalize().into_bytes());
        format!("{body}.{tag}")
    }

    /// Reads and authenticates `token` (constant-time MAC check). Expiry and scope are checked
    /// by [`Capability::check`].
    pub fn open(secret: &[u8], token: &str) -> Result<Self, EdgeError> {
        let invalid = || EdgeError::InvalidCapability;
        let (body, tag) = token.rsplit_once('.').ok_or_else(invalid)?;
        let tag = decode_url(tag).ok_or_else(invalid)?;
        mac(secret, body).verify_slice(&tag).map_err(|_| invalid())?;
        // Authentic from here on: only this proxy could have written it.
        let mut parts = body.split('.');
        let (Some(PREFIX), Some(sandbox), Some(ops), Some(expires), Some(origin), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(invalid());
        };
        let origin = match origin {
            "" => None,
            o => Some(String::from_utf8(decode_url(o).ok_or_else(invalid)?).map_err(|_| invalid())?),
        };
        Ok(Self {
            sandbox_id: sandbox.to_string(),
            ops: Ops::decode(ops).ok_or_else(invalid)?,
            expires_at: expires.parse().map_err(|_| invalid())?,
            origin,
        })
    }

    /// Whether this capability allows `op` on `sandbox_id` at `now` from `origin`.
    pub fn check(&self, sandbox_id: &str, op: Op, now: u64, origin: Option<&str>) -> Result<(), EdgeError> {
        if now >= self.expires_at {
            return Err(EdgeError::ExpiredCapability(self.expires_at));
        }
        if self.sandbox_id != sandbox_id {
            return Err(EdgeError::Forbidden(format!(
                "this capability is for sandbox {}, not {sandbox_id}",
                self.sandbox_id
            )));
        }
        if !self.ops.contains(op) {
            return Err(EdgeError::Forbidden(format!(
                "this capability does not grant {}",
                op.name()
            )));
        }
        // A browser sends `Origin` on every cross-origin request, so a page of another site is
        // always caught. No `Origin` is a same-origin GET or a program, which could claim any
        // origin anyway: binding guards against other sites' pages, not against thieves.
        if let (Some(bound), Some(origin)) = (&self.origin, origin) {
            if origin != bound {
                return Err(EdgeError::Forbidden(format!(
                    "this capability is bound to the origin {bound}, not {origin}"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn cap() -> Capability {
        Capability {
            sandbox_id: "fbx-a1b2c3d4e5-k2j3h4-x9y8z7".into(),
            ops: [Op::Status, Op::Exec, Op::Destroy].into_iter().collect(),
            expires_at: 2_000_000_000,
            origin: Some("https://app.example".into()),
        }
    }

    #[test]
    fn round_trips() {
        let token = cap().mint(SECRET);
        assert!(
            token.starts_with("fbx1.fbx-a1b2c3d4e5-k2j3h4-x9y8z7.sxd.2000000000."),
            "{token}"
        );
        assert_eq!(Capability::open(SECRET, &token).unwrap(), cap());
        let unbound = Capability { origin: None, ..cap() };
        assert_eq!(Capability::open(SECRET, &unbound.mint(SECRET)).unwrap(), unbound);
        assert_eq!(Ops::decode(&Ops::all().encode()), Some(Ops::all()));
    }

    #[test]
    fn tampering_is_refused() {
        let token = cap().mint(SECRET);
        // Any changed character, in the body or the tag.
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let forged = String::from_utf8(bytes).unwrap();
            if forged != token {
                assert_eq!(
                    Capability::open(SECRET, &forged),
                    Err(EdgeError::InvalidCapability),
                    "{forged}"
                );
            }
        }
        // More rights, re-assembled with the old tag.
        let (body, tag) = token.rsplit_once('.').unwrap();
        let wider = body.replace(".sxd.", ".sxprdol.");
        assert_eq!(
            Capability::open(SECRET, &format!("{wider}.{tag}")),
            Err(EdgeError::InvalidCapability)
        );
        for junk in ["", ".", "fbx1", "a.b.c.d.e.f.g", "fbx1.x.s.1..!!!"] {
            assert_eq!(
                Capability::open(SECRET, junk),
                Err(EdgeError::InvalidCapability),
                "{junk}"
            );
        }
    }

    #[test]
    fn rotation_invalidates() {
        let token = cap().mint(SECRET);
        assert_eq!(
            Capability::open(b"another secret, 32 bytes or more!", &token),
            Err(EdgeError::InvalidCapability)
        );
    }

    #[test]
    fn scope_and_expiry_are_checked() {
        let c = cap();
        let origin = Some("https://app.example");
        assert_eq!(c.check(&c.sandbox_id, Op::Exec, 1_999_999_999, origin), Ok(()));
        assert_eq!(
            c.check(&c.sandbox_id, Op::Exec, 2_000_000_000, origin),
            Err(EdgeError::ExpiredCapability(2_000_000_000))
        );
        assert!(
            matches!(c.check("other", Op::Exec, 0, origin), Err(EdgeError::Forbidden(m)) if m.contains("not other"))
        );
        assert!(
            matches!(c.check(&c.sandbox_id, Op::Pause, 0, origin), Err(EdgeError::Forbidden(m)) if m.contains("pause"))
        );
        assert!(matches!(
            c.check(&c.sandbox_id, Op::Exec, 0, Some("https://evil.example")),
            Err(EdgeError::Forbidden(_))
        ));
        assert_eq!(
            c.check(&c.sandbox_id, Op::Exec, 0, None),
            Ok(()),
            "same-origin GETs carry no Origin"
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(check_secret(b"short").is_err());
        assert!(check_secret(SECRET).is_ok());
    }
}
