//! `[workspace.metadata.dyndev]` (or `[package.metadata.dyndev]` of the root
//! package): which packages to force into the bundle or keep out of it.

use serde_json::Value;

/// The user's settings, typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Package names to keep out of the bundle (linked statically).
    pub exclude: Vec<String>,
    /// Path dependencies to put into the bundle anyway (they stay static by
    /// default because they are usually edited alongside the workspace).
    pub include: Vec<String>,
}

const KEYS: &[&str] = &["exclude", "include"];

impl Settings {
    /// Reads the `dyndev` table from workspace metadata, falling back to the
    /// root package's metadata. Returns the config and a warning for each
    /// key or value it does not understand.
    pub fn from_metadata(
        workspace: &Value,
        root_package: Option<&Value>,
    ) -> (Settings, Vec<String>) {
        let (table, place) = match workspace.get("dyndev") {
            Some(t) => (t, "workspace.metadata.dyndev"),
            None => match root_package.and_then(|m| m.get("dyndev")) {
                Some(t) => (t, "package.metadata.dyndev"),
                None => return (Settings::default(), Vec::new()),
            },
        };
        let mut warnings = Vec::new();
        let Some(map) = table.as_object() else {
            warnings.push(format!("`[{place}]` must be a table; ignoring it"));
            return (Settings::default(), warnings);
        };
        for key in map.keys() {
            if !KEYS.contains(&key.as_str()) {
                warnings.push(format!(
                    "unused key `{place}.{key}` (known keys: {})",
                    KEYS.join(", ")
                ));
            }
        }
        let mut list = |key: &str| -> Vec<String> {
            match map.get(key) {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| match v.as_str() {
                        Some(s) => Some(s.to_owned()),
                        None => {
                            warnings.push(format!(
                                "`{place}.{key}` holds {v}, not a package name; ignoring it"
                            ));
                            None
                        }
                    })
                    .collect(),
                Some(other) => {
                    warnings.push(format!(
                        "`{place}.{key}` must be a list of package names, found {other}"
                    ));
                    Vec::new()
                }
            }
        };
        let config = Settings {
            exclude: list("exclude"),
            include: list("include"),
        };
        (config, warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_workspace_table() {
        let (c, w) = Settings::from_metadata(
            &json!({"dyndev": {"exclude": ["openssl-sys"], "include": ["engine"]}}),
            None,
        );
        assert_eq!(c.exclude, ["openssl-sys"]);
        assert_eq!(c.include, ["engine"]);
        assert!(w.is_empty());
    }

    #[test]
    fn falls_back_to_the_root_package() {
        let (c, _) =
            Settings::from_metadata(&Value::Null, Some(&json!({"dyndev": {"exclude": ["x"]}})));
        assert_eq!(c.exclude, ["x"]);
    }

    #[test]
    fn warns_about_unknown_keys_and_bad_values() {
        let (c, w) = Settings::from_metadata(
            &json!({"dyndev": {"exlude": ["x"], "include": "y", "exclude": [1, "z"]}}),
            None,
        );
        assert_eq!(c.exclude, ["z"]);
        assert!(c.include.is_empty());
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("unused key `workspace.metadata.dyndev.exlude`"));
    }
}
