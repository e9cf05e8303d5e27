//! The optional app catalog: what each government app is, so the metrics
//! can name it and compare what apps do (`app_overlap`, `app_health`).
//!
//! A TOML file of `[[app]]` tables:
//!
//! ```toml
//! [[app]]
//! id = "grid-report"          # the events' app_id (required, unique)
//! name = "网格通"              # display name
//! level = "city"              # who runs it: province, city, county, district, township
//! functions = ["report", "patrol", "notice"]   # what it is for (compared between apps)
//! owner = "市委政法委"          # the department responsible
//! ```
//!
//! Apps missing from the catalog are still measured; their functions are
//! taken to be the modules their events name.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

/// One app.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogApp {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub functions: Vec<String>,
    #[serde(default)]
    pub owner: String,
}

/// The whole catalog (empty when no file is given).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCatalog {
    #[serde(default, rename = "app")]
    pub apps: Vec<CatalogApp>,
}

/// Levels an app can be run at.
pub const LEVELS: [&str; 6] = [
    "province", "city", "county", "district", "township", "village",
];

impl AppCatalog {
    /// Parses and checks a catalog; every problem is listed.
    pub fn from_toml(text: &str, origin: &str) -> Result<AppCatalog, Vec<String>> {
        let cat: AppCatalog = toml::from_str(text).map_err(|e| vec![format!("{origin}: {e}")])?;
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, a) in cat.apps.iter().enumerate() {
            let at = format!("{origin}: app #{} ({:?})", i + 1, a.id);
            if a.id.trim().is_empty() {
                problems.push(format!("{at}: `id` is empty"));
            }
            if !seen.insert(a.id.clone()) {
                problems.push(format!("{at}: `id` appears twice"));
            }
            if !a.level.is_empty() && !LEVELS.contains(&a.level.as_str()) {
                problems.push(format!(
                    "{at}: `level` {:?} is not one of {LEVELS:?}",
                    a.level
                ));
            }
            if a.functions.iter().any(|f| f.trim().is_empty()) {
                problems.push(format!("{at}: a function is empty"));
            }
        }
        if problems.is_empty() {
            Ok(cat)
        } else {
            Err(problems)
        }
    }

    pub fn load(path: &Path) -> Result<AppCatalog, Vec<String>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![format!(
                "cannot read the app catalog {}: {e}",
                path.display()
            )]
        })?;
        AppCatalog::from_toml(&text, &path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_lists_every_problem() {
        let ok = AppCatalog::from_toml(
            "[[app]]\nid = \"a\"\nname = \"A\"\nlevel = \"city\"\nfunctions = [\"report\"]\n",
            "t",
        )
        .unwrap();
        assert_eq!(ok.apps[0].functions, vec!["report"]);
        let bad = AppCatalog::from_toml(
            "[[app]]\nid = \"\"\n[[app]]\nid = \"b\"\nlevel = \"galaxy\"\n[[app]]\nid = \"b\"\nfunctions = [\" \"]\n",
            "t",
        )
        .unwrap_err();
        assert_eq!(bad.len(), 4, "{bad:?}");
        assert!(AppCatalog::from_toml("[[app]]\nid = 1\n", "t").is_err());
        assert!(AppCatalog::from_toml("[[app]]\nid = \"a\"\ncolour = \"red\"\n", "t").is_err());
    }
}
