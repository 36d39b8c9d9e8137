//! Whether a function's code changed between two compiles of its crate,
//! read from their objects: its instructions, and what each of them
//! refers to, named symbols by name and rustc's anonymous constants
//! (strings, format templates, vtables) by their contents, since their
//! numbering shifts with every constant the codegen unit gains or loses.
//!
//! Where a panic would say it happened (a `core::panic::Location`: file,
//! line, column) is left out: it moves with every line added above the
//! function, and what the code does is the same.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use object::elf;
use object::read::elf::{ElfFile64, ElfSection64, ElfSymbol64, SectionHeader};
use object::{
    LittleEndian, Object, ObjectSection, ObjectSymbol, RelocationTarget, SymbolKind, SymbolSection,
};

type Elf<'a> = ElfFile64<'a, LittleEndian>;

/// Relocation types whose field is `rip`-relative: the place they name
/// is 4 bytes past the addend's (the field ends the instruction).
const PC_RELATIVE: &[u32] = &[
    elf::R_X86_64_PC32,
    elf::R_X86_64_PLT32,
    elf::R_X86_64_GOTPCREL,
    elf::R_X86_64_GOTPCRELX,
    elf::R_X86_64_REX_GOTPCRELX,
];

/// The objects of one compile, read once.
#[derive(Debug)]
pub struct Objects {
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Objects {
    pub fn read(paths: &[PathBuf]) -> Result<Objects> {
        let files = paths
            .iter()
            .map(|p| Ok((p.clone(), crate::fs::read(p)?)))
            .collect::<Result<_>>()?;
        Ok(Objects { files })
    }

    /// The code of function `name` (mangled) as [`describe`] writes it,
    /// from the first object that defines it; `None` when none does.
    pub fn function(&self, name: &str) -> Result<Option<String>> {
        for (path, data) in &self.files {
            let file = Elf::parse(&**data)
                .with_context(|| format!("failed to read the object `{}`", path.display()))?;
            let found = file.symbols().find(|s| {
                s.is_definition() && s.kind() == SymbolKind::Text && s.name() == Ok(name)
            });
            if let Some(sym) = found {
                return describe(&file, &sym).map(Some);
            }
        }
        Ok(None)
    }

    /// The mangled name of the function whose path (without its hash)
    /// is `path`, for tests.
    #[cfg(test)]
    fn function_named(&self, path: &str) -> Option<String> {
        self.files.iter().find_map(|(_, data)| {
            let file = Elf::parse(&**data).ok()?;
            file.symbols()
                .filter(|s| s.is_definition() && s.kind() == SymbolKind::Text)
                .filter_map(|s| s.name().ok().map(str::to_owned))
                .find(|n| super::demangle_path(n) == path)
        })
    }
}

/// Whether function `name` has other code in `new` than in `old`: `None`
/// when `new` does not define it (the patch does not touch it); a
/// function `old` lacks is new code, so changed.
pub fn changed(old: &Objects, new: &Objects, name: &str) -> Result<Option<bool>> {
    let Some(after) = new.function(name)? else {
        return Ok(None);
    };
    Ok(Some(old.function(name)?.as_deref() != Some(after.as_str())))
}

/// The name of the function a reference to `sym` plus `offset` reaches:
/// the symbol itself, or the function defined there in its section.
fn function_at(
    file: &Elf<'_>,
    sym: &ElfSymbol64<'_, '_, LittleEndian>,
    offset: i64,
) -> Result<Option<String>> {
    if sym.kind() == SymbolKind::Text && sym.name().is_ok_and(|n| !n.is_empty()) {
        return Ok(Some(sym.name()?.to_owned()));
    }
    if sym.kind() != SymbolKind::Section {
        return Ok(None);
    }
    let SymbolSection::Section(index) = sym.section() else {
        return Ok(None);
    };
    let at = sym.address().wrapping_add(offset as u64);
    Ok(file
        .symbols()
        .find(|s| {
            s.kind() == SymbolKind::Text
                && s.section_index() == Some(index)
                && s.address() == at
                && s.name().is_ok_and(|n| !n.is_empty())
        })
        .and_then(|s| s.name().ok().map(str::to_owned)))
}

/// A function's code: its bytes, then each relocation in it (offset,
/// type, addend) with what it reaches.
fn describe(file: &Elf<'_>, sym: &ElfSymbol64<'_, '_, LittleEndian>) -> Result<String> {
    let index = sym
        .section_index()
        .context("a function outside any section")?;
    let section = file.section_by_index(index)?;
    let data = section.data()?;
    let start = sym.address() - section.address();
    let end = match sym.size() {
        0 => data.len() as u64,
        n => start + n,
    };
    let bytes = data
        .get(start as usize..end as usize)
        .context("a function beyond its section")?;
    let mut out = hex(bytes);
    let mut seen = BTreeSet::new();
    for (offset, rel) in section.relocations() {
        if offset < start || offset >= end {
            continue;
        }
        let _ = write!(out, "|{}:", offset - start);
        reference(file, &rel, &mut seen, 0, &mut out)?;
    }
    Ok(out)
}

/// What a relocation reaches, written to `out`: `seen` holds the data
/// sections already being written (constants may refer to each other).
fn reference(
    file: &Elf<'_>,
    rel: &object::Relocation,
    seen: &mut BTreeSet<usize>,
    depth: usize,
    out: &mut String,
) -> Result<()> {
    let r_type = match rel.flags() {
        object::RelocationFlags::Elf { r_type } => r_type,
        _ => 0,
    };
    let _ = write!(out, "{r_type}:{}:", rel.addend());
    let RelocationTarget::Symbol(i) = rel.target() else {
        out.push('?');
        return Ok(());
    };
    let sym = file.symbol_by_index(i)?;
    let name = sym.name().unwrap_or_default();
    // Named symbols are the same thing under the same name (statics
    // included: their contents are state, not code).
    let anonymous = name.is_empty() || name.starts_with(".L") || sym.kind() == SymbolKind::Section;
    if !anonymous {
        out.push_str(name);
        return Ok(());
    }
    let adjust = if PC_RELATIVE.contains(&r_type) { 4 } else { 0 };
    if let Some(f) = function_at(file, &sym, rel.addend() + adjust)? {
        let _ = write!(out, "fn {f}");
        return Ok(());
    }
    let SymbolSection::Section(index) = sym.section() else {
        let _ = write!(out, "{name}");
        return Ok(());
    };
    let section = file.section_by_index(index)?;
    let at = sym.address().wrapping_add((rel.addend() + adjust) as u64) as usize;
    let data = section.data().unwrap_or_default();
    let flags = section.elf_section_header().sh_flags(LittleEndian);
    let flags = flags as u32;
    if flags & elf::SHF_STRINGS != 0 {
        // Merged strings: the one reached, up to its terminator.
        let s = data.get(at..).unwrap_or_default();
        let s = &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())];
        let _ = write!(out, "str {}", hex(s));
        return Ok(());
    }
    if flags & elf::SHF_MERGE != 0 {
        let size = section.elf_section_header().sh_entsize(LittleEndian) as usize;
        let c = data.get(at..at + size.max(1)).unwrap_or_default();
        let _ = write!(out, "const {}", hex(c));
        return Ok(());
    }
    if flags & elf::SHF_EXECINSTR != 0 {
        let _ = write!(out, "code {}+{at}", section.name().unwrap_or_default());
        return Ok(());
    }
    let _ = write!(out, "data+{at}");
    if !seen.insert(index.0) || depth > 32 {
        out.push_str(" (again)");
        return Ok(());
    }
    out.push('{');
    constant(file, &section, seen, depth, out)?;
    out.push('}');
    Ok(())
}

