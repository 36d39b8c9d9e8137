//! The layouts a patch must keep, from debug info: every type's size,
//! alignment, fields (name, offset, type) and enum variants, and every
//! function's parameter and return types. Old and new code are compared
//! before anything is patched.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use gimli::{AttributeValue, DebuggingInformationEntry, EndianSlice, LittleEndian, Unit};
use object::{Object, ObjectSection};

type R<'a> = EndianSlice<'a, LittleEndian>;

/// What old and new code must agree on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Layouts {
    /// Qualified type name -> its descriptions (one per definition seen).
    pub types: BTreeMap<String, BTreeSet<String>>,
    /// Linkage (mangled) name -> parameter and return types, as each
    /// place that describes it does (a declaration may leave some out).
    pub functions: BTreeMap<String, BTreeSet<String>>,
    /// Linkage (mangled) name of a static -> its type.
    pub statics: BTreeMap<String, BTreeSet<String>>,
}

/// Why a patch cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Type(String),
    Signature(String),
    StaticType(String),
    NoTypeInfo,
}

impl Layouts {
    pub fn read(path: &Path) -> Result<Layouts> {
        let data = crate::fs::read(path)?;
        Layouts::parse(&data)
            .with_context(|| format!("failed to read debug info of `{}`", path.display()))
    }

    pub fn parse(data: &[u8]) -> Result<Layouts> {
        let file = object::File::parse(data)?;
        let load = |id: gimli::SectionId| -> Result<Cow<'_, [u8]>> {
            Ok(match file.section_by_name(id.name()) {
                Some(s) => s.uncompressed_data()?,
                None => Cow::Borrowed(&[]),
            })
        };
        let sections = gimli::DwarfSections::load(load)?;
        let dwarf = sections.borrow(|s| EndianSlice::new(s, LittleEndian));
        let mut out = Layouts::default();
        let mut units = dwarf.units();
        while let Some(header) = units.next()? {
            let unit = dwarf.unit(header)?;
            let mut tree = unit.entries_tree(None)?;
            let root = tree.root()?;
            let mut path = Vec::new();
            walk(&dwarf, &unit, root, &mut path, &mut out)?;
        }
        Ok(out)
    }

    /// Adds what loaded new code describes: types, functions and statics
    /// that only it has (what both have was found equal).
    pub fn merge(&mut self, new: Layouts) {
        for (name, descriptions) in new.types {
            self.types.entry(name).or_default().extend(descriptions);
        }
        for (name, signatures) in new.functions {
            self.functions.entry(name).or_default().extend(signatures);
        }
        for (name, types) in new.statics {
            self.statics.entry(name).or_default().extend(types);
        }
    }

    /// The first thing `new` changed that live values or callers of the
    /// old code depend on. Types and functions only one side has are fine:
    /// no old value has a new type, no old caller calls a new function.
    pub fn mismatch(&self, new: &Layouts) -> Option<Mismatch> {
        // New code comes from the same command as the old; a patch of a
        // few functions may well describe no structure of its own.
        if self.types.is_empty() {
            return Some(Mismatch::NoTypeInfo);
        }
        // A changed type shows in every generic type holding it: name the
        // one the user wrote (no generic arguments) when there is one.
        // New code may describe a type in fewer places than the old (a
        // patch holds only what changed), never otherwise.
        let changed: Vec<&String> = self
            .types
            .iter()
            .filter(|(name, old)| new.types.get(*name).is_some_and(|new| !new.is_subset(old)))
            .map(|(name, _)| name)
            .collect();
        if let Some(name) = changed
            .iter()
            .find(|n| !n.contains('<'))
            .or(changed.first())
        {
            return Some(Mismatch::Type((*name).clone()));
        }
        for (name, old) in &self.statics {
            if new.statics.get(name).is_some_and(|new| !new.is_subset(old)) {
                return Some(Mismatch::StaticType(name.clone()));
            }
        }
        for (name, old) in &self.functions {
            if new
                .functions
                .get(name)
                .is_some_and(|new| !new.is_subset(old))
            {
                return Some(Mismatch::Signature(name.clone()));
            }
        }
        None
    }
}

fn name_of(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &Unit<R<'_>>,
    e: &DebuggingInformationEntry<'_, '_, R<'_>>,
) -> Result<Option<String>> {
    match e.attr_value(gimli::DW_AT_name)? {
        Some(v) => Ok(Some(
            dwarf.attr_string(unit, v)?.to_string_lossy().into_owned(),
        )),
        None => Ok(None),
    }
}

