//! What reload reads from ELF files and from `/proc/PID/maps`: the
//! functions and writable statics of a crate's code, and where each file
//! sits in the running process.

use std::collections::BTreeMap;
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
    /// The lowest `p_vaddr` of a loadable segment.
    pub first_vaddr: u64,
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
            let Ok(name) = sym.name() else { continue };
            if !is_rust_symbol(name) || !sym.is_definition() {
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
                    }
                }
                _ => {}
            }
        }
        image.mutable_statics.sort();
        Ok(image)
    }
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
