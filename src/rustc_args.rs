//! Reading and rewriting the rustc command lines that cargo hands to the
//! wrapper. Pure functions on argument lists: no process, no file system.

use std::path::{Path, PathBuf};

/// A rustc command line as cargo wrote it, with the pieces dyndev needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// The arguments after the rustc path, unchanged.
    pub args: Vec<String>,
    pub crate_name: Option<String>,
    pub crate_types: Vec<String>,
    pub out_dir: Option<PathBuf>,
    /// The `-C extra-filename` value, `""` when absent.
    pub extra_filename: String,
    /// `--emit` kinds, without their `=path` parts.
    pub emit: Vec<String>,
    /// `--test`: a test harness executable.
    pub test: bool,
    /// `--print ...`: a query of the compiler, not a compilation.
    pub print: bool,
    pub externs: Vec<Extern>,
    /// Every `-C` option as `(key, value)`.
    pub codegen: Vec<(String, Option<String>)>,
    /// Every `-L` value, such as `dependency=/t/debug/deps`.
    pub search_paths: Vec<String>,
}

/// One `--extern name=path` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extern {
    /// Index of the argument holding `name=path` in [`Invocation::args`].
    pub index: usize,
    /// Modifiers such as `priv` or `noprelude`, written `priv:name=path`.
    pub modifiers: Option<String>,
    pub name: String,
    pub path: Option<PathBuf>,
}

impl Extern {
    /// The stem of the compiled unit it names; see [`unit_stem_of`].
    pub fn unit_stem(&self) -> Option<&str> {
        unit_stem_of(self.path.as_deref()?)
    }
}

/// The file stem that names a compiled library unit: `libregex-0123abcd`
/// for `.../deps/libregex-0123abcd.rlib` or `.rmeta`. `None` for dylibs and
/// proc-macros (`.so`), which are never bundled.
pub fn unit_stem_of(path: &Path) -> Option<&str> {
    match path.extension()?.to_str()? {
        "rlib" | "rmeta" => path.file_stem()?.to_str(),
        _ => None,
    }
}

/// The crate name in a unit stem: `libregex-0123` -> `regex`, `app-9` ->
/// `app`.
pub fn crate_of_stem(stem: &str) -> &str {
    let stem = stem.strip_prefix("lib").unwrap_or(stem);
    stem.rsplit_once('-').map_or(stem, |(name, _)| name)
}

/// The hash in a unit stem: `libregex-0123` -> `0123`; empty when it has
/// none.
pub fn hash_of_stem(stem: &str) -> &str {
    stem.rsplit_once('-').map_or("", |(_, hash)| hash)
}

/// What a unit is, as far as linking goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// A Rust library that other crates link: may use facades.
    Rlib,
    /// An executable: a bin, example, test or bench. Links the bundle.
    Executable,
    /// A build script: a host program, left alone.
    BuildScript,
    /// Proc-macros, cdylibs, dylibs and staticlibs: left alone.
    Other,
}

impl Invocation {
    pub fn parse(args: Vec<String>) -> Invocation {
        let mut inv = Invocation::default();
        let mut i = 0;
        while i < args.len() {
            // `(flag, value, index of value)` for both `--flag value` and
            // `--flag=value` (or `-Cvalue`) spellings.
            let (flag, value, value_index) = split_flag(&args, i);
            match flag {
                "--crate-name" => inv.crate_name = value.map(str::to_owned),
                "--crate-type" => {
                    if let Some(v) = value {
                        inv.crate_types.extend(v.split(',').map(str::to_owned));
                    }
                }
                "--out-dir" => inv.out_dir = value.map(PathBuf::from),
                "--emit" => {
                    if let Some(v) = value {
                        inv.emit.extend(
                            v.split(',')
                                .map(|kind| kind.split('=').next().unwrap_or(kind).to_owned()),
                        );
                    }
                }
                "--test" => inv.test = true,
                "--print" => inv.print = true,
                "-C" | "--codegen" => {
                    if let Some(v) = value {
                        let (key, val) = match v.split_once('=') {
                            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                            None => (v.to_owned(), None),
                        };
                        if key == "extra-filename" {
                            inv.extra_filename = val.clone().unwrap_or_default();
                        }
                        inv.codegen.push((key, val));
                    }
                }
                "-L" => {
                    if let Some(v) = value {
                        inv.search_paths.push(v.to_owned());
                    }
                }
                "--extern" => {
                    if let (Some(v), Some(index)) = (value, value_index) {
                        inv.externs.push(parse_extern(v, index));
                    }
                }
                _ => {}
            }
            i = value_index.map_or(i, |vi| vi.max(i)) + 1;
        }
        inv.args = args;
        inv
    }