fn walk(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &Unit<R<'_>>,
    node: gimli::EntriesTreeNode<'_, '_, '_, R<'_>>,
    path: &mut Vec<String>,
    out: &mut Layouts,
) -> Result<()> {
    let entry = node.entry().clone();
    let tag = entry.tag();
    let name = name_of(dwarf, unit, &entry)?;
    match tag {
        gimli::DW_TAG_structure_type
        | gimli::DW_TAG_union_type
        | gimli::DW_TAG_enumeration_type
            if entry.attr_value(gimli::DW_AT_declaration)?.is_none() =>
        {
            let qualified = qualify(path, name.as_deref().unwrap_or("?"));
            let mut desc = describe(dwarf, unit, entry.offset(), 0)?;
            if name.as_deref().is_some_and(is_coroutine) {
                desc.push_str(&await_points(unit, entry.offset())?);
            }
            out.types.entry(qualified).or_default().insert(desc);
            return Ok(());
        }
        gimli::DW_TAG_subprogram => {
            if let Some(linkage) = symbol_name(dwarf, unit, &entry, name.as_deref())? {
                let sig = signature(dwarf, unit, entry.offset())?;
                out.functions.entry(linkage).or_default().insert(sig);
            }
            return Ok(());
        }
        gimli::DW_TAG_variable => {
            if let Some(linkage) = symbol_name(dwarf, unit, &entry, name.as_deref())? {
                out.statics
                    .entry(linkage)
                    .or_default()
                    .insert(type_name(dwarf, unit, &entry, 0)?);
            }
            return Ok(());
        }
        _ => {}
    }
    let pushed = tag == gimli::DW_TAG_namespace;
    if pushed {
        path.push(name.unwrap_or_default());
    }
    let mut children = node.children();
    while let Some(child) = children.next()? {
        walk(dwarf, unit, child, path, out)?;
    }
    if pushed {
        path.pop();
    }
    Ok(())
}

