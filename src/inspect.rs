//! Looking inside built artifacts with `object`: a binary's `NEEDED`
//! libraries and run path, a shared library's exported symbols, and which
//! symbols a binary imports or defines.

use std::path::Path;

use anyhow::{Context, Result};
use object::read::elf::{Dyn, ElfFile64};
use object::{Endianness, Object, ObjectSymbol, elf};

/// What the dynamic loader sees of one ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamicInfo {
    /// `DT_NEEDED` entries, in order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` (or `DT_RPATH`) entries.
    pub runpath: Vec<String>,
    /// Dynamic symbols this file defines and exports.
    pub exported: usize,
    /// Dynamic symbols this file needs from others.
    pub imported: Vec<String>,
    /// Defined dynamic symbols, by name, for membership checks.
    pub defined: Vec<String>,
}

pub fn dynamic_info(path: &Path) -> Result<DynamicInfo> {
    let data = crate::fs::read(path)?;
    dynamic_info_of(&data).with_context(|| format!("failed to read ELF file `{}`", path.display()))
}

fn dynamic_info_of(data: &[u8]) -> Result<DynamicInfo> {
    let file = ElfFile64::<Endianness>::parse(data)?;
    let endian = file.endian();
    let sections = file.elf_section_table();
    let mut info = DynamicInfo::default();
    if let Some((entries, strings_index)) = sections.dynamic(endian, data)? {
        let strings = sections.strings(endian, data, strings_index)?;
        for entry in entries {
            let tag = entry.tag(endian);
            let text = || -> Result<String> {
                Ok(String::from_utf8_lossy(entry.string(endian, strings)?).into_owned())
            };
            match tag {
                elf::DT_NEEDED => info.needed.push(text()?),
                elf::DT_RUNPATH | elf::DT_RPATH => {
                    info.runpath.extend(text()?.split(':').map(str::to_owned))
                }
                _ => {}
            }
        }
    }
    for sym in file.dynamic_symbols() {
        let Ok(name) = sym.name() else { continue };
        if name.is_empty() {
            continue;
        }
        if sym.is_undefined() {
            info.imported.push(name.to_owned());
        } else if sym.is_global() {
            info.exported += 1;
            info.defined.push(name.to_owned());
        }
    }
    info.defined.sort();
    Ok(info)
}

/// Does `path` define (in its regular symbol table) a symbol whose name
/// contains `needle`? Used to check that bundled code was not copied.
pub fn defines_symbol_containing(path: &Path, needle: &str) -> Result<bool> {
    let data = crate::fs::read(path)?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("failed to parse `{}`", path.display()))?;
    Ok(file
        .symbols()
        .chain(file.dynamic_symbols())
        .any(|s| !s.is_undefined() && s.name().is_ok_and(|n| n.contains(needle))))
}

/// What the native (non-Rust) objects inside an rlib define: C code that a
/// `-sys` crate compiled and bundled into it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NativeSymbols {
    /// Global symbols of default visibility: a shared library can export
    /// them. Sorted.
    pub exported: Vec<String>,
    /// Global symbols of hidden visibility: a shared library cannot export
    /// them, so code outside it that calls them would not link.
    pub hidden: Vec<String>,
}

/// Scans the native objects of each rlib.
pub fn native_symbols(rlibs: &[&Path]) -> Result<NativeSymbols> {
    let mut names = std::collections::BTreeSet::new();
    let mut hidden = std::collections::BTreeSet::new();
    for rlib in rlibs {
        let file = std::fs::File::open(rlib)
            .with_context(|| format!("failed to open `{}`", rlib.display()))?;
        let cache = object::ReadCache::new(file);
        let archive = object::read::archive::ArchiveFile::parse(&cache)
            .with_context(|| format!("failed to read the archive `{}`", rlib.display()))?;
        for member in archive.members() {
            let member = member.with_context(|| format!("failed to read `{}`", rlib.display()))?;
            let name = String::from_utf8_lossy(member.name());
            if name.ends_with(".rcgu.o") || name == "lib.rmeta" || !name.ends_with(".o") {
                continue;
            }
            let Ok(data) = member.data(&cache) else {
                continue;
            };
            let Ok(obj) = object::File::parse(data) else {
                continue;
            };
            for sym in obj.symbols() {
                if sym.is_undefined() || !sym.is_global() {
                    continue;
                }
                let is_hidden = matches!(
                    sym.flags(),
                    object::SymbolFlags::Elf { st_other, .. }
                        if st_other & 0x3 == elf::STV_HIDDEN || st_other & 0x3 == elf::STV_INTERNAL
                );
                if !matches!(
                    sym.kind(),
                    object::SymbolKind::Text | object::SymbolKind::Data | object::SymbolKind::Tls
                ) {
                    continue;
                }
                if let Ok(n) = sym.name() {
                    let plain = !n.is_empty()
                        && n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$')
                        && !n.starts_with(|c: char| c.is_ascii_digit());
                    if is_hidden {
                        hidden.insert(n.to_owned());
                    } else if plain {
                        names.insert(n.to_owned());
                    }
                }
            }
        }
    }
    Ok(NativeSymbols {
        exported: names.into_iter().collect(),
        hidden: hidden.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_test_binary() {
        // The test binary itself is an ELF executable that needs libc.
        let exe = std::env::current_exe().unwrap();
        let info = dynamic_info(&exe).unwrap();
        assert!(
            info.needed.iter().any(|n| n.starts_with("libc.so")),
            "{:?}",
            info.needed
        );
        assert!(!info.imported.is_empty());
    }

    #[test]
    fn rejects_non_elf_files() {
        assert!(dynamic_info_of(b"not an elf file").is_err());
    }
}
