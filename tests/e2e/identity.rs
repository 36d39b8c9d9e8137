//! One of everything across the bundle's libraries: the libraries bind
//! calls to their own functions at link time (`-Bsymbolic-functions`),
//! which must leave a program exactly one of each static, thread-local and
//! `TypeId`, and one address per function, whichever library or member
//! looks. `ident-shared` holds them; `ident-user` (another library of the
//! bundle, since only `ident-app` uses it) and `ident-app` reach them.

use std::collections::BTreeMap;
use std::path::Path;

use object::{Object, ObjectSymbol, ObjectSymbolTable, RelocationTarget};

use crate::support::*;

const SHARED: &str = r#"
use std::any::TypeId;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

pub static COUNTER: AtomicUsize = AtomicUsize::new(0);
pub struct Marker;
thread_local! { pub static LOCAL: Cell<u32> = const { Cell::new(0) }; }

pub fn bump() -> usize { COUNTER.fetch_add(1, SeqCst) + 1 }
pub fn counter_addr() -> usize { &COUNTER as *const AtomicUsize as usize }
pub fn marker_id() -> TypeId { TypeId::of::<Marker>() }
pub fn hook() {}
pub fn hook_addr() -> usize { hook as fn() as usize }
/// Instantiated in each crate that calls it; every copy shares one `N`.
pub fn calls<T: 'static>() -> (usize, TypeId) {
    static N: AtomicUsize = AtomicUsize::new(0);
    (N.fetch_add(1, SeqCst) + 1, TypeId::of::<T>())
}
"#;

const USER: &str = r#"
use std::any::TypeId;

pub struct Local;
pub fn bump() -> usize { ident_shared::bump() }
pub fn counter_addr() -> usize { &ident_shared::COUNTER as *const _ as usize }
pub fn marker_id() -> TypeId { TypeId::of::<ident_shared::Marker>() }
pub fn hook_addr() -> usize { ident_shared::hook as fn() as usize }
pub fn calls() -> (usize, TypeId) { ident_shared::calls::<Local>() }
pub fn set_local(v: u32) { ident_shared::LOCAL.with(|l| l.set(v)) }
"#;

const APP: &str = r#"
use std::any::TypeId;
use std::sync::atomic::Ordering::SeqCst;

fn main() {
    assert_eq!(ident_shared::bump(), 1);
    assert_eq!(ident_user::bump(), 2);
    assert_eq!(ident_shared::COUNTER.load(SeqCst), 2);
    let addr = &ident_shared::COUNTER as *const _ as usize;
    assert_eq!(addr, ident_shared::counter_addr());
    assert_eq!(addr, ident_user::counter_addr());
    let id = TypeId::of::<ident_shared::Marker>();
    assert_eq!(id, ident_shared::marker_id());
    assert_eq!(id, ident_user::marker_id());
    let hook = ident_shared::hook as fn() as usize;
    assert_eq!(hook, ident_shared::hook_addr());
    assert_eq!(hook, ident_user::hook_addr());
    let (first, _) = ident_shared::calls::<u8>();
    let (second, user_type) = ident_user::calls();
    assert_eq!(second, first + 1);
    assert_eq!(user_type, TypeId::of::<ident_user::Local>());
    ident_user::set_local(7);
    assert_eq!(ident_shared::LOCAL.with(|l| l.get()), 7);
    println!("one of each");
}
"#;

fn identity_project() -> Project {
    project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"app\", \"other\"]\nresolver = \"2\"\n\n\
             [workspace.metadata.dyndev]\ninclude = [\"ident-shared\", \"ident-user\"]\n",
        )
        .file(
            "app/Cargo.toml",
            &manifest(
                "ident-app",
                "[dependencies]\nident-shared = { path = \"../../shared\" }\n\
                 ident-user = { path = \"../../user\" }\n",
            ),
        )
        .file("app/src/main.rs", APP)
        .file(
            "other/Cargo.toml",
            &manifest(
                "ident-other",
                "[dependencies]\nident-shared = { path = \"../../shared\" }\n",
            ),
        )
        .file(
            "other/src/main.rs",
            "fn main() { println!(\"{}\", ident_shared::bump()); }\n",
        )
        .file("../shared/Cargo.toml", &manifest("ident-shared", ""))
        .file("../shared/src/lib.rs", SHARED)
        .file(
            "../user/Cargo.toml",
            &manifest(
                "ident-user",
                "[dependencies]\nident-shared = { path = \"../shared\" }\n",
            ),
        )
        .file("../user/src/lib.rs", USER)
        .build()
}

/// Dynamic relocations of `lib` that the loader resolves by looking up a
/// function the library defines itself: `-Bsymbolic-functions` leaves none.
fn self_lookups(lib: &Path) -> Vec<String> {
    let data = std::fs::read(lib).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let table = file.dynamic_symbol_table().unwrap();
    let mut found = Vec::new();
    for (_, reloc) in file.dynamic_relocations().unwrap() {
        let RelocationTarget::Symbol(index) = reloc.target() else {
            continue;
        };
        let symbol = table.symbol_by_index(index).unwrap();
        if symbol.is_definition() && symbol.kind() == object::SymbolKind::Text {
            found.push(symbol.name().unwrap_or_default().to_owned());
        }
    }
    found
}

#[test]
fn one_static_thread_local_type_id_and_function_address_across_libraries() {
    let p = identity_project();
    p.dyndev(&["build", "-q"]).success();
    let out = p.dyndev(&["run", "-q", "-p", "ident-app"]).success();
    assert_eq!(out.stdout, "one of each\n", "{out}");

    // Two libraries of the bundle, loaded by the program.
    let app = p.bin("ident-app");
    let info = cargo_dyndev::testing::dynamic_info(&app).unwrap();
    let libs: Vec<&String> = info
        .needed
        .iter()
        .filter(|n| n.starts_with("libdyndev_bundle_"))
        .collect();
    let dir = info
        .runpath
        .iter()
        .map(std::path::PathBuf::from)
        .find(|d| libs.iter().all(|l| d.join(l).exists()))
        .expect("the program's run path holds its bundle libraries");
    let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut todo: Vec<String> = libs.iter().map(|l| (*l).clone()).collect();
    while let Some(l) = todo.pop() {
        if all.contains_key(&l) {
            continue;
        }
        let path = dir.join(&l);
        let needed = cargo_dyndev::testing::dynamic_info(&path).unwrap().needed;
        todo.extend(
            needed
                .into_iter()
                .filter(|n| n.starts_with("libdyndev_bundle_")),
        );
        all.insert(l, self_lookups(&path));
    }
    assert!(all.len() >= 2, "the bundle is split: {all:?}");
    for (lib, lookups) in &all {
        assert!(
            lookups.is_empty(),
            "{lib} looks up its own functions at load: {lookups:?}"
        );
    }
}