    pub fn kind(&self) -> UnitKind {
        let is = |t: &str| self.crate_types.iter().any(|c| c == t);
        if self
            .crate_name
            .as_deref()
            .is_some_and(|n| n.starts_with("build_script_"))
        {
            return UnitKind::BuildScript;
        }
        if self.test || (self.crate_types.len() == 1 && is("bin")) {
            return UnitKind::Executable;
        }
        if !self.crate_types.is_empty()
            && self.crate_types.iter().all(|t| t == "lib" || t == "rlib")
        {
            return UnitKind::Rlib;
        }
        UnitKind::Other
    }

    /// The tests of a proc-macro crate: cargo gives them `proc_macro`,
    /// and the crate's dependencies, which may be host-only.
    pub fn is_proc_macro_test(&self) -> bool {
        self.test
            && self
                .externs
                .iter()
                .any(|e| e.name == "proc_macro" && e.path.is_none())
    }

    /// Does this invocation produce code (not only metadata or a query)?
    pub fn links(&self) -> bool {
        !self.print && self.emit.iter().any(|e| e == "link")
    }

    /// The value of `-C key`, if given (the last one wins, as in rustc).
    pub fn codegen_value(&self, key: &str) -> Option<&str> {
        self.codegen
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The directories rustc searches for native libraries: `-L` values
    /// of kind `native` or `all`, or of no kind.
    pub fn native_search_dirs(&self) -> impl Iterator<Item = &Path> {
        self.search_paths
            .iter()
            .filter_map(|v| match v.split_once('=') {
                Some(("native" | "all", dir)) => Some(Path::new(dir)),
                Some(("dependency" | "crate" | "framework", _)) => None,
                _ => Some(Path::new(v.as_str())),
            })
    }

    /// The stem of the file this unit writes: `libfoo-hash` for a library,
    /// `foo-hash` for an executable. Dependents name the unit by it.
    pub fn unit_stem(&self) -> Option<String> {
        let name = self.crate_name.as_deref()?;
        Some(match self.kind() {
            UnitKind::Rlib => format!("lib{name}{}", self.extra_filename),
            _ => format!("{name}{}", self.extra_filename),
        })
    }

    /// Where rustc writes the makefile-style dep-info that cargo reads.
    pub fn dep_info_path(&self) -> Option<PathBuf> {
        // An explicit `--emit=dep-info=PATH` wins.
        for i in 0..self.args.len() {
            let (flag, value, _) = split_flag(&self.args, i);
            if flag == "--emit" {
                for part in value.unwrap_or_default().split(',') {
                    if let Some(path) = part.strip_prefix("dep-info=") {
                        return Some(PathBuf::from(path));
                    }
                }
            }
        }
        let name = self.crate_name.as_deref()?;
        Some(
            self.out_dir
                .as_deref()?
                .join(format!("{name}{}.d", self.extra_filename)),
        )
    }

    /// The arguments with rustc's outputs sent to `dir` instead of the out
    /// dir; `None` when an output is named otherwise (`-o`,
    /// `--emit=KIND=PATH`), or there is no out dir.
    pub fn with_out_dir(&self, dir: &Path) -> Option<Vec<String>> {
        let mut args = self.args.clone();
        let mut replaced = false;
        let mut i = 0;
        while i < args.len() {
            let (flag, value, value_index) = split_flag(&args, i);
            match flag {
                "-o" => return None,
                "--emit" if value.is_some_and(|v| v.contains('=')) => return None,
                "--out-dir" => {
                    let vi = value_index?;
                    args[vi] = if vi == i {
                        format!("--out-dir={}", dir.display())
                    } else {
                        dir.display().to_string()
                    };
                    replaced = true;
                }
                _ => {}
            }
            i = value_index.map_or(i, |vi| vi.max(i)) + 1;
        }
        replaced.then_some(args)
    }

    /// Why a shared standard library cannot serve this unit, if it cannot:
    /// std's dylib unwinds and cannot take part in LTO.
    pub fn unsupported(&self) -> Option<String> {
        if self.codegen_value("panic") == Some("abort") {
            return Some("`panic = \"abort\"`".into());
        }
        let lto_off = |v: &str| matches!(v, "off" | "no" | "n" | "false");
        match self.codegen.iter().rev().find(|(k, _)| k == "lto") {
            Some((_, None)) => return Some("`lto = true`".into()),
            Some((_, Some(v))) if !lto_off(v) => return Some(format!("`lto = \"{v}\"`")),
            _ => {}
        }
        // What cargo gives the libraries of a build whose executables use
        // LTO: they must be compiled as cargo compiles them too.
        match self
            .codegen
            .iter()
            .rev()
            .find(|(k, _)| k == "linker-plugin-lto")
        {
            Some((_, None)) => Some("LTO (`-C linker-plugin-lto`)".into()),
            Some((_, Some(v))) if !lto_off(v) => Some("LTO (`-C linker-plugin-lto`)".into()),
            _ => None,
        }
    }

    /// Codegen options that shape a link and so belong on the bundle's own
    /// command line too: the linker, its arguments, the target features.
    /// Options that name this particular unit are left out.
    pub fn link_codegen_args(&self) -> Vec<String> {
        const UNIT_OWN: &[&str] = &[
            "metadata",
            "extra-filename",
            "incremental",
            "prefer-dynamic",
            "embed-bitcode",
            "lto",
            "codegen-units",
        ];
        let mut out = Vec::new();
        for (key, value) in &self.codegen {
            if UNIT_OWN.contains(&key.as_str()) {
                continue;
            }
            out.push("-C".to_owned());
            out.push(match value {
                Some(v) => format!("{key}={v}"),
                None => key.clone(),
            });
        }
        out
    }
}

/// Splits the argument at `i` into `(flag, value, index of the value)`.
/// Knows rustc's flags that take a value; others come back as `(arg, None,
/// None)`.
fn split_flag(args: &[String], i: usize) -> (&str, Option<&str>, Option<usize>) {
    const TAKES_VALUE: &[&str] = &[
        "--crate-name",
        "--crate-type",
        "--out-dir",
        "--emit",
        "--print",
        "--codegen",
        "--extern",
        "--edition",
        "--cfg",
        "--check-cfg",
        "--cap-lints",
        "--target",
        "--error-format",
        "--json",
        "--explain",
        "--sysroot",
        "--remap-path-prefix",
        "-C",
        "-L",
        "-l",
        "-o",
        "-A",
        "-W",
        "-D",
        "-F",
        "-Z",
    ];
    let arg = args[i].as_str();
    for flag in TAKES_VALUE {
        if arg == *flag {
            return (flag, args.get(i + 1).map(String::as_str), Some(i + 1));
        }
        if let Some(rest) = arg.strip_prefix(flag) {
            if flag.starts_with("--") {
                if let Some(v) = rest.strip_prefix('=') {
                    return (flag, Some(v), Some(i));
                }
            } else if !rest.is_empty() {
                // `-Cfoo=bar`, `-Ldependency=...`
                return (flag, Some(rest), Some(i));
            }
        }
    }
    (arg, None, None)
}

fn parse_extern(value: &str, index: usize) -> Extern {
    let (spec, path) = match value.split_once('=') {
        Some((spec, path)) => (spec, Some(PathBuf::from(path))),
        None => (value, None),
    };
    let (modifiers, name) = match spec.split_once(':') {
        Some((m, n)) => (Some(m.to_owned()), n.to_owned()),
        None => (None, spec.to_owned()),
    };
    Extern {
        index,
        modifiers,
        name,
        path,
    }
}

/// Rewrites one `--extern` to point at `path`, keeping its name and
/// modifiers. Works for both `--extern name=p` and `--extern=name=p`.
pub fn set_extern_path(args: &mut [String], ext: &Extern, path: &Path) {
    let spec = match &ext.modifiers {
        Some(m) => format!("{m}:{}", ext.name),
        None => ext.name.clone(),
    };
    let value = format!("{spec}={}", path.display());
    let slot = &mut args[ext.index];
    *slot = if slot.starts_with("--extern=") {
        format!("--extern={value}")
    } else {
        value
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn outputs_go_elsewhere_when_only_the_out_dir_names_them() {
        let inv = Invocation::parse(words(
            "--crate-name a --emit=dep-info,metadata,link --out-dir /t/deps -C extra-filename=-1",
        ));
        assert_eq!(
            inv.with_out_dir(Path::new("/s/stage")).unwrap().join(" "),
            "--crate-name a --emit=dep-info,metadata,link --out-dir /s/stage -C extra-filename=-1"
        );
        let joined = Invocation::parse(words("--crate-name a --out-dir=/t/deps"));
        assert_eq!(
            joined.with_out_dir(Path::new("/s")).unwrap(),
            words("--crate-name a --out-dir=/s")
        );
        let named = Invocation::parse(words("--emit=link=/x/a.rlib --out-dir /t/deps"));
        assert_eq!(named.with_out_dir(Path::new("/s")), None);
        assert_eq!(
            Invocation::parse(words("-o /x/a")).with_out_dir(Path::new("/s")),
            None
        );
    }

    const BIN: &str = "--crate-name app --edition=2021 src/main.rs --error-format=json \
        --json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type bin \
        --emit=dep-info,link -C embed-bitcode=no -C debuginfo=2 \
        -C metadata=9b4f00b6cb7ce39e -C extra-filename=-ab05eca872509db9 \
        --out-dir /t/debug/deps -C incremental=/t/debug/incremental \
        -L dependency=/t/debug/deps --extern itoa=/t/debug/deps/libitoa-d62e748016f8bd79.rlib \
        --extern log=/t/debug/deps/liblog-740c9629cd0951ea.rlib -Clink-arg=-fuse-ld=lld";

    #[test]
    fn parses_a_bin_compile() {
        let inv = Invocation::parse(words(BIN));
        assert_eq!(inv.crate_name.as_deref(), Some("app"));
        assert_eq!(inv.crate_types, ["bin"]);
        assert_eq!(inv.kind(), UnitKind::Executable);
        assert!(inv.links());
        assert_eq!(inv.extra_filename, "-ab05eca872509db9");
        assert_eq!(inv.unit_stem().as_deref(), Some("app-ab05eca872509db9"));
        assert_eq!(
            inv.dep_info_path().unwrap(),
            Path::new("/t/debug/deps/app-ab05eca872509db9.d")
        );
        assert_eq!(inv.externs.len(), 2);
        assert_eq!(inv.externs[0].name, "itoa");
        assert_eq!(inv.externs[0].unit_stem(), Some("libitoa-d62e748016f8bd79"));
        assert!(
            inv.search_paths
                .iter()
                .any(|p| p == "dependency=/t/debug/deps")
        );
        assert_eq!(inv.native_search_dirs().count(), 0);
        assert_eq!(inv.codegen_value("link-arg"), Some("-fuse-ld=lld"));
    }

    #[test]
    fn a_stem_has_a_crate_and_a_hash() {
        assert_eq!(crate_of_stem("libregex-0123"), "regex");
        assert_eq!(hash_of_stem("libregex-0123"), "0123");
        assert_eq!(crate_of_stem("app-9"), "app");
        assert_eq!(hash_of_stem("app"), "");
    }

    #[test]
    fn link_codegen_args_drop_the_units_own_options() {
        let inv = Invocation::parse(words(BIN));
        assert_eq!(
            inv.link_codegen_args(),
            ["-C", "debuginfo=2", "-C", "link-arg=-fuse-ld=lld"]
        );
    }

    #[test]
    fn classifies_units() {
        let lib = Invocation::parse(words(
            "--crate-name core_lib --crate-type lib --emit=dep-info,metadata,link -C extra-filename=-1",
        ));
        assert_eq!(lib.kind(), UnitKind::Rlib);
        assert_eq!(lib.unit_stem().as_deref(), Some("libcore_lib-1"));
        let test = Invocation::parse(words("--crate-name core_lib --emit=dep-info,link --test"));
        assert_eq!(test.kind(), UnitKind::Executable);
        let build = Invocation::parse(words(
            "--crate-name build_script_build --crate-type bin --emit=dep-info,link",
        ));
        assert_eq!(build.kind(), UnitKind::BuildScript);
        let pm = Invocation::parse(words("--crate-name d --crate-type proc-macro"));
        assert_eq!(pm.kind(), UnitKind::Other);
        let mixed = Invocation::parse(words(
            "--crate-name p --crate-type rlib --crate-type cdylib",
        ));
        assert_eq!(mixed.kind(), UnitKind::Other);
        let query = Invocation::parse(words(
            "- --crate-name ___ --print=file-names --crate-type bin --crate-type rlib",
        ));
        assert!(!query.links());
    }

    #[test]
    fn the_tests_of_a_proc_macro_crate_are_host_code() {
        let test = Invocation::parse(words(
            "--crate-name d src/lib.rs --test --extern heck=/t/deps/libheck-1.rlib --extern proc_macro",
        ));
        assert!(test.is_proc_macro_test());
        let plain = Invocation::parse(words(
            "--crate-name d src/lib.rs --test --extern heck=/t/deps/libheck-1.rlib",
        ));
        assert!(!plain.is_proc_macro_test());
    }

    #[test]
    fn proc_macro_and_sysroot_externs_have_no_unit_stem() {
        let inv = Invocation::parse(words(
            "--extern serde_derive=/t/deps/libserde_derive-1.so --extern proc_macro --extern=priv:x=/t/deps/libx-2.rmeta",
        ));
        assert_eq!(inv.externs[0].unit_stem(), None);
        assert_eq!(inv.externs[1].path, None);
        assert_eq!(inv.externs[2].modifiers.as_deref(), Some("priv"));
        assert_eq!(inv.externs[2].name, "x");
        assert_eq!(inv.externs[2].unit_stem(), Some("libx-2"));
    }

    #[test]
    fn rewrites_externs_in_both_spellings() {
        let mut inv = Invocation::parse(words(
            "--extern log=/t/liblog-1.rlib --extern=priv:itoa=/t/libitoa-2.rmeta",
        ));
        let (a, b) = (inv.externs[0].clone(), inv.externs[1].clone());
        set_extern_path(&mut inv.args, &a, Path::new("/f/liblog-9.rlib"));
        set_extern_path(&mut inv.args, &b, Path::new("/f/libitoa-8.rlib"));
        assert_eq!(
            inv.args,
            [
                "--extern",
                "log=/f/liblog-9.rlib",
                "--extern=priv:itoa=/f/libitoa-8.rlib"
            ]
        );
    }

    #[test]
    fn knows_what_a_shared_std_cannot_serve() {
        let unit = |flags: &str| Invocation::parse(words(&format!("--crate-name a {flags}")));
        assert_eq!(
            unit("-C panic=abort").unsupported().as_deref(),
            Some("`panic = \"abort\"`")
        );
        assert_eq!(
            unit("-C lto").unsupported().as_deref(),
            Some("`lto = true`")
        );
        assert_eq!(
            unit("-C lto=thin").unsupported().as_deref(),
            Some("`lto = \"thin\"`")
        );
        assert_eq!(
            unit("-C linker-plugin-lto").unsupported().as_deref(),
            Some("LTO (`-C linker-plugin-lto`)")
        );
        assert_eq!(unit("-C lto=off -C panic=unwind").unsupported(), None);
        assert_eq!(unit("-C debuginfo=2").unsupported(), None);
    }

    #[test]
    fn explicit_dep_info_path_wins() {
        let inv = Invocation::parse(words(
            "--crate-name a --emit=dep-info=/x/a.d,link --out-dir /t",
        ));
        assert_eq!(inv.dep_info_path().unwrap(), Path::new("/x/a.d"));
        assert_eq!(inv.emit, ["dep-info", "link"]);
    }

    #[test]
    fn crate_names_come_from_stems() {
        assert_eq!(crate_of_stem("libregex_syntax-0123"), "regex_syntax");
        assert_eq!(crate_of_stem("app-9"), "app");
    }
}
