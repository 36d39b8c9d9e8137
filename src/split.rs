//! Splitting the bundled crates into shared libraries by use, so that every
//! unit sees exactly its own dependencies. Pure: units and closures in,
//! libraries out.
//!
//! rustc considers every impl of every crate in a unit's crate graph, so a
//! unit that loaded a library holding a crate it does not depend on could
//! infer other types than under plain cargo. The rules:
//!
//! 1. A unit (a member's library, binary, test or example) uses the
//!    closure of its bundled direct dependencies (the roots), and
//!    everything the member libraries it depends on use.
//! 2. The *users* of a crate are the units whose use contains it. Crates
//!    with the same users share one library; each crate is in exactly one.
//! 3. A library loads every library whose users are a strict superset of
//!    its own. A crate's dependencies have at least its users, so every
//!    dependency of a library's crates is in the library itself or in one
//!    it loads, and nothing is linked twice.
//!
//! A unit then loads (through the facades of its roots) its roots'
//! libraries and the libraries those load: libraries whose users include
//! it, which hold only crates of its own closure, and all of them.

use std::collections::{BTreeMap, BTreeSet};

/// What one member unit uses, by unit stem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitUse {
    /// Bundled third-party units it names with `--extern`.
    pub roots: BTreeSet<String>,
    /// Member library units it names with `--extern`.
    pub member_libs: BTreeSet<String>,
}

/// One shared library of the split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibPlan {
    /// The crates linked into it, by unit stem.
    pub crates: BTreeSet<String>,
    /// The units that load it, by unit stem.
    pub users: BTreeSet<String>,
    /// The libraries it loads, as indices into [`Split::libs`]; always
    /// smaller than its own index.
    pub deps: Vec<usize>,
}

/// The libraries, in link order: each after every library it loads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub libs: Vec<LibPlan>,
}

impl Split {
    /// The index of the library holding `stem`.
    pub fn lib_of(&self, stem: &str) -> Option<usize> {
        self.libs.iter().position(|l| l.crates.contains(stem))
    }
}

