//! Doctests under `cargo dyndev test`: the flags rustdoc needs to link
//! them against the bundle, and which rustdoc to run behind the proxy
//! ([`crate::helpers::rustdoc`]) that gives them the user's environment.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::state::BundleState;

/// The directories doctests link the bundle from, and the run path they
/// need: the bundle's dir and the toolchain's libraries.
fn bundle_link_dirs(bundle: &BundleState) -> (Vec<PathBuf>, Vec<PathBuf>) {
    (
        vec![bundle.dir.clone()],
        vec![bundle.dir.clone(), bundle.sysroot_lib.clone()],
    )
}

/// rustdoc is not wrapped: doctests link the members' libraries, which use
/// the bundle, so rustdoc needs to find it and link as the wrapper would.
/// `configured` are the user's flags, as cargo would pass them.
pub fn rustdoc_flags(configured: Vec<String>, bundle: &BundleState) -> Vec<String> {
    let mut flags = configured;
    let (search, rpath) = bundle_link_dirs(bundle);
    for dir in search {
        flags.extend(["-L".into(), format!("dependency={}", dir.display())]);
    }
    flags.extend(["-C".into(), "prefer-dynamic".into()]);
    for dir in rpath {
        flags.extend([
            "-C".into(),
            format!("link-arg=-Wl,-rpath,{}", dir.display()),
        ]);
    }
    flags
}

/// The rustdoc cargo would run: `$RUSTDOC`, else `build.rustdoc`, else
/// `rustdoc`.
pub fn real_rustdoc(config: Option<&cargo_config2::Config>) -> OsString {
    std::env::var_os("RUSTDOC")
        .filter(|r| !r.is_empty())
        .filter(|r| {
            std::path::Path::new(r).file_name() != Some(crate::helpers::rustdoc::NAME.as_ref())
        })
        .or_else(|| config?.build.rustdoc.clone().map(PathBuf::into_os_string))
        .unwrap_or_else(|| "rustdoc".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctests_link_the_bundle_after_the_users_flags() {
        let bundle = BundleState {
            dir: "/s/b1".into(),
            sysroot_lib: "/sys/lib".into(),
            ..BundleState::default()
        };
        assert_eq!(
            rustdoc_flags(vec!["--cfg".into(), "docsrs".into()], &bundle).join(" "),
            "--cfg docsrs -L dependency=/s/b1 -C prefer-dynamic \
             -C link-arg=-Wl,-rpath,/s/b1 -C link-arg=-Wl,-rpath,/sys/lib"
        );
    }
}
