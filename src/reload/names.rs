//! Symbol names as people read them, for messages.

/// `app::compute` for `_ZN3app7compute17h0123456789abcdefE`: the path
/// without the hash (legacy mangling), for messages.
pub fn demangle_path(mangled: &str) -> String {
    let Some(mut rest) = mangled.strip_prefix("_ZN") else {
        return mangled.to_owned();
    };
    let mut parts = Vec::new();
    while let Some(len_end) = rest.find(|c: char| !c.is_ascii_digit()) {
        if len_end == 0 {
            break;
        }
        let Ok(len) = rest[..len_end].parse::<usize>() else {
            break;
        };
        let Some(part) = rest.get(len_end..len_end + len) else {
            break;
        };
        rest = &rest[len_end + len..];
        let is_hash = part.len() == 17
            && part.starts_with('h')
            && part[1..].chars().all(|c| c.is_ascii_hexdigit());
        if !is_hash {
            // A part starting with `$` is written `_$`.
            let part = if part.starts_with("_$") {
                &part[1..]
            } else {
                part
            };
            parts.push(unescape(part));
        }
    }
    let path = parts.join("::");
    // A `thread_local!` is a value inside a constant inside a closure: name
    // the thread-local.
    match path.find("::{{constant}}") {
        Some(i) => path[..i].to_owned(),
        None => path,
    }
}

/// Legacy mangling's escapes (`$LT$`, `$u7b$`, `..`).
fn unescape(part: &str) -> String {
    const ESCAPES: &[(&str, &str)] = &[
        ("$SP$", "@"),
        ("$BP$", "*"),
        ("$RF$", "&"),
        ("$LT$", "<"),
        ("$GT$", ">"),
        ("$LP$", "("),
        ("$RP$", ")"),
        ("$C$", ","),
        ("$u20$", " "),
        ("$u27$", "'"),
        ("$u5b$", "["),
        ("$u5d$", "]"),
        ("$u7b$", "{"),
        ("$u7d$", "}"),
        ("$u7e$", "~"),
        ("..", "::"),
    ];
    let mut s = part.to_owned();
    for (from, to) in ESCAPES {
        s = s.replace(from, to);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_demangled_without_hash() {
        assert_eq!(
            demangle_path("_ZN3app7compute17h0d5edd5b252fb3fbE"),
            "app::compute"
        );
        assert_eq!(demangle_path("main"), "main");
        assert_eq!(
            demangle_path(
                "_ZN3app1T29_$u7b$$u7b$constant$u7d$$u7d$28_$u7b$$u7b$closure$u7d$$u7d$\
                 23__RUST_STD_INTERNAL_VAL17hcb2c155d2077c870E"
            ),
            "app::T"
        );
        assert_eq!(
            demangle_path(
                "_ZN4core3ptr42drop_in_place$LT$std..io..error..Error$GT$17h5ea4004d1302afb8E"
            ),
            "core::ptr::drop_in_place<std::io::error::Error>"
        );
    }
}