/// Rule 1: the bundled crates each unit uses, through member libraries too.
pub fn uses(
    units: &BTreeMap<String, UnitUse>,
    closures: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeMap<String, BTreeSet<String>> {
    fn visit(
        unit: &str,
        units: &BTreeMap<String, UnitUse>,
        closures: &BTreeMap<String, BTreeSet<String>>,
        memo: &mut BTreeMap<String, BTreeSet<String>>,
        visiting: &mut BTreeSet<String>,
    ) -> BTreeSet<String> {
        if let Some(done) = memo.get(unit) {
            return done.clone();
        }
        let mut out = BTreeSet::new();
        let Some(u) = units.get(unit) else {
            return out;
        };
        if !visiting.insert(unit.to_owned()) {
            return out;
        }
        for root in &u.roots {
            if let Some(c) = closures.get(root) {
                out.extend(c.iter().cloned());
            }
        }
        for lib in &u.member_libs {
            out.extend(visit(lib, units, closures, memo, visiting));
        }
        visiting.remove(unit);
        memo.insert(unit.to_owned(), out.clone());
        out
    }
    let mut memo = BTreeMap::new();
    for unit in units.keys() {
        visit(unit, units, closures, &mut memo, &mut BTreeSet::new());
    }
    memo
}

/// Rules 2 and 3. `closures` maps each bundled root to its closure (the root
/// included); roots missing from it are not bundled.
pub fn split(
    units: &BTreeMap<String, UnitUse>,
    closures: &BTreeMap<String, BTreeSet<String>>,
) -> Split {
    let mut users: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let uses = uses(units, closures);
    for (unit, crates) in &uses {
        for c in crates {
            users.entry(c).or_default().insert(unit.clone());
        }
    }
    let mut by_users: BTreeMap<BTreeSet<String>, BTreeSet<String>> = BTreeMap::new();
    for (c, u) in users {
        by_users.entry(u).or_default().insert(c.to_owned());
    }
    let mut libs: Vec<LibPlan> = by_users
        .into_iter()
        .map(|(users, crates)| LibPlan {
            crates,
            users,
            deps: Vec::new(),
        })
        .collect();
    // A strict superset is larger, so it comes first.
    libs.sort_by(|a, b| {
        b.users
            .len()
            .cmp(&a.users.len())
            .then_with(|| a.crates.cmp(&b.crates))
    });
    for i in 0..libs.len() {
        let deps: Vec<usize> = (0..i)
            .filter(|&j| {
                libs[j].users.len() > libs[i].users.len()
                    && libs[j].users.is_superset(&libs[i].users)
            })
            .collect();
        libs[i].deps = deps;
    }
    Split { libs }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn unit(roots: &[&str], libs: &[&str]) -> UnitUse {
        UnitUse {
            roots: set(roots),
            member_libs: set(libs),
        }
    }

    /// The crates each unit's graph holds through the libraries it loads.
    fn graph_of(split: &Split, units: &BTreeMap<String, UnitUse>, unit: &str) -> BTreeSet<String> {
        let u = &units[unit];
        let mut loaded = BTreeSet::new();
        for root in &u.roots {
            if let Some(lib) = split.lib_of(root) {
                loaded.insert(lib);
                loaded.extend(split.libs[lib].deps.iter().copied());
            }
        }
        let mut out: BTreeSet<String> = loaded
            .into_iter()
            .flat_map(|l| split.libs[l].crates.iter().cloned())
            .collect();
        for lib in &u.member_libs {
            out.extend(graph_of(split, units, lib));
        }
        out
    }

    /// `a` (memchr), `b` (serde_json and `a`), `t`, a test of `a` with
    /// `proptest` as dev-dependency.
    fn workspace() -> (
        BTreeMap<String, UnitUse>,
        BTreeMap<String, BTreeSet<String>>,
    ) {
        let units = BTreeMap::from([
            ("liba".to_owned(), unit(&["memchr"], &[])),
            ("b".to_owned(), unit(&["serde_json"], &["liba"])),
            ("t".to_owned(), unit(&["memchr", "proptest"], &["liba"])),
        ]);
        let closures = BTreeMap::from([
            ("memchr".to_owned(), set(&["memchr"])),
            (
                "serde_json".to_owned(),
                set(&["serde_json", "memchr", "itoa", "serde_core"]),
            ),
            ("proptest".to_owned(), set(&["proptest", "rand", "memchr"])),
        ]);
        (units, closures)
    }

    #[test]
    fn every_unit_sees_exactly_its_closure() {
        let (units, closures) = workspace();
        let split = split(&units, &closures);
        assert_eq!(graph_of(&split, &units, "liba"), set(&["memchr"]));
        assert_eq!(
            graph_of(&split, &units, "b"),
            set(&["serde_json", "memchr", "itoa", "serde_core"])
        );
        assert_eq!(
            graph_of(&split, &units, "t"),
            set(&["proptest", "rand", "memchr"])
        );
    }

    #[test]
    fn each_crate_is_in_one_library_and_loads_come_first() {
        let (units, closures) = workspace();
        let split = split(&units, &closures);
        let mut seen = BTreeSet::new();
        for (i, lib) in split.libs.iter().enumerate() {
            for c in &lib.crates {
                assert!(seen.insert(c.clone()), "{c} is in two libraries");
            }
            assert!(lib.deps.iter().all(|&d| d < i));
        }
        assert_eq!(split.libs.len(), 3, "{split:#?}");
        assert_eq!(split.libs[0].crates, set(&["memchr"]));
        assert_eq!(split.libs[0].users, set(&["liba", "b", "t"]));
        let json = split.lib_of("serde_json").unwrap();
        assert_eq!(
            split.libs[json].crates,
            set(&["serde_json", "itoa", "serde_core"])
        );
        assert_eq!(split.libs[json].deps, vec![0]);
    }

    #[test]
    fn one_user_set_makes_one_library() {
        let units = BTreeMap::from([
            ("app".to_owned(), unit(&["log", "regex"], &[])),
            ("app_test".to_owned(), unit(&["log", "regex"], &[])),
        ]);
        let closures = BTreeMap::from([
            ("log".to_owned(), set(&["log"])),
            ("regex".to_owned(), set(&["regex", "memchr"])),
        ]);
        let split = split(&units, &closures);
        assert_eq!(split.libs.len(), 1);
        assert_eq!(split.libs[0].crates, set(&["log", "regex", "memchr"]));
    }

    #[test]
    fn a_crate_shared_by_two_roots_of_different_units_stands_alone() {
        // `x` uses r1 -> c, `y` uses r2 -> c: c has users {x, y} and no
        // root of its own, so its library names it itself.
        let units = BTreeMap::from([
            ("x".to_owned(), unit(&["r1"], &[])),
            ("y".to_owned(), unit(&["r2"], &[])),
        ]);
        let closures = BTreeMap::from([
            ("r1".to_owned(), set(&["r1", "c"])),
            ("r2".to_owned(), set(&["r2", "c"])),
        ]);
        let split = split(&units, &closures);
        assert_eq!(split.libs[0].crates, set(&["c"]));
        assert_eq!(split.libs[1].deps, vec![0]);
        assert_eq!(split.libs[2].deps, vec![0]);
        assert_eq!(graph_of(&split, &units, "x"), set(&["r1", "c"]));
    }

    #[test]
    fn member_library_cycles_end() {
        let units = BTreeMap::from([
            ("a".to_owned(), unit(&["r"], &["b"])),
            ("b".to_owned(), unit(&[], &["a"])),
        ]);
        let closures = BTreeMap::from([("r".to_owned(), set(&["r"]))]);
        let u = uses(&units, &closures);
        assert_eq!(u["a"], set(&["r"]));
    }
}
