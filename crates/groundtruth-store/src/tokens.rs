//! Bearer tokens. A token is `gt_` and 64 hex digits of OS randomness,
//! shown once when created; the store keeps only its SHA-256 (a token has
//! 256 bits of entropy, so a fast hash is enough: there is nothing to
//! guess). Each has a role, a region scope, a subject (who holds it) and
//! optionally an expiry; revoking one takes effect on the next request.

use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::access::{Principal, Role, Scope};
use crate::audit::{record, Change};
use crate::error::{db, StoreError};
use crate::model::{rfc3339_us, TokenInfo};
use crate::{now_us, ReviewStore};

/// Why a token was refused (all answered with 401).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("no bearer token: send `Authorization: Bearer gt_...` (ask an admin for a token)")]
    Missing,
    #[error("the bearer token is not a groundtruth token (gt_ followed by 64 hex digits)")]
    Malformed,
    #[error("the bearer token is not known; ask an admin for a new one")]
    Unknown,
    #[error("the bearer token expired at {at}; ask an admin for a new one")]
    Expired {
        at: String,
        /// The token's scope: its region's admin sees the attempt.
        region: Scope,
    },
    #[error("the bearer token was revoked at {at}")]
    Revoked { at: String, region: Scope },
    #[error("cannot check the token: {0}")]
    Store(String),
}

impl AuthError {
    /// The scope of the token refused, when it was found (revoked or
    /// expired): that region's admin sees the attempt in the audit log.
    pub fn region(&self) -> Option<&Scope> {
        match self {
            AuthError::Expired { region, .. } | AuthError::Revoked { region, .. } => Some(region),
            _ => None,
        }
    }
}

/// What a new token may do.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub subject: String,
    pub role: Role,
    pub region: Scope,
    /// Seconds it stays valid (`None`: until revoked).
    pub ttl_s: Option<i64>,
}

