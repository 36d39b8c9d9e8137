//! What an rlib holds, read in one pass, and a library's rlib written with
//! the interface (metadata) of one compile and the code (objects) of
//! another.
//!
//! An rlib is an ar archive: rustc's metadata in the member `lib.rmeta`,
//! then the crate's object files, with a symbol table the linker reads.
//! Dependents compile against the metadata only; a link takes the objects.
//! After an edit no dependent can see, the library keeps the metadata its
//! dependents were compiled against (so every later compile sees one
//! consistent set of crate hashes) and takes the new compile's objects
//! (whose symbols have the same names).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The member rustc keeps a library's metadata in.
pub const METADATA_MEMBER: &str = "lib.rmeta";

/// What an rlib's objects hold that the cutoff and the shared libraries
/// need, read in one pass over the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlibFacts {
    /// The global symbols they define, sorted.
    pub defined: Vec<String>,
    /// The symbols they use without defining (from other crates, or the
    /// executable), sorted.
    pub undefined: Vec<String>,
    /// Why the rlib cannot be a shared library of its own: it takes part
    /// in a list the linker gathers from every object of the program (a
    /// section named as a C identifier, framed by `__start_`/`__stop_`
    /// symbols: `linkme`'s distributed slices), which a shared library
    /// would split from the executable's part.
    pub gathered: Option<String>,
    /// The hash of its metadata: the interface dependents were compiled
    /// against. Two rlibs with one interface differ in bodies alone (the
    /// cutoff kept the metadata, [`write_with_metadata`]); a program
    /// compiled against one may run the other's code.
    #[serde(default)]
    pub interface: String,
}

/// The members of the archive `data`, by name, in order.
fn members(data: &[u8]) -> Result<Vec<(String, &[u8])>> {
    let archive = object::read::archive::ArchiveFile::parse(data).context("not an archive")?;
    let mut out = Vec::new();
    for member in archive.members() {
        let member = member?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        out.push((name, member.data(data)?));
    }
    Ok(out)
}

pub fn facts(rlib: &Path) -> Result<RlibFacts> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let data = crate::fs::read(rlib)?;
    let members = members(&data).with_context(|| format!("`{}` is not an rlib", rlib.display()))?;
    let mut defined = BTreeSet::new();
    let mut used = BTreeSet::new();
    let mut gathered = None;
    let mut interface = String::new();
    for (name, bytes) in members {
        if name == METADATA_MEMBER {
            interface = super::record::hash(bytes);
        }
        if !name.ends_with(".o") {
            continue;
        }
        let Ok(file) = object::File::parse(bytes) else {
            continue;
        };
        for section in file.sections() {
            let name = section.name().unwrap_or_default();
            let c_identifier = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if c_identifier && gathered.is_none() {
                gathered = Some(format!("has the linker gather section `{name}`"));
            }
        }
        for sym in file.symbols() {
            let Ok(name) = sym.name() else { continue };
            if (name.starts_with("__start_") || name.starts_with("__stop_")) && gathered.is_none() {
                gathered = Some(format!("uses `{name}`"));
            }
            if sym.is_global() && sym.is_definition() {
                defined.insert(name.to_owned());
            } else if sym.is_undefined() && !name.is_empty() {
                used.insert(name.to_owned());
            }
        }
    }
    let undefined = used.difference(&defined).cloned().collect();
    Ok(RlibFacts {
        defined: defined.into_iter().collect(),
        undefined,
        gathered,
        interface,
    })
}

/// The metadata an rlib holds.
pub fn metadata(rlib: &Path) -> Result<Vec<u8>> {
    let data = crate::fs::read(rlib)?;
    let members = members(&data).with_context(|| format!("`{}` is not an rlib", rlib.display()))?;
    match members.into_iter().find(|(n, _)| n == METADATA_MEMBER) {
        Some((_, bytes)) => Ok(bytes.to_vec()),
        None => bail!("`{}` holds no metadata", rlib.display()),
    }
}

/// Writes `out`: the rlib `code` with its metadata replaced by `metadata`,
/// every other member as it is, and a symbol table made as rustc makes
/// it. Written beside `out` and renamed over it.
pub fn write_with_metadata(code: &Path, metadata: &[u8], out: &Path) -> Result<()> {
    use ar_archive_writer::{ArchiveKind, DEFAULT_OBJECT_READER, NewArchiveMember};
    let data = crate::fs::read(code)?;
    let members = members(&data).with_context(|| format!("`{}` is not an rlib", code.display()))?;
    if !members.iter().any(|(n, _)| n == METADATA_MEMBER) {
        bail!("`{}` holds no metadata", code.display());
    }
    let new: Vec<NewArchiveMember<'_>> = members
        .iter()
        .map(|(name, bytes)| {
            let bytes: &[u8] = if name == METADATA_MEMBER {
                metadata
            } else {
                bytes
            };
            NewArchiveMember::new(bytes, &DEFAULT_OBJECT_READER, name.clone())
        })
        .collect();
    let mut buf = std::io::Cursor::new(Vec::with_capacity(data.len() + metadata.len()));
    ar_archive_writer::write_archive_to_stream(&mut buf, &new, ArchiveKind::Gnu, false, None)
        .with_context(|| format!("failed to write an rlib for `{}`", out.display()))?;
    crate::fs::write_atomic(out, buf.get_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real rlib from rustc: `a` with `f` returning `n`.
    fn compile(dir: &Path, n: u32) -> std::path::PathBuf {
        let src = dir.join("a.rs");
        std::fs::write(
            &src,
            format!("pub fn f() -> u32 {{ {n} }}\npub fn g() -> u32 {{ f() + 1 }}\n"),
        )
        .unwrap();
        let out = dir.join(format!("out{n}"));
        let ok = std::process::Command::new(crate::cargo::rustc_program())
            .args(["--crate-type=lib", "--crate-name=a", "--edition=2021"])
            .args(["-C", "metadata=t", "--emit=link", "--out-dir"])
            .arg(&out)
            .arg(&src)
            .status()
            .unwrap();
        assert!(ok.success());
        out.join("liba.rlib")
    }

    #[test]
    fn a_library_takes_one_compiles_metadata_and_anothers_code() {
        let dir = tempfile::tempdir().unwrap();
        let old = compile(dir.path(), 1);
        let new = compile(dir.path(), 2);
        let old_meta = metadata(&old).unwrap();
        assert_ne!(
            old_meta,
            metadata(&new).unwrap(),
            "a body is in the crate hash"
        );
        let mixed = dir.path().join("mixed.rlib");
        write_with_metadata(&new, &old_meta, &mixed).unwrap();
        assert_eq!(metadata(&mixed).unwrap(), old_meta);
        // The code is the new compile's, with the same symbols; the
        // interface is the old one's.
        let (mixed_facts, new_facts) = (facts(&mixed).unwrap(), facts(&new).unwrap());
        assert_eq!(mixed_facts.defined, new_facts.defined);
        assert_eq!(mixed_facts.undefined, new_facts.undefined);
        assert_eq!(mixed_facts.interface, facts(&old).unwrap().interface);
        assert_ne!(mixed_facts.interface, new_facts.interface);
        let objects = |p: &Path| {
            let data = std::fs::read(p).unwrap();
            members(&data)
                .unwrap()
                .into_iter()
                .filter(|(n, _)| n.ends_with(".o"))
                .map(|(n, b)| (n, b.to_vec()))
                .collect::<Vec<_>>()
        };
        assert_eq!(objects(&mixed), objects(&new));
        assert!(
            facts(&mixed)
                .unwrap()
                .defined
                .iter()
                .any(|s| s.contains("1f"))
        );
    }
}
