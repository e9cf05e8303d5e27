//! The layers settings come from, merged in order (later wins): built-in
//! defaults, a TOML file, `GROUNDTRUTH_<SECTION>__<KEY>` environment
//! variables, `--set section.key=value` flags. Each value remembers where
//! it came from, so a problem names its origin.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use toml::{Table, Value};

/// Where the settings come from.
#[derive(Debug, Default, Clone)]
pub struct Sources<'a> {
    pub file: Option<&'a Path>,
    /// `(name, value)` pairs; only `GROUNDTRUTH_*` names are read.
    pub env: Vec<(String, String)>,
    /// `section.key=value` overrides from flags.
    pub overrides: Vec<String>,
}

/// `GROUNDTRUTH_*` variables that are not settings: the config file's path
/// (`--config`) and the binary the end-to-end tests run.
pub const OTHER_VARIABLES: &[&str] = &["GROUNDTRUTH_CONFIG", "GROUNDTRUTH_BIN"];

/// Where a value came from, for error messages.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    Default,
    File(String),
    Env(String),
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File(p) => write!(f, "file {p}"),
            Origin::Env(n) => write!(f, "env {n}"),
            Origin::Flag => write!(f, "--set"),
        }
    }
}

/// The merged settings as one TOML table, each value's origin, and the
/// problems found so far.
pub(crate) struct Layered {
    pub table: Table,
    origins: BTreeMap<String, Origin>,
    pub errors: Vec<String>,
}

/// Tables whose keys are free-form (they contain dots): merged whole.
const FREE_FORM: &[&str] = &["kafka.properties"];

impl Layered {
    /// The layers of `src` over `defaults`; problems reading the file or
    /// with the form of a variable or flag are in `errors`.
    pub fn from_sources(defaults: Table, src: &Sources<'_>) -> Layered {
        let mut l = Layered {
            table: Table::new(),
            origins: BTreeMap::new(),
            errors: Vec::new(),
        };
        l.merge("", defaults, &Origin::Default);
        if let Some(path) = src.file {
            l.layer_file(path);
        }
        l.layer_env(&src.env);
        l.layer_flags(&src.overrides);
        l
    }

    fn layer_file(&mut self, path: &Path) {
        let origin = Origin::File(path.display().to_string());
        match std::fs::read_to_string(path) {
            Err(e) => self
                .errors
                .push(format!("cannot read config file `{}`: {e}", path.display())),
            Ok(text) => match text.parse::<Table>() {
                Err(e) => self.errors.push(format!(
                    "config file `{}` is not valid TOML: {e}",
                    path.display()
                )),
                Ok(t) => self.merge("", t, &origin),
            },
        }
    }

    fn layer_env(&mut self, env: &[(String, String)]) {
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("GROUNDTRUTH_") else {
                continue;
            };
            if OTHER_VARIABLES.contains(&name.as_str()) {
                continue;
            }
            let Some((section, key)) = rest.split_once("__") else {
                self.errors.push(format!(
                    "environment variable `{name}` is not of the form GROUNDTRUTH_<SECTION>__<KEY> (a setting), nor one of {}",
                    OTHER_VARIABLES.join(", ")
                ));
                continue;
            };
            let path = format!("{}.{}", section.to_lowercase(), key.to_lowercase());
            let origin = Origin::Env(name.clone());
            if let Some(prop) = path.strip_prefix("kafka.properties__") {
                self.set_property(&prop.replace('_', "."), value, &origin);
                continue;
            }
            self.origins.insert(path.clone(), origin);
            self.set(&path, scalar(value));
        }
    }

    fn layer_flags(&mut self, overrides: &[String]) {
        for o in overrides {
            let Some((path, value)) = o.split_once('=') else {
                self.errors
                    .push(format!("--set `{o}` is not of the form section.key=value"));
                continue;
            };
            let path = path.trim().to_string();
            if let Some(prop) = path.strip_prefix("kafka.properties.") {
                self.set_property(prop, value, &Origin::Flag);
                continue;
            }
            self.origins.insert(path.clone(), Origin::Flag);
            self.set(&path, scalar(value.trim()));
        }
    }

    fn set_property(&mut self, name: &str, value: &str, origin: &Origin) {
        let mut t = Table::new();
        t.insert(name.to_string(), Value::String(value.to_string()));
        self.merge("kafka.properties", t, origin);
    }

    fn merge(&mut self, prefix: &str, src: Table, origin: &Origin) {
        for (k, v) in src {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if FREE_FORM.contains(&prefix) {
                self.origins.insert(path, origin.clone());
                self.table_at(prefix).insert(k, v);
                continue;
            }
            match v {
                Value::Table(t) => {
                    self.table_at(&path);
                    self.merge(&path, t, origin)
                }
                v => {
                    self.origins.insert(path.clone(), origin.clone());
                    self.set(&path, v);
                }
            }
        }
    }

    /// The table at `path` (made, replacing what is there, if it is not one).
    fn table_at(&mut self, path: &str) -> &mut Table {
        let mut t = &mut self.table;
        for p in path.split('.') {
            let entry = t
                .entry(p.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            let Value::Table(inner) = entry else {
                unreachable!("made a table above")
            };
            t = inner;
        }
        t
    }

    /// Sets the value at `path` (its origin kept).
    pub fn set(&mut self, path: &str, v: Value) {
        let (parent, last) = path.rsplit_once('.').unwrap_or(("", path));
        let t = if parent.is_empty() {
            &mut self.table
        } else {
            self.table_at(parent)
        };
        t.insert(last.to_string(), v);
    }

    /// Removes the value at `path`; true if there was one.
    pub fn remove(&mut self, path: &str) -> bool {
        let (parent, last) = path.rsplit_once('.').unwrap_or(("", path));
        let t = if parent.is_empty() {
            Some(&mut self.table)
        } else {
            let mut t = Some(&mut self.table);
            for p in parent.split('.') {
                t = t.and_then(|t| t.get_mut(p)).and_then(Value::as_table_mut);
            }
            t
        };
        t.is_some_and(|t| t.remove(last).is_some())
    }

    /// Where the value at `path` came from (for a table, where its first
    /// key that was set came from).
    pub fn origin(&self, path: &str) -> Origin {
        if let Some(o) = self.origins.get(path) {
            return o.clone();
        }
        let prefix = format!("{path}.");
        self.origins
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, o)| o)
            .find(|o| !matches!(o, Origin::Default))
            .cloned()
            .unwrap_or(Origin::Default)
    }

    /// Records a problem with the setting at `path`.
    pub fn problem(&mut self, path: &str, what: impl fmt::Display) {
        let origin = self.origin(path);
        self.errors.push(format!("`{path}` ({origin}): {what}"));
    }
}

/// Parses a string from env/flags as a TOML value; bare words are strings.
fn scalar(text: &str) -> Value {
    let doc = format!("v = {text}");
    match doc.parse::<Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| Value::String(text.to_string())),
        Err(_) => Value::String(text.to_string()),
    }
}