/// An anonymous constant's bytes and references; a `Location`'s line and
/// column left out.
fn constant(
    file: &Elf<'_>,
    section: &ElfSection64<'_, '_, LittleEndian>,
    seen: &mut BTreeSet<usize>,
    depth: usize,
    out: &mut String,
) -> Result<()> {
    let mut data = section.data()?.to_vec();
    let rels: Vec<(u64, object::Relocation)> = section.relocations().collect();
    if is_location(file, &data, &rels)? {
        data.truncate(16);
    }
    out.push_str(&hex(&data));
    for (offset, rel) in &rels {
        let _ = write!(out, "|{offset}:");
        reference(file, rel, seen, depth + 1, out)?;
    }
    Ok(())
}

/// Whether a constant is a `core::panic::Location`: a pointer to a file
/// name (`.rs`) in merged strings, its length, then line and column as
/// two `u32`s.
fn is_location(file: &Elf<'_>, data: &[u8], rels: &[(u64, object::Relocation)]) -> Result<bool> {
    let [(0, rel)] = rels else {
        return Ok(false);
    };
    if data.len() != 24
        || rel.flags()
            != (object::RelocationFlags::Elf {
                r_type: elf::R_X86_64_64,
            })
    {
        return Ok(false);
    }
    let RelocationTarget::Symbol(i) = rel.target() else {
        return Ok(false);
    };
    let sym = file.symbol_by_index(i)?;
    let SymbolSection::Section(index) = sym.section() else {
        return Ok(false);
    };
    let strings = file.section_by_index(index)?;
    if strings.elf_section_header().sh_flags(LittleEndian) as u32 & elf::SHF_STRINGS == 0 {
        return Ok(false);
    }
    let at = sym.address().wrapping_add(rel.addend() as u64) as usize;
    let s = strings.data()?.get(at..).unwrap_or_default();
    let s = &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())];
    let len = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
    Ok(len == s.len() as u64 && s.ends_with(b".rs"))
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `src` compiled as the program `app`'s one object (`src/main.rs`),
    /// as a debug build compiles it, in `dir/name`.
    fn compile(dir: &std::path::Path, name: &str, src: &str) -> Objects {
        let dir = dir.join(name);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/main.rs"), src).unwrap();
        let out = dir.join("app.o");
        let status =
            std::process::Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
                .args([
                    "--crate-name",
                    "app",
                    "--crate-type",
                    "bin",
                    "--edition=2021",
                ])
                .args([
                    "-C",
                    "debuginfo=2",
                    "-C",
                    "codegen-units=1",
                    "--emit=obj",
                    "-o",
                ])
                .arg(&out)
                .arg("src/main.rs")
                .current_dir(&dir)
                .status()
                .unwrap();
        assert!(status.success());
        Objects::read(&[out]).unwrap()
    }

    fn program(above: &str, compute: &str, in_loop: &str) -> String {
        format!(
            "{above}
fn compute(x: u64) -> u64 {{
    {compute}
}}

fn main() {{
    let mut n = 0u64;
    loop {{
        n += 1;
        println!(\"{in_loop} n={{}} r={{}}\", n, compute(n));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }}
}}
"
        )
    }

    #[test]
    fn main_changes_only_with_its_own_code() {
        let dir = tempfile::tempdir().unwrap();
        let old = compile(dir.path(), "old", &program("", "x + 1000", "tick"));
        let main = old.function_named("app::main").expect("the program's main");
        assert!(main.starts_with("_ZN3app4main17h"), "{main}");
        // Another function's body, with a new constant and lines added
        // above `main`: `main` refers to its constants by contents and its
        // panics' lines are left out.
        let other = compile(
            dir.path(),
            "other",
            &program(
                "static NOTE: &str = \"a note\";\n\n",
                "if x == 7 {\n        println!(\"seven {}\", NOTE);\n    }\n    x + 2000",
                "tick",
            ),
        );
        assert_eq!(changed(&old, &other, &main).unwrap(), Some(false));
        let compute = old.function_named("app::compute").unwrap();
        assert_eq!(changed(&old, &other, &compute).unwrap(), Some(true));
        // The text `main`'s loop prints, and a call `main` makes.
        let text = compile(dir.path(), "text", &program("", "x + 1000", "tock"));
        assert_eq!(changed(&old, &text, &main).unwrap(), Some(true));
        let call = compile(
            dir.path(),
            "call",
            &program("", "x + 1000", "tick").replace("n += 1;", "n += 1;\n        compute(1);"),
        );
        assert_eq!(changed(&old, &call, &main).unwrap(), Some(true));
        // A function the objects do not define is not part of the patch.
        assert_eq!(changed(&old, &other, "_ZN3app4none17h0E").unwrap(), None);
    }
}
