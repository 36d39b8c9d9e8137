//! The generated crates' sources, kept as files in `templates/` and filled
//! in here. A placeholder is `%NAME%`; every one must be given.

use anyhow::{Result, bail};

pub const BUNDLE_LIB: &str = include_str!("../templates/bundle/lib.rs-in");
pub const FACADE_LIB: &str = include_str!("../templates/facade/lib.rs-in");

/// Replaces each `%KEY%` in `template`. Fails on a placeholder left unfilled
/// or a value given for one the template does not have, so a template and
/// its caller cannot drift apart silently.
pub fn render(template: &str, values: &[(&str, &str)]) -> Result<String> {
    let mut out = template.to_owned();
    for (key, value) in values {
        let placeholder = format!("%{key}%");
        if !out.contains(&placeholder) {
            bail!("template has no placeholder `{placeholder}`");
        }
        out = out.replace(&placeholder, value);
    }
    if let Some(start) = out.find('%') {
        let rest = &out[start + 1..];
        if let Some(end) = rest.find('%') {
            let name = &rest[..end];
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                bail!("template placeholder `%{name}%` was not filled");
            }
        }
    }
    Ok(out)
}

/// A bundle library's `lib.rs`: one `pub extern crate` per crate it holds,
/// by alias, and one `extern crate` per library it loads.
pub fn bundle_lib(
    workspace: &str,
    users: &str,
    aliases: &[&str],
    loads: &[&str],
) -> Result<String> {
    let externs = aliases
        .iter()
        .map(|a| format!("pub extern crate {a};"))
        .chain(loads.iter().map(|l| format!("extern crate {l};")))
        .collect::<Vec<_>>()
        .join("\n");
    render(
        BUNDLE_LIB,
        &[
            ("WORKSPACE", workspace),
            ("USERS", users),
            ("EXTERN_CRATES", &externs),
        ],
    )
}

/// A facade's `lib.rs`: the root re-exported from the bundle.
pub fn facade_lib(crate_name: &str, bundle: &str, alias: &str) -> Result<String> {
    render(
        FACADE_LIB,
        &[("CRATE", crate_name), ("BUNDLE", bundle), ("ALIAS", alias)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_lists_every_root() {
        let src = bundle_lib("`game`", "game (bin)", &["log_1", "itoa_2"], &["dyndev_a"]).unwrap();
        assert!(
            src.contains(
                "pub extern crate log_1;\npub extern crate itoa_2;\nextern crate dyndev_a;"
            )
        );
        assert!(src.contains("the bundle of `game`"));
        assert!(src.contains("(game (bin))"));
        assert!(!src.contains('%'));
    }

    #[test]
    fn facade_reexports_the_root_from_the_bundle() {
        let src = facade_lib("log", "dyndev_bundle_ab", "log_1").unwrap();
        assert!(src.contains("#![no_std]"));
        assert!(src.contains("pub use ::dyndev_bundle_ab::log_1::*;"));
    }

    #[test]
    fn render_refuses_unknown_and_missing_placeholders() {
        assert!(render("a %X% b", &[("Y", "1")]).is_err());
        assert!(render("a %X% %Y%", &[("X", "1")]).is_err());
        assert_eq!(render("a %X% b", &[("X", "1")]).unwrap(), "a 1 b");
        // A lone percent sign in text is not a placeholder.
        assert_eq!(render("100% %X%", &[("X", "sure")]).unwrap(), "100% sure");
    }
}
