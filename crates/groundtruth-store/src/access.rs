//! Who is asking: roles, region scopes, principals.
//!
//! A scope is a prefix of the 6-digit administrative division code: `45`
//! (a province) covers `4501` (a city) covers `450102` (a district); the
//! empty scope is nationwide. The store filters every query by the
//! caller's scope in SQL, so nothing outside it is ever read.

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// What a token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Oversight inspector: works the queue, decides cases.
    Inspector,
    /// Policy analyst: reads cases and metrics, queries activity.
    Analyst,
    /// Administrator: everything, plus tokens and the audit log.
    Admin,
    /// A grassroots unit: reads its own region's activity and findings.
    Unit,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Inspector, Role::Analyst, Role::Admin, Role::Unit];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inspector => "inspector",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
            Role::Unit => "unit",
        }
    }

    pub fn parse(s: &str) -> Result<Role, StoreError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                StoreError::invalid(
                    "role",
                    format!("`{s}` is not a role; use inspector, analyst, admin or unit"),
                )
            })
    }

    /// May change cases (claim, assign, decide, note, reopen).
    pub fn reviews(self) -> bool {
        matches!(self, Role::Inspector | Role::Admin)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A region scope: a prefix of division codes ("" = nationwide).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl Scope {
    pub fn nationwide() -> Scope {
        Scope(String::new())
    }

    /// A province (2 digits), city (4) or district (6) code, or "".
    pub fn parse(s: &str) -> Result<Scope, StoreError> {
        let ok = matches!(s.len(), 0 | 2 | 4 | 6) && s.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(Scope(s.to_string()))
        } else {
            Err(StoreError::invalid(
                "region",
                format!("`{s}` is not a division code prefix: give 2 (province), 4 (city) or 6 (district) digits, or \"\" for nationwide"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_nationwide(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a region code lies inside this scope.
    pub fn covers(&self, region: &str) -> bool {
        region.starts_with(&self.0)
    }

    /// Whether every region of `inner` lies inside this scope.
    pub fn contains(&self, inner: &Scope) -> bool {
        inner.0.starts_with(&self.0)
    }

    /// The SQL `LIKE` pattern of the regions inside (digits only, so
    /// nothing needs escaping): the one region filter of the store, the
    /// API's lake reads and the analysts' scoped tables.
    pub fn like_pattern(&self) -> String {
        format!("{}%", self.0)
    }
}

impl TryFrom<String> for Scope {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Scope, StoreError> {
        Scope::parse(&s)
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.0
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("nationwide")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub token_id: String,
    /// Who holds the token (an inspector's name); assignments name it.
    pub subject: String,
    pub role: Role,
    pub scope: Scope,
}

impl Principal {
    /// The detectors and the pipeline, for the audit log.
    pub fn system() -> Principal {
        Principal {
            token_id: String::new(),
            subject: "system".into(),
            role: Role::Admin,
            scope: Scope::nationwide(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_prefixes_of_division_codes() {
        let city = Scope::parse("4501").unwrap();
        assert!(city.covers("450102"));
        assert!(!city.covers("450201"));
        assert!(Scope::parse("45").unwrap().contains(&city));
        assert!(!city.contains(&Scope::parse("45").unwrap()));
        assert!(Scope::nationwide().covers("110101"));
        for bad in ["4", "450", "45010x", "4501020", "45%", "'; --"] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()).unwrap(), r);
        }
        assert!(Role::parse("root").is_err());
    }
}