/// The state machine of an `async fn`, an `async` block or a coroutine.
fn is_coroutine(name: &str) -> bool {
    ["{async_fn_env#", "{async_block_env#", "{coroutine_env#"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Where a coroutine's suspend points are, in lines from its start: the
/// line of each variant past the first three (unresumed, returned,
/// panicked), minus the unresumed one's. Moving an `.await` keeps the
/// state machine's layout but resumes old states at other places, so it
/// counts as a change; an edit above the function does not.
fn await_points(unit: &Unit<R<'_>>, off: gimli::UnitOffset) -> Result<String> {
    let mut lines: BTreeMap<u64, u64> = BTreeMap::new();
    let mut tree = unit.entries_tree(Some(off))?;
    let mut parts = tree.root()?.children();
    while let Some(part) = parts.next()? {
        if part.entry().tag() != gimli::DW_TAG_variant_part {
            continue;
        }
        let mut variants = part.children();
        while let Some(variant) = variants.next()? {
            let Some(discr) = variant
                .entry()
                .attr_value(gimli::DW_AT_discr_value)?
                .and_then(|v| v.udata_value())
            else {
                continue;
            };
            let mut members = variant.children();
            while let Some(m) = members.next()? {
                if let Some(line) = m
                    .entry()
                    .attr_value(gimli::DW_AT_decl_line)?
                    .and_then(|v| v.udata_value())
                {
                    lines.insert(discr, line);
                }
            }
        }
    }
    let Some(&start) = lines.get(&0) else {
        return Ok(String::new());
    };
    let points: Vec<String> = lines
        .range(3..)
        .map(|(d, l)| format!("{d}:{}", *l as i64 - start as i64))
        .collect();
    Ok(format!("@awaits[{}]", points.join(",")))
}

fn qualify(path: &[String], name: &str) -> String {
    let mut s = path.join("::");
    if !s.is_empty() {
        s.push_str("::");
    }
    s.push_str(name);
    s
}

fn udata(e: &DebuggingInformationEntry<'_, '_, R<'_>>, at: gimli::DwAt) -> Result<String> {
    Ok(match e.attr_value(at)? {
        Some(AttributeValue::Udata(v)) => v.to_string(),
        Some(AttributeValue::Data1(v)) => v.to_string(),
        Some(AttributeValue::Data2(v)) => v.to_string(),
        Some(AttributeValue::Data4(v)) => v.to_string(),
        Some(AttributeValue::Data8(v)) => v.to_string(),
        Some(AttributeValue::Sdata(v)) => v.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    })
}

/// A type's name as a field or parameter refers to it.
fn type_name(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &Unit<R<'_>>,
    e: &DebuggingInformationEntry<'_, '_, R<'_>>,
    depth: usize,
) -> Result<String> {
    let Some(AttributeValue::UnitRef(off)) = e.attr_value(gimli::DW_AT_type)? else {
        return Ok("()".into());
    };
    let t = unit.entry(off)?;
    if let Some(n) = name_of(dwarf, unit, &t)? {
        return Ok(n);
    }
    if depth > 8 {
        return Ok("...".into());
    }
    // Unnamed (arrays, some pointers): tag, size, element.
    let mut s = format!(
        "{}/{}/{}",
        t.tag(),
        udata(&t, gimli::DW_AT_byte_size)?,
        type_name(dwarf, unit, &t, depth + 1)?
    );
    let mut tree = unit.entries_tree(Some(off))?;
    let mut children = tree.root()?.children();
    while let Some(c) = children.next()? {
        let c = c.entry();
        if c.tag() == gimli::DW_TAG_subrange_type {
            s.push_str(&format!("[{}]", udata(c, gimli::DW_AT_count)?));
        }
    }
    Ok(s)
}

/// Size, alignment, and each member, variant and discriminant with its
/// offset and type, recursively (methods left out).
fn describe(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &Unit<R<'_>>,
    off: gimli::UnitOffset,
    depth: usize,
) -> Result<String> {
    let e = unit.entry(off)?;
    let mut s = format!(
        "{}:{}:{}:{}:{}:{}:{}",
        e.tag(),
        name_of(dwarf, unit, &e)?.unwrap_or_default(),
        udata(&e, gimli::DW_AT_byte_size)?,
        udata(&e, gimli::DW_AT_alignment)?,
        udata(&e, gimli::DW_AT_data_member_location)?,
        udata(&e, gimli::DW_AT_discr_value)?,
        udata(&e, gimli::DW_AT_const_value)?,
    );
    if e.attr_value(gimli::DW_AT_type)?.is_some() {
        s.push_str(&format!(":{}", type_name(dwarf, unit, &e, 0)?));
    }
    if depth > 16 {
        return Ok(s);
    }
    let mut tree = unit.entries_tree(Some(off))?;
    let mut children = tree.root()?.children();
    let mut parts = Vec::new();
    while let Some(c) = children.next()? {
        if c.entry().tag() == gimli::DW_TAG_subprogram {
            continue;
        }
        parts.push(describe(dwarf, unit, c.entry().offset(), depth + 1)?);
    }
    if !parts.is_empty() {
        s.push('{');
        s.push_str(&parts.join(","));
        s.push('}');
    }
    Ok(s)
}

fn signature(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &Unit<R<'_>>,
    off: gimli::UnitOffset,
) -> Result<String> {
    let e = unit.entry(off)?;
    let mut s = format!("-> {}", type_name(dwarf, unit, &e, 0)?);
    let mut tree = unit.entries_tree(Some(off))?;
    let mut children = tree.root()?.children();
    while let Some(c) = children.next()? {
        if c.entry().tag() == gimli::DW_TAG_formal_parameter {
            s.push_str(&format!(", {}", type_name(dwarf, unit, c.entry(), 0)?));
        }
    }
    Ok(s)
}

/// The symbol a function or static is linked by: its linkage (mangled)
/// name, or, for one exported under its own name (`#[no_mangle]`), that
/// name. `None` for what no symbol names (a local).
fn symbol_name(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &Unit<R<'_>>,
    entry: &DebuggingInformationEntry<'_, '_, R<'_>>,
    name: Option<&str>,
) -> Result<Option<String>> {
    if let Some(v) = entry.attr_value(gimli::DW_AT_linkage_name)? {
        return Ok(Some(
            dwarf.attr_string(unit, v)?.to_string_lossy().into_owned(),
        ));
    }
    let external = matches!(
        entry.attr_value(gimli::DW_AT_external)?,
        Some(AttributeValue::Flag(true))
    );
    Ok(name.filter(|_| external).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layouts in the debug info of `src`, compiled into the program
    /// `t` as a debug build compiles it (a linked file, as reloads read:
    /// an object's string references are relocations still to apply).
    fn layouts(src: &str) -> Layouts {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.rs"),
            format!("{src}\nfn main() {{ println!(\"{{}}\", run()); }}\n"),
        )
        .unwrap();
        let out = dir.path().join("t");
        let status =
            std::process::Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
                .args(["--crate-name", "t", "--crate-type", "bin", "--edition=2021"])
                .args(["-C", "debuginfo=2", "-C", "codegen-units=1", "-o"])
                .arg(&out)
                .arg("main.rs")
                .current_dir(dir.path())
                .status()
                .unwrap();
        assert!(status.success());
        Layouts::read(&out).unwrap()
    }

    /// A program with a struct, an exported function and static (their
    /// names do not change with their types, as mangled ones would) and
    /// `more`, each used so that its debug info is emitted.
    fn lib(fields: &str, param: &str, stat: &str, more: &str) -> String {
        format!(
            "pub struct State {{ {fields} }}\n\
             #[unsafe(no_mangle)]\n\
             pub static COUNT: {stat} = 0;\n\
             #[unsafe(no_mangle)]\n\
             #[inline(never)]\n\
             pub extern \"C\" fn step(by: {param}) -> {param} {{ by }}\n\
             {more}\n\
             pub fn run() -> u64 {{\n\
             \x20   let s = std::hint::black_box(State {{ n: 1, ..unsafe {{ std::mem::zeroed() }} }});\n\
             \x20   s.n + step(1) as u64 + COUNT as u64 + extra()\n\
             }}\n"
        )
    }

    const NO_MORE: &str = "fn extra() -> u64 { 0 }";

    #[test]
    fn the_same_code_has_the_same_layouts() {
        let old = layouts(&lib("n: u64, m: u32", "u32", "u32", NO_MORE));
        let new = layouts(&lib("n: u64, m: u32", "u32", "u32", NO_MORE));
        assert!(old.types.contains_key("t::State"), "{:?}", old.types.keys());
        assert_eq!(old.mismatch(&new), None);
    }

    #[test]
    fn a_changed_field_type_or_a_new_field_is_a_layout_change() {
        let old = layouts(&lib("n: u64, m: u32", "u32", "u32", NO_MORE));
        for fields in [
            "n: u64, m: u64",
            "n: u64, m: u32, extra: u8",
            "m: u32, n: u64",
        ] {
            let new = layouts(&lib(fields, "u32", "u32", NO_MORE));
            assert_eq!(
                old.mismatch(&new),
                Some(Mismatch::Type("t::State".into())),
                "{fields}"
            );
        }
    }

    #[test]
    fn a_changed_signature_or_static_type_is_named() {
        let old = layouts(&lib("n: u64, m: u32", "u32", "u32", NO_MORE));
        let new = layouts(&lib("n: u64, m: u32", "u64", "u32", NO_MORE));
        assert_eq!(old.mismatch(&new), Some(Mismatch::Signature("step".into())));
        let new = layouts(&lib("n: u64, m: u32", "u32", "u64", NO_MORE));
        assert_eq!(
            old.mismatch(&new),
            Some(Mismatch::StaticType("COUNT".into()))
        );
    }

    #[test]
    fn what_only_new_code_has_is_fine_and_is_merged() {
        let mut old = layouts(&lib("n: u64, m: u32", "u32", "u32", NO_MORE));
        let added = |ty: &str| {
            format!(
                "pub struct Added {{ pub a: {ty} }}\n\
                 fn extra() -> u64 {{ std::hint::black_box(Added {{ a: 1 }}).a as u64 }}"
            )
        };
        let new = layouts(&lib("n: u64, m: u32", "u32", "u32", &added("u8")));
        assert_eq!(old.mismatch(&new), None);
        old.merge(new);
        assert!(old.types.contains_key("t::Added"), "{:?}", old.types.keys());
        // Once merged, a later change of it counts.
        let later = layouts(&lib("n: u64, m: u32", "u32", "u32", &added("u16")));
        assert_eq!(
            old.mismatch(&later),
            Some(Mismatch::Type("t::Added".into()))
        );
    }

    #[test]
    fn code_without_debug_info_cannot_be_compared() {
        assert_eq!(
            Layouts::default().mismatch(&Layouts::default()),
            Some(Mismatch::NoTypeInfo)
        );
    }
}