fn hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn valid_subject(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

const COLUMNS: &str =
    "token_id, subject, role, region, created_by, created_us, expires_us, revoked_us";

fn info(row: &AnyRow) -> Result<TokenInfo, StoreError> {
    let get = db("read a token");
    let role: String = row.try_get("role").map_err(&get)?;
    let region: String = row.try_get("region").map_err(&get)?;
    Ok(TokenInfo {
        token_id: row.try_get("token_id").map_err(&get)?,
        subject: row.try_get("subject").map_err(&get)?,
        role: Role::parse(&role)?,
        region: Scope::parse(&region)?,
        created_by: row.try_get("created_by").map_err(&get)?,
        created_at: rfc3339_us(row.try_get("created_us").map_err(&get)?),
        expires_at: row
            .try_get::<Option<i64>, _>("expires_us")
            .map_err(&get)?
            .map(rfc3339_us),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_us")
            .map_err(&get)?
            .map(rfc3339_us),
    })
}

impl ReviewStore {
    /// A token without expiry made by the system (set-up, tests, benches);
    /// returns its secret.
    pub async fn system_token(
        &self,
        subject: &str,
        role: Role,
        region: Scope,
    ) -> Result<String, StoreError> {
        let new = NewToken {
            subject: subject.into(),
            role,
            region,
            ttl_s: None,
        };
        Ok(self.create_token(&Principal::system(), &new).await?.0)
    }

    /// Creates a token; returns its secret (shown once) and its record.
    /// `actor` must be an admin whose scope contains the new token's.
    pub async fn create_token(
        &self,
        actor: &Principal,
        new: &NewToken,
    ) -> Result<(String, TokenInfo), StoreError> {
        if actor.role != Role::Admin {
            return Err(StoreError::Conflict(
                "only an admin can create tokens".into(),
            ));
        }
        if !valid_subject(&new.subject) {
            return Err(StoreError::invalid(
                "subject",
                format!(
                    "`{}`: 1-64 letters, digits, `.`, `_`, `-` or `@`",
                    new.subject
                ),
            ));
        }
        if !actor.scope.contains(&new.region) {
            return Err(StoreError::invalid(
                "region",
                format!(
                    "`{}` is outside your own scope ({}); you can only give out what you can see",
                    new.region, actor.scope
                ),
            ));
        }
        if let Some(t) = new.ttl_s {
            if !(60..=10 * 366 * 86_400).contains(&t) {
                return Err(StoreError::invalid(
                    "ttl",
                    format!("{t} s; give 60 s to 10 years"),
                ));
            }
        }
        let secret = format!("gt_{}", random_hex(32));
        let token_id = format!("tok_{}", random_hex(6));
        let now = now_us();
        let expires = new.ttl_s.map(|t| now + t * 1_000_000);
        let mut tx = self
            .write
            .begin()
            .await
            .map_err(db("begin creating a token"))?;
        sqlx::query(
            "INSERT INTO tokens (token_id, token_hash, subject, role, region, created_by, created_us, expires_us, revoked_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
        )
        .bind(token_id.as_str())
        .bind(hash(&secret))
        .bind(new.subject.as_str())
        .bind(new.role.as_str())
        .bind(new.region.as_str())
        .bind(actor.subject.as_str())
        .bind(now)
        .bind(expires)
        .execute(&mut *tx)
        .await
        .map_err(db("create a token"))?;
        record(
            &mut tx,
            now,
            Change {
                actor,
                action: "token.created",
                entity: "token",
                entity_id: token_id.clone(),
                case_id: None,
                region: Some(new.region.as_str()),
                before: None,
                after: Some(json!({"subject": new.subject, "role": new.role, "region": new.region.as_str(), "expires_at": expires.map(rfc3339_us)})),
            },
        )
        .await?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens WHERE token_id = $1"))
            .bind(token_id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db("read a new token"))?;
        let info = info(&row)?;
        tx.commit().await.map_err(db("commit a token"))?;
        Ok((secret, info))
    }

    /// Who holds `token`.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let ok_shape = token.len() == 67
            && token.starts_with("gt_")
            && token[3..].bytes().all(|b| b.is_ascii_hexdigit());
        if !ok_shape {
            return Err(AuthError::Malformed);
        }
        let t = self
            .holding("token_hash", &hash(&token.to_ascii_lowercase()))
            .await?;
        Ok(Principal {
            token_id: t.token_id,
            subject: t.subject,
            role: t.role,
            scope: t.region,
        })
    }

    /// Whether the token `who` signed in with still holds: not revoked, not
    /// expired, not deleted (a connection that stays open checks this
    /// before every statement).
    pub async fn still_valid(&self, who: &Principal) -> Result<(), AuthError> {
        self.holding("token_id", &who.token_id).await.map(|_| ())
    }

    /// The token whose `column` is `value`, if it is there, not revoked and
    /// not expired.
    async fn holding(&self, column: &'static str, value: &str) -> Result<TokenInfo, AuthError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens WHERE {column} = $1"))
            .bind(value)
            .fetch_optional(&self.read)
            .await
            .map_err(|e| AuthError::Store(e.to_string()))?
            .ok_or(AuthError::Unknown)?;
        let t = info(&row).map_err(|e| AuthError::Store(e.to_string()))?;
        if let Some(at) = t.revoked_at {
            return Err(AuthError::Revoked {
                at,
                region: t.region,
            });
        }
        let expires: Option<i64> = row
            .try_get("expires_us")
            .map_err(|e| AuthError::Store(e.to_string()))?;
        if let Some(e) = expires {
            if e <= now_us() {
                return Err(AuthError::Expired {
                    at: rfc3339_us(e),
                    region: t.region,
                });
            }
        }
        Ok(t)
    }

    /// Tokens whose scope lies inside `scope`.
    pub async fn list_tokens(&self, scope: &Scope) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE region LIKE $1 ORDER BY created_us, token_id"
        ))
        .bind(scope.like_pattern())
        .fetch_all(&self.read)
        .await
        .map_err(db("list tokens"))?;
        rows.iter().map(info).collect()
    }

    /// Revokes a token inside the admin's scope.
    pub async fn revoke_token(
        &self,
        actor: &Principal,
        token_id: &str,
    ) -> Result<TokenInfo, StoreError> {
        let mut tx = self
            .write
            .begin()
            .await
            .map_err(db("begin revoking a token"))?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE token_id = $1 AND region LIKE $2"
        ))
        .bind(token_id)
        .bind(actor.scope.like_pattern())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("read a token"))?
        .ok_or_else(|| StoreError::not_found(format!("token {token_id}")))?;
        let before = info(&row)?;
        if before.revoked_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "token {token_id} is already revoked"
            )));
        }
        let now = now_us();
        sqlx::query("UPDATE tokens SET revoked_us = $1 WHERE token_id = $2")
            .bind(now)
            .bind(token_id)
            .execute(&mut *tx)
            .await
            .map_err(db("revoke a token"))?;
        record(
            &mut tx,
            now,
            Change {
                actor,
                action: "token.revoked",
                entity: "token",
                entity_id: token_id.to_string(),
                case_id: None,
                region: Some(before.region.as_str()),
                before: Some(json!({"revoked_at": null})),
                after: Some(json!({"revoked_at": rfc3339_us(now)})),
            },
        )
        .await?;
        tx.commit().await.map_err(db("commit a revocation"))?;
        Ok(TokenInfo {
            revoked_at: Some(rfc3339_us(now)),
            ..before
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hashes_fixed_length() {
        let a = random_hex(32);
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_hex(32));
        assert_eq!(hash("x").len(), 64);
        assert!(valid_subject("wang.li@unit-3"));
        assert!(!valid_subject("a b"));
        assert!(!valid_subject(""));
    }
}
