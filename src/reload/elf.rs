//! What reload reads from ELF files and from `/proc/PID/maps`: the
//! functions and writable statics of a crate's code, and where each file
//! sits in the running process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, SectionKind, SymbolKind};

/// A function of an image: offset from the image's load bias, and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    pub addr: u64,
    /// Bytes until the next symbol or the end of its section: what a jump
    /// written at its entry may cover.
    pub room: u64,
}

/// The Rust code of one executable or patch library.
#[derive(Debug, Default)]
pub struct Image {
    /// Mangled name -> function, for Rust symbols defined in the image.
    /// A name can have several local copies (one per codegen unit).
    pub functions: BTreeMap<String, Vec<Function>>,
    /// Mangled names of Rust statics in writable sections (state the
    /// image's code keeps: atomics, mutexes, `thread_local!` keys...).
    pub mutable_statics: Vec<String>,
    /// The same statics outside thread-local storage, by name.
    pub statics: BTreeMap<String, Static>,
    /// Thread-locals, by name; `addr` is the offset in the TLS template.
    pub thread_locals: BTreeMap<String, Static>,
    /// The TLS template (`PT_TLS`): address, size in memory, alignment.
    pub tls: Option<(u64, u64, u64)>,
    /// Where the code refers to thread-locals with the local-exec model
    /// (`R_X86_64_TPOFF32`): the field, the thread-local, and the offset
    /// inside it.
    pub tls_refs: Vec<(u64, String, u64)>,
    /// Local-exec accesses to no known thread-local.
    pub unknown_tls_refs: usize,
    /// Where the code and data refer to those statics, when the library
    /// was linked with `--emit-relocs` (the executable's are not needed).
    pub static_refs: Vec<StaticRef>,
    /// Statics referred to in a way reload cannot redirect (through the
    /// GOT, or an instruction whose target is ambiguous).
    pub unbindable: Vec<String>,
    /// The lowest `p_vaddr` of a loadable segment.
    pub first_vaddr: u64,
    /// Every symbol defined outside thread-local storage, by name: its
    /// address, or `None` when several symbols share the name.
    pub defined: HashMap<String, Option<u64>>,
    /// The symbols the image binds from shared libraries.
    pub imports: HashSet<String>,
}

/// A static's place in its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Static {
    pub addr: u64,
    pub size: u64,
}

/// A place that holds the address of a static, or its distance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRef {
    /// The field's address in the image.
    pub at: u64,
    /// A 32-bit `rip`-relative displacement, or a 64-bit address.
    pub pc_relative: bool,
    pub name: String,
}

const R_X86_64_PC32: u32 = 2;
const R_X86_64_TPOFF32: u32 = 23;
const R_X86_64_GOTPCREL: u32 = 9;
const R_X86_64_RELATIVE: u32 = 8;
const R_X86_64_GOTPCRELX: u32 = 41;
const R_X86_64_REX_GOTPCRELX: u32 = 42;

fn r_type(rel: &object::Relocation) -> Option<u32> {
    match rel.flags() {
        object::RelocationFlags::Elf { r_type } => Some(r_type),
        _ => None,
    }
}

fn is_rust_symbol(name: &str) -> bool {
    name.starts_with("_ZN") || name.starts_with("_R")
}

impl Image {
    pub fn read(path: &Path) -> Result<Image> {
        let data = crate::fs::read(path)?;
        Image::parse(&data).with_context(|| format!("failed to read ELF file `{}`", path.display()))
    }

    pub fn parse(data: &[u8]) -> Result<Image> {
        let file = object::File::parse(data)?;
        let mut image = Image {
            first_vaddr: file
                .segments()
                .map(|s| s.address())
                .min()
                .unwrap_or_default(),
            ..Image::default()
        };
        // Every defined symbol's address per section, to bound functions.
        let mut starts: BTreeMap<u64, ()> = BTreeMap::new();
        for sym in file.symbols() {
            if sym.is_definition() && sym.address() != 0 {
                starts.insert(sym.address(), ());
            }
        }
        for sym in file.symbols() {
            if !sym.is_definition() || matches!(sym.kind(), SymbolKind::Section | SymbolKind::File)
            {
                continue;
            }
            let Ok(name) = sym.name() else { continue };
            if name.is_empty() {
                continue;
            }
            image
                .defined
                .entry(name.to_owned())
                .and_modify(|a| {
                    if *a != Some(sym.address()) {
                        *a = None
                    }
                })
                .or_insert(Some(sym.address()));
        }
        image.imports = file
            .dynamic_symbols()
            .filter(|s| s.is_undefined())
            .filter_map(|s| s.name().ok().map(str::to_owned))
            .collect();
        for sym in file.symbols() {
            let Ok(name) = sym.name() else { continue };
            // `is_definition` leaves out thread-locals (`STT_TLS`).
            let defined =
                sym.is_definition() || (sym.kind() == SymbolKind::Tls && !sym.is_undefined());
            if !is_rust_symbol(name) || !defined {
                continue;
            }
            let Some(index) = sym.section_index() else {
                continue;
            };
            let section = file.section_by_index(index)?;
            match sym.kind() {
                SymbolKind::Text => {
                    let addr = sym.address();
                    let section_end = section.address() + section.size();
                    let next = starts
                        .range(addr + 1..)
                        .next()
                        .map_or(section_end, |(a, _)| (*a).min(section_end));
                    image
                        .functions
                        .entry(name.to_owned())
                        .or_default()
                        .push(Function {
                            addr,
                            room: next - addr,
                        });
                }
                SymbolKind::Data | SymbolKind::Tls => {
                    // `.data.rel.ro` is written only by the loader (then
                    // made read-only): statics without interior mutability.
                    let relro = section.name().is_ok_and(|n| n.starts_with(".data.rel.ro"));
                    let writable = !relro
                        && matches!(
                            section.kind(),
                            SectionKind::Data
                                | SectionKind::UninitializedData
                                | SectionKind::Tls
                                | SectionKind::UninitializedTls
                        );
                    if writable {
                        image.mutable_statics.push(name.to_owned());
                        if sym.kind() == SymbolKind::Tls {
                            image.thread_locals.insert(
                                name.to_owned(),
                                Static {
                                    addr: sym.address(),
                                    size: sym.size(),
                                },
                            );
                        }
                        if sym.kind() == SymbolKind::Data {
                            image.statics.insert(
                                name.to_owned(),
                                Static {
                                    addr: sym.address(),
                                    size: sym.size(),
                                },
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        image.mutable_statics.sort();
        image.tls = tls_template(data)?;
        image.find_static_refs(&file)?;
        image.find_tls_refs(&file)?;
        Ok(image)
    }

    /// The offset from the thread pointer of byte `offset` of the TLS
    /// template, for the executable's own block (TLS variant II: the main
    /// program's block ends at the thread pointer, placed as glibc's
    /// `_dl_determine_tlsoffset` places the first module).
    pub fn exe_tp_offset(&self, offset: u64) -> Option<i64> {
        let (vaddr, memsz, align) = self.tls?;
        let align = align.max(1);
        let firstbyte = (align - (vaddr & (align - 1))) & (align - 1);
        let block = (memsz - firstbyte).div_ceil(align) * align + firstbyte;
        Some(offset as i64 - block as i64)
    }

    fn find_tls_refs(&mut self, file: &object::File<'_>) -> Result<()> {
        let Some((tls_vaddr, _, _)) = self.tls else {
            return Ok(());
        };
        let by_offset: BTreeMap<u64, (u64, String)> = self
            .thread_locals
            .iter()
            .map(|(n, s)| (s.addr, (s.addr + s.size.max(1), n.clone())))
            .collect();
        for section in file.sections() {
            if section.kind() != SectionKind::Text {
                continue;
            }
            for (at, rel) in section.relocations() {
                if r_type(&rel) != Some(R_X86_64_TPOFF32) {
                    continue;
                }
                let object::RelocationTarget::Symbol(index) = rel.target() else {
                    continue;
                };
                let sym = file.symbol_by_index(index)?;
                // A section symbol holds an address, a TLS symbol an offset.
                let base = if sym.kind() == SymbolKind::Section {
                    sym.address().wrapping_sub(tls_vaddr)
                } else {
                    sym.address()
                };
                let offset = base.wrapping_add_signed(rel.addend());
                let found = by_offset
                    .range(..=offset)
                    .next_back()
                    .filter(|(_, (end, _))| offset < *end);
                match found {
                    Some((start, (_, name))) => {
                        self.tls_refs.push((at, name.clone(), offset - start));
                    }
                    None => self.unknown_tls_refs += 1,
                }
            }
        }
        Ok(())
    }

    fn find_static_refs(&mut self, file: &object::File<'_>) -> Result<()> {
        if self.statics.is_empty() {
            return Ok(());
        }
        let by_addr: BTreeMap<u64, (u64, String)> = self
            .statics
            .iter()
            .map(|(n, s)| (s.addr, (s.addr + s.size.max(1), n.clone())))
            .collect();
        // The static whose bytes hold `addr`.
        let static_at = |addr: u64| -> Option<&str> {
            let (_, (end, name)) = by_addr.range(..=addr).next_back()?;
            (addr < *end).then_some(name.as_str())
        };
        let mut refs = Vec::new();
        let mut unbindable = Vec::new();
        for section in file.sections() {
            if section.kind() != SectionKind::Text {
                continue;
            }
            for (at, rel) in section.relocations() {
                let object::RelocationTarget::Symbol(index) = rel.target() else {
                    continue;
                };
                let sym = file.symbol_by_index(index)?;
                match r_type(&rel) {
                    // `disp32` ends the instruction or is followed by an
                    // immediate of 1, 2 or 4 bytes: the static is at
                    // S + A + 4 + that length.
                    Some(R_X86_64_PC32) => {
                        let base = sym
                            .address()
                            .wrapping_add_signed(rel.addend())
                            .wrapping_add(4);
                        let hits: Vec<&str> = [0, 1, 2, 4]
                            .iter()
                            .filter_map(|k| static_at(base.wrapping_add(*k)))
                            .collect();
                        let Some(first) = hits.first() else { continue };
                        if hits.iter().any(|h| h != first) {
                            unbindable.push(first.to_string());
                            continue;
                        }
                        refs.push(StaticRef {
                            at,
                            pc_relative: true,
                            name: first.to_string(),
                        });
                    }
                    Some(R_X86_64_GOTPCREL | R_X86_64_GOTPCRELX | R_X86_64_REX_GOTPCRELX) => {
                        if let Ok(name) = sym.name()
                            && self.statics.contains_key(name)
                        {
                            unbindable.push(name.to_owned());
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(dynamic) = file.dynamic_relocations() {
            for (at, rel) in dynamic {
                if r_type(&rel) != Some(R_X86_64_RELATIVE) {
                    continue;
                }
                let target = rel.addend() as u64;
                if let Some(name) = static_at(target) {
                    refs.push(StaticRef {
                        at,
                        pc_relative: false,
                        name: name.to_owned(),
                    });
                }
            }
        }
        unbindable.sort();
        unbindable.dedup();
        self.static_refs = refs;
        self.unbindable = unbindable;
        Ok(())
    }
}

/// The `PT_TLS` segment: address, size in memory, alignment.
fn tls_template(data: &[u8]) -> Result<Option<(u64, u64, u64)>> {
    use object::read::elf::ProgramHeader;
    let Ok(file) = object::read::elf::ElfFile64::<object::Endianness>::parse(data) else {
        return Ok(None);
    };
    let endian = file.endian();
    Ok(file
        .elf_program_headers()
        .iter()
        .find(|ph| ph.p_type(endian) == object::elf::PT_TLS)
        .map(|ph| (ph.p_vaddr(endian), ph.p_memsz(endian), ph.p_align(endian))))
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub offset: u64,
    pub path: Option<PathBuf>,
}

pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let range = fields.next()?;
            let perms = fields.next()?.to_owned();
            let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
            let _dev = fields.next()?;
            let _inode = fields.next()?;
            let path = fields
                .next()
                .map(str::trim)
                .filter(|p| p.starts_with('/'))
                .map(PathBuf::from);
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                perms,
                offset,
                path,
            })
        })
        .collect()
}

pub fn maps(pid: i32) -> Result<Vec<Mapping>> {
    let path = format!("/proc/{pid}/maps");
    Ok(parse_maps(&crate::fs::read_to_string(Path::new(&path))?))
}

/// The load bias of `file` in the process: what to add to its symbols'
/// addresses.
pub fn load_bias(maps: &[Mapping], file: &Path, first_vaddr: u64) -> Result<u64> {
    let file = file.canonicalize().unwrap_or_else(|_| file.to_owned());
    let Some(m) = maps
        .iter()
        .filter(|m| m.path.as_deref() == Some(file.as_path()) && m.offset == 0)
        .min_by_key(|m| m.start)
    else {
        bail!("`{}` is not loaded in the program", file.display());
    };
    Ok(m.start - (first_vaddr & !0xfff))
}

/// A free, page-aligned range of `len` bytes within `reach` of `near`,
/// from the process's map.
pub fn free_range_near(maps: &[Mapping], near: u64, len: u64, reach: u64) -> Option<u64> {
    let mut sorted: Vec<(u64, u64)> = maps.iter().map(|m| (m.start, m.end)).collect();
    sorted.sort();
    let lo = near.saturating_sub(reach).max(0x10000);
    let hi = near.saturating_add(reach);
    let mut best: Option<u64> = None;
    let mut consider = |gap_start: u64, gap_end: u64| {
        // Stay a page away from neighbours (a stack or heap may grow).
        let gap_start = (gap_start + 0x10000 + 0xfff) & !0xfff;
        let gap_end = gap_end.saturating_sub(0x10000) & !0xfff;
        if gap_end <= gap_start || gap_end - gap_start < len {
            return;
        }
        // The address in the gap nearest to `near`.
        let cand = if near < gap_start {
            gap_start
        } else if near + len > gap_end {
            gap_end - len
        } else {
            (near & !0xfff).max(gap_start)
        };
        if cand < lo || cand + len > hi {
            return;
        }
        if best.is_none_or(|b| cand.abs_diff(near) < b.abs_diff(near)) {
            best = Some(cand);
        }
    };
    let mut prev_end = 0x10000;
    for (start, end) in sorted {
        if start > prev_end {
            consider(prev_end, start);
        }
        prev_end = prev_end.max(end);
    }
    best
}

/// A dynamic symbol of a shared library, by name.
pub fn dynamic_symbol(path: &Path, name: &str) -> Result<u64> {
    let data = crate::fs::read(path)?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("failed to read ELF file `{}`", path.display()))?;
    file.dynamic_symbols()
        .filter(|s| s.is_definition() && s.name() == Ok(name))
        .map(|s| s.address())
        .next()
        .with_context(|| format!("`{}` does not define `{name}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0000000-55d0c0005000 r--p 00000000 08:01 123 /t/app
55d0c0005000-55d0c000f000 r-xp 00005000 08:01 123 /t/app
55d0c2000000-55d0c2021000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000100000 r-xp 00000000 08:01 9 /t/libc.so.6
";

    #[test]
    fn maps_lines_parse() {
        let maps = parse_maps(MAPS);
        assert_eq!(maps.len(), 4);
        assert_eq!(maps[1].start, 0x55d0c0005000);
        assert_eq!(maps[1].offset, 0x5000);
        assert_eq!(maps[1].path.as_deref(), Some(Path::new("/t/app")));
        assert_eq!(maps[2].path, None);
        assert_eq!(
            load_bias(&maps, Path::new("/t/app"), 0).unwrap(),
            0x55d0c0000000
        );
    }

    #[test]
    fn free_ranges_stay_within_reach() {
        let maps = parse_maps(MAPS);
        let near = 0x55d0c0005000;
        let at = free_range_near(&maps, near, 0x1000, 1 << 31).unwrap();
        assert!(at.abs_diff(near) < 1 << 31);
        assert!(maps.iter().all(|m| at + 0x1000 <= m.start || at >= m.end));
    }
}
