//! Whether an edit of a library's source can change what a crate that
//! depends on it is compiled from.
//!
//! A dependent crate sees a library through its metadata: signatures,
//! types, constants, the MIR of generic and inline functions, spans. The
//! body of a function that is none of those reaches the dependent only as
//! a symbol it links to. So an edit confined to such bodies leaves the
//! dependent's compile as it was, and the dependent need not be compiled
//! again, only linked with the new library.
//!
//! The check is syntactic and errs towards "changed":
//!
//! - Outside the eligible bodies, every token must be the same, at the
//!   same line and column (spans reach dependents through generic code's
//!   panic locations and debug info).
//! - A body is eligible when its function has no type or const
//!   parameters, is neither `async` nor `const`, returns no `impl Trait`,
//!   carries only inert attributes (no `#[inline]`, no attribute macro),
//!   and sits at module level or in an inherent or trait `impl` without
//!   type parameters (never in a trait's default method).
//! - An edited body may not define items (an `impl` inside a body holds
//!   for the whole program), and its macro invocations must be the same
//!   as before, except for the standard library's, when nothing in the
//!   crate can shadow them, whose arguments are then checked alike.
//!
//! rustc still decides whether such a body is inlined across crates: it
//! infers it only without incremental compilation and with optimization,
//! which [`super::compiled_opaquely`] rules out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit::Visit;

/// How two versions of a source file differ, for a dependent crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Byte for byte the same.
    Same,
    /// Only the bodies of eligible functions changed.
    BodiesOnly,
    /// Something a dependent can see may have changed: why.
    Changed(String),
}

/// Names of the standard library's macros that expand to expressions
/// without items, whatever their arguments.
const STD_MACROS: &[&str] = &[
    "assert",
    "assert_eq",
    "assert_ne",
    "concat",
    "dbg",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "eprint",
    "eprintln",
    "format",
    "format_args",
    "matches",
    "panic",
    "print",
    "println",
    "stringify",
    "todo",
    "unimplemented",
    "unreachable",
    "write",
    "writeln",
];

/// Attributes that leave a function's code where it is compiled. Built-in
/// ones only: `test`, for one, is a macro a `use` can replace
/// (`use test_log::test`).
const INERT_ATTRIBUTES: &[&str] = &[
    "allow",
    "cfg",
    "cold",
    "deny",
    "deprecated",
    "doc",
    "expect",
    "forbid",
    "ignore",
    "must_use",
    "should_panic",
    "track_caller",
    "warn",
];

/// Whether the crate whose files are `files` lets a body's calls of
/// [`STD_MACROS`] mean the standard library's: no `#[macro_use]`, no
/// `macro_rules!` or `use` of one of their names, no glob import from
/// outside the crate.
pub fn std_macros_unshadowed<'a>(files: impl IntoIterator<Item = &'a str>) -> bool {
    files.into_iter().all(|text| {
        let Ok(file) = syn::parse_file(text) else {
            return false;
        };
        let mut scan = Shadowing::default();
        scan.visit_file(&file);
        !scan.found
    })
}

#[derive(Default)]
struct Shadowing {
    found: bool,
}

impl<'ast> Visit<'ast> for Shadowing {
    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        self.found |= a.path().is_ident("macro_use");
    }

    fn visit_item_macro(&mut self, m: &'ast syn::ItemMacro) {
        if let Some(name) = &m.ident {
            self.found |= is_std_macro(name);
        }
        syn::visit::visit_item_macro(self, m);
    }

    fn visit_use_name(&mut self, u: &'ast syn::UseName) {
        self.found |= is_std_macro(&u.ident);
    }

    fn visit_use_rename(&mut self, u: &'ast syn::UseRename) {
        self.found |= is_std_macro(&u.rename) || is_std_macro(&u.ident);
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if has_foreign_glob(&u.tree, true) {
            self.found = true;
        }
        syn::visit::visit_item_use(self, u);
    }
}

/// Whether `name` names one of the standard macros, raw (`r#println`) or
/// not: both are the same name to rustc.
fn is_std_macro(name: &syn::Ident) -> bool {
    use syn::ext::IdentExt;
    let name = name.unraw();
    STD_MACROS.iter().any(|s| name == s)
}

/// Whether a use tree holds a glob whose path leaves the crate.
fn has_foreign_glob(tree: &syn::UseTree, first: bool) -> bool {
    match tree {
        syn::UseTree::Path(p) => {
            let local = ["self", "super", "crate"].iter().any(|s| p.ident == s);
            if first && local {
                // Everything below stays in the crate.
                return false;
            }
            has_foreign_glob(&p.tree, false)
        }
        syn::UseTree::Glob(_) => true,
        syn::UseTree::Group(g) => g.items.iter().any(|t| has_foreign_glob(t, first)),
        syn::UseTree::Name(_) | syn::UseTree::Rename(_) => false,
    }
}

/// The crate's module files, from its root: the files `mod name;` items
/// load (`name.rs` or `name/mod.rs`), among `files` (normalized paths and
/// texts). `None` when a `#[path]` attribute or a file that does not parse
/// leaves the tree unknown.
pub fn module_files(root: &Path, files: &BTreeMap<PathBuf, String>) -> Option<BTreeSet<PathBuf>> {
    fn walk(
        path: &Path,
        dir: &Path,
        files: &BTreeMap<PathBuf, String>,
        out: &mut BTreeSet<PathBuf>,
    ) -> Option<()> {
        let file = syn::parse_file(files.get(path)?).ok()?;
        out.insert(path.to_path_buf());
        walk_items(&file.items, dir, files, out)
    }
    fn walk_items(
        items: &[syn::Item],
        dir: &Path,
        files: &BTreeMap<PathBuf, String>,
        out: &mut BTreeSet<PathBuf>,
    ) -> Option<()> {
        for item in items {
            match item {
                syn::Item::Mod(m) => {
                    if m.attrs.iter().any(|a| a.path().is_ident("path")) {
                        return None;
                    }
                    let name = m.ident.to_string();
                    match &m.content {
                        Some((_, inner)) => walk_items(inner, &dir.join(unraw(&name)), files, out)?,
                        None => declared(&name, dir, files, out)?,
                    }
                }
                // `cfg_time! { pub mod time; }`: modules declared through
                // a macro that passes items on, as tokio's are. The file
                // must be one rustc read.
                syn::Item::Macro(m) if m.ident.is_none() => {
                    walk_tokens(m.mac.tokens.clone(), dir, files, out)?;
                }
                _ => {}
            }
        }
        Some(())
    }
    fn unraw(name: &str) -> &str {
        name.strip_prefix("r#").unwrap_or(name)
    }
    /// `mod name;` in `dir`: its file, if rustc read one.
    fn declared(
        name: &str,
        dir: &Path,
        files: &BTreeMap<PathBuf, String>,
        out: &mut BTreeSet<PathBuf>,
    ) -> Option<()> {
        let name = unraw(name);
        let below = dir.join(name);
        let flat = crate::fs::normalize(&dir.join(format!("{name}.rs")));
        let nested = crate::fs::normalize(&below.join("mod.rs"));
        // Neither: configured out, or declared in a way not followed here.
        if files.contains_key(&flat) {
            walk(&flat, &below, files, out)?;
        } else if files.contains_key(&nested) {
            walk(&nested, &below, files, out)?;
        }
        Some(())
    }
    /// `mod name;` and `mod name { ... }` among a macro call's tokens.
    fn walk_tokens(
        stream: TokenStream,
        dir: &Path,
        files: &BTreeMap<PathBuf, String>,
        out: &mut BTreeSet<PathBuf>,
    ) -> Option<()> {
        let trees: Vec<TokenTree> = stream.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            match (&trees[i], trees.get(i + 1), trees.get(i + 2)) {
                (TokenTree::Punct(p), Some(TokenTree::Group(attr)), _)
                    if p.as_char() == '#'
                        && attr.delimiter() == Delimiter::Bracket
                        && attr
                            .stream()
                            .into_iter()
                            .next()
                            .is_some_and(|t| matches!(&t, TokenTree::Ident(i) if i == "path")) =>
                {
                    return None;
                }
                (TokenTree::Ident(kw), Some(TokenTree::Ident(name)), Some(next)) if kw == "mod" => {
                    match next {
                        TokenTree::Punct(p) if p.as_char() == ';' => {
                            declared(&name.to_string(), dir, files, out)?;
                        }
                        TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => {
                            walk_tokens(
                                g.stream(),
                                &dir.join(unraw(&name.to_string())),
                                files,
                                out,
                            )?;
                        }
                        _ => {}
                    }
                    i += 3;
                    continue;
                }
                (TokenTree::Group(g), _, _) => walk_tokens(g.stream(), dir, files, out)?,
                _ => {}
            }
            i += 1;
        }
        Some(())
    }
    let root = crate::fs::normalize(root);
    let dir = root.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut out = BTreeSet::new();
    walk(&root, &dir, files, &mut out)?;
    Some(out)
}

/// The files the file at `path` reads as data or code with `include!`,
/// `include_str!` or `include_bytes!`, resolved from its directory.
/// `None` when one names its file by anything but a string literal.
pub fn include_targets(path: &Path, text: &str) -> Option<BTreeSet<PathBuf>> {
    fn scan(stream: TokenStream, dir: &Path, out: &mut BTreeSet<PathBuf>) -> Option<()> {
        let trees: Vec<TokenTree> = stream.into_iter().collect();
        for (i, tree) in trees.iter().enumerate() {
            match tree {
                TokenTree::Ident(id)
                    if ["include", "include_str", "include_bytes"]
                        .iter()
                        .any(|n| id == n)
                        && matches!(trees.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '!') =>
                {
                    let Some(TokenTree::Group(args)) = trees.get(i + 2) else {
                        return None;
                    };
                    let lit: syn::LitStr = syn::parse2(args.stream()).ok()?;
                    out.insert(crate::fs::normalize(&dir.join(lit.value())));
                }
                TokenTree::Group(g) => scan(g.stream(), dir, out)?,
                _ => {}
            }
        }
        Some(())
    }
    let stream: TokenStream = text.parse().ok()?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut out = BTreeSet::new();
    scan(stream, dir, &mut out)?;
    Some(out)
}

/// Those of `files` that a macro call or attribute in `text` names by a
/// string literal (`source_hash!("src/schema.rs")`), as a path relative to
/// any directory: a macro that reads a file makes the file's bytes part of
/// what it expands to, wherever the file also sits in the module tree.
pub fn files_named_in_macros(text: &str, files: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    fn literals(stream: TokenStream, in_macro: bool, out: &mut Vec<String>) {
        let trees: Vec<TokenTree> = stream.into_iter().collect();
        for (i, tree) in trees.iter().enumerate() {
            match tree {
                TokenTree::Literal(l) if in_macro => {
                    if let Ok(s) = syn::parse_str::<syn::LitStr>(&l.to_string()) {
                        out.push(s.value());
                    }
                }
                TokenTree::Group(g) => {
                    // `name!(...)`, `#[attr(...)]`.
                    let call = i > 0
                        && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == '!' || p.as_char() == '#');
                    literals(g.stream(), in_macro || call, out);
                }
                _ => {}
            }
        }
    }
    let Ok(stream) = text.parse::<TokenStream>() else {
        return files.clone();
    };
    let mut named = Vec::new();
    literals(stream, false, &mut named);
    files
        .iter()
        .filter(|f| {
            named.iter().any(|n| {
                let n = Path::new(n.trim_start_matches("./"));
                !n.as_os_str().is_empty() && f.ends_with(n)
            })
        })
        .cloned()
        .collect()
}

/// Every identifier in a token stream.
pub fn collect_idents(stream: TokenStream, out: &mut BTreeSet<String>) {
    for tree in stream {
        match tree {
            TokenTree::Ident(i) => {
                let name = i.to_string();
                out.insert(name.strip_prefix("r#").map(str::to_owned).unwrap_or(name));
            }
            TokenTree::Group(g) => collect_idents(g.stream(), out),
            _ => {}
        }
    }
}

/// Compares two versions of one source file of a library. `std_macros`
/// says whether calls of the standard library's macros may differ
/// ([`std_macros_unshadowed`] over the crate's files).
///
/// Unless `cfg_test` (the library compiled with `cfg(test)`), items under
/// `#[cfg(test)]` are not part of the library and are left out: a
/// library's unit tests are no concern of the crates that use it.
pub fn compare(old: &str, new: &str, std_macros: bool, cfg_test: bool) -> Verdict {
    if old == new {
        return Verdict::Same;
    }
    let (Ok(old_file), Ok(new_file)) = (syn::parse_file(old), syn::parse_file(new)) else {
        return Verdict::Changed("it does not parse as a Rust file".into());
    };
    let old = Skeleton::of(old, old_file, !cfg_test);
    let new = Skeleton::of(new, new_file, !cfg_test);
    if old.tokens != new.tokens {
        let texts = |s: &Skeleton| s.tokens.iter().map(|t| t.0.clone()).collect::<Vec<_>>();
        let why = if texts(&old) == texts(&new) {
            let line = old
                .tokens
                .iter()
                .zip(&new.tokens)
                .find(|(a, b)| a != b)
                .map_or(0, |(a, b)| a.1.min(b.1));
            format!("code from line {line} on moved")
        } else {
            let line = old
                .tokens
                .iter()
                .zip(&new.tokens)
                .find(|(a, b)| a.0 != b.0)
                .or_else(|| old.tokens.iter().zip(&new.tokens).next_back())
                .map_or(0, |(a, b)| a.1.min(b.1));
            format!(
                "line {line} changed outside the body of a plain function \
                 (or in a generic, `#[inline]`, `const` or `async` one)"
            )
        };
        return Verdict::Changed(why);
    }
    debug_assert_eq!(old.bodies.len(), new.bodies.len());
    for ((name, before), (_, after)) in old.bodies.iter().zip(&new.bodies) {
        let same = before.to_token_stream().to_string() == after.to_token_stream().to_string();
        if same {
            continue;
        }
        if let Err(why) = body_change_is_private(before, after, std_macros) {
            return Verdict::Changed(format!("the body of `{name}` {why}"));
        }
    }
    Verdict::BodiesOnly
}

/// A file with the bodies of its eligible functions emptied: its tokens,
/// each with its line and column, and the bodies taken out, in order.
struct Skeleton {
    /// Text, line, column in characters (panic locations) and in bytes
    /// (debug info).
    tokens: Vec<(String, usize, usize, usize)>,
    bodies: Vec<(String, syn::Block)>,
}

impl Skeleton {
    fn of(text: &str, mut file: syn::File, strip_tests: bool) -> Skeleton {
        let mut bodies = Vec::new();
        take_bodies(&mut file.items, &mut bodies, strip_tests);
        let lines: Vec<&str> = text.lines().collect();
        let mut tokens = Vec::new();
        flatten(file.to_token_stream(), &lines, &mut tokens);
        Skeleton { tokens, bodies }
    }
}

fn flatten(stream: TokenStream, lines: &[&str], out: &mut Vec<(String, usize, usize, usize)>) {
    let at = |span: proc_macro2::Span| {
        let lc = span.start();
        let bytes = lines.get(lc.line.wrapping_sub(1)).map_or(lc.column, |l| {
            l.char_indices().nth(lc.column).map_or(l.len(), |(b, _)| b)
        });
        (lc.line, lc.column, bytes)
    };
    for tree in stream {
        match tree {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                let (l, c, b) = at(g.span_open());
                out.push((open.into(), l, c, b));
                flatten(g.stream(), lines, out);
                let (l, c, b) = at(g.span_close());
                out.push((close.into(), l, c, b));
            }
            other => {
                let (l, c, b) = at(other.span());
                out.push((other.to_string(), l, c, b));
            }
        }
    }
}

/// Empties the bodies of the eligible functions among `items` (and in the
/// modules and `impl` blocks they hold), moving them to `bodies`.
fn take_bodies(
    items: &mut Vec<syn::Item>,
    bodies: &mut Vec<(String, syn::Block)>,
    strip_tests: bool,
) {
    if strip_tests {
        items.retain(|i| !is_cfg_test(i));
    }
    for item in items {
        match item {
            syn::Item::Fn(f) if inert(&f.attrs) && opaque_signature(&f.sig) => {
                bodies.push((f.sig.ident.to_string(), take(&mut f.block)));
            }
            syn::Item::Mod(m) if inert(&m.attrs) => {
                if let Some((_, items)) = &mut m.content {
                    take_bodies(items, bodies, strip_tests);
                }
            }
            syn::Item::Impl(i)
                if inert(&i.attrs)
                    && i.defaultness.is_none()
                    && only_lifetimes(&i.generics)
                    && !mentions_impl_trait(&*i.self_ty) =>
            {
                for member in &mut i.items {
                    if let syn::ImplItem::Fn(f) = member
                        && f.defaultness.is_none()
                        && inert(&f.attrs)
                        && opaque_signature(&f.sig)
                    {
                        bodies.push((f.sig.ident.to_string(), take(&mut f.block)));
                    }
                }
            }
            _ => {}
        }
    }
}

/// An item under exactly `#[cfg(test)]`.
fn is_cfg_test(item: &syn::Item) -> bool {
    let attrs = match item {
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        _ => return false,
    };
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && matches!(&a.meta, syn::Meta::List(l) if l.tokens.to_string() == "test")
    })
}

fn take(block: &mut syn::Block) -> syn::Block {
    let empty = syn::Block {
        brace_token: block.brace_token,
        stmts: Vec::new(),
    };
    std::mem::replace(block, empty)
}

fn inert(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().all(|a| {
        let path = a.path();
        if path.is_ident("no_mangle") || path.is_ident("export_name") {
            // An exported symbol: never inlined across crates.
            return true;
        }
        if path.is_ident("unsafe") {
            // `#[unsafe(no_mangle)]`, `#[unsafe(export_name = "...")]`.
            return matches!(&a.meta, syn::Meta::List(l)
            if l.tokens.clone().into_iter().next().is_some_and(|t| {
                matches!(&t, TokenTree::Ident(i) if i == "no_mangle" || i == "export_name")
            }));
        }
        path.get_ident()
            .is_some_and(|i| INERT_ATTRIBUTES.iter().any(|s| i == s))
    })
}

fn only_lifetimes(generics: &syn::Generics) -> bool {
    generics
        .params
        .iter()
        .all(|p| matches!(p, syn::GenericParam::Lifetime(_)))
}

/// A signature whose body a dependent crate cannot see: no type or const
/// parameters (its code is compiled once, in the library), not `const`
/// (evaluated by dependents), not `async` and no `impl Trait` (the body
/// decides a type dependents use), no `f16`/`f128` (always inlined).
fn opaque_signature(sig: &syn::Signature) -> bool {
    sig.constness.is_none()
        && sig.asyncness.is_none()
        && sig.variadic.is_none()
        && only_lifetimes(&sig.generics)
        && !mentions_impl_trait(sig)
        && !sig
            .to_token_stream()
            .into_iter()
            .any(|t| matches!(&t, TokenTree::Ident(i) if i == "f16" || i == "f128"))
}

fn mentions_impl_trait<T: ToTokens>(node: &T) -> bool {
    fn any_impl(stream: TokenStream) -> bool {
        stream.into_iter().any(|t| match t {
            TokenTree::Ident(i) => i == "impl",
            TokenTree::Group(g) => any_impl(g.stream()),
            _ => false,
        })
    }
    any_impl(node.to_token_stream())
}

/// What an edited body holds that a dependent could see.
#[derive(Default)]
struct BodyScan {
    items: Vec<String>,
    /// Macro invocations: path and tokens.
    macros: Vec<(String, String, TokenStream)>,
}

impl<'ast> Visit<'ast> for BodyScan {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !matches!(item, syn::Item::Use(_)) {
            let kind = match item {
                syn::Item::Impl(_) => "an `impl`",
                syn::Item::Fn(_) => "a function",
                syn::Item::Macro(_) => "a macro",
                syn::Item::Static(_) => "a static",
                _ => "an item",
            };
            self.items.push(kind.into());
        }
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        let path = m.path.to_token_stream().to_string();
        self.macros
            .push((path, m.tokens.to_string(), m.tokens.clone()));
    }
}

fn scan(block: &syn::Block) -> BodyScan {
    let mut s = BodyScan::default();
    s.visit_block(block);
    s
}

fn body_change_is_private(
    before: &syn::Block,
    after: &syn::Block,
    std_macros: bool,
) -> Result<(), String> {
    let (old, new) = (scan(before), scan(after));
    for s in [&old, &new] {
        if let Some(kind) = s.items.first() {
            return Err(format!("defines {kind}"));
        }
    }
    // The invocations one version has and the other has not.
    let mut count: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for (p, t, _) in &old.macros {
        *count.entry((p, t)).or_default() += 1;
    }
    for (p, t, _) in &new.macros {
        *count.entry((p, t)).or_default() -= 1;
    }
    let changed = old
        .macros
        .iter()
        .chain(&new.macros)
        .filter(|(p, t, _)| count.get(&(p.as_str(), t.as_str())) != Some(&0));
    for (path, _, tokens) in changed {
        if !std_macros || !STD_MACROS.contains(&path.as_str()) {
            return Err(format!("changed a call of `{path}!`"));
        }
        std_macro_arguments_are_private(path, tokens.clone())?;
    }
    Ok(())
}

/// The arguments of a changed call of a standard macro: expressions,
/// which may define no items and call only standard macros themselves.
fn std_macro_arguments_are_private(path: &str, tokens: TokenStream) -> Result<(), String> {
    use syn::parse::Parser;
    let args = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated
        .parse2(tokens)
        .map_err(|_| format!("changed a call of `{path}!` that takes more than expressions"))?;
    for expr in &args {
        let mut s = BodyScan::default();
        s.visit_expr(expr);
        if let Some(kind) = s.items.first() {
            return Err(format!("defines {kind} in a call of `{path}!`"));
        }
        for (inner, _, tokens) in s.macros {
            if !STD_MACROS.contains(&inner.as_str()) {
                return Err(format!("changed a call of `{inner}!`"));
            }
            std_macro_arguments_are_private(&inner, tokens)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = r#"
use std::fmt::Write;

pub const REVISION: u64 = 0;

pub struct Store {
    items: Vec<u64>,
}

impl Store {
    pub fn total(&self) -> u64 {
        self.items.iter().sum()
    }

    pub fn first<T: From<u64>>(&self) -> T {
        T::from(self.items[0])
    }
}

pub fn label(n: u64) -> String {
    let mut s = String::new();
    write!(s, "n = {}", n).unwrap();
    s
}

pub async fn fetch() -> u64 {
    1
}

#[inline]
pub fn hinted() -> u64 {
    2
}

pub fn mapper() -> impl Fn(u64) -> u64 {
    |x| x + 1
}

pub trait Greet {
    fn hello(&self) -> u64 {
        3
    }
}

pub fn generic<T: Default>() -> T {
    T::default()
}
"#;

    fn edit(from: &str, to: &str) -> String {
        assert!(LIB.contains(from), "no `{from}` in the fixture");
        LIB.replacen(from, to, 1)
    }

    fn verdict(from: &str, to: &str) -> Verdict {
        compare(LIB, &edit(from, to), true, false)
    }

    fn changed(from: &str, to: &str) -> String {
        match verdict(from, to) {
            Verdict::Changed(why) => why,
            other => panic!("`{from}` -> `{to}` gave {other:?}"),
        }
    }

    #[test]
    fn bodies_of_plain_functions_and_methods_are_private() {
        assert_eq!(compare(LIB, LIB, true, false), Verdict::Same);
        assert_eq!(
            verdict(
                "self.items.iter().sum()",
                "self.items.iter().sum::<u64>() + 1"
            ),
            Verdict::BodiesOnly
        );
        assert_eq!(
            verdict(r#""n = {}", n"#, r#""n is {}!", n + 1"#),
            Verdict::BodiesOnly
        );
        // Comments are no tokens.
        assert_eq!(verdict("    s\n}", "    s // done\n}"), Verdict::BodiesOnly);
    }

    #[test]
    fn what_dependents_see_is_changed() {
        assert!(changed("REVISION: u64 = 0", "REVISION: u64 = 1").contains("line 4"));
        assert!(changed("T::from(self.items[0])", "T::from(self.items[1])").contains("line"));
        for (from, to) in [
            ("    1\n}", "    2\n}"),              // async fn
            ("    2\n}", "    4\n}"),              // #[inline]
            ("|x| x + 1", "|x| x + 2"),            // impl Trait
            ("        3\n", "        4\n"),        // trait default
            ("T::default()\n", "T::default() \n"), // generic: same tokens
        ] {
            let v = verdict(from, to);
            if from.starts_with("T::default") {
                assert_eq!(v, Verdict::BodiesOnly, "whitespace only");
            } else {
                assert!(
                    matches!(v, Verdict::Changed(_)),
                    "`{from}` -> `{to}`: {v:?}"
                );
            }
        }
    }

    #[test]
    fn a_test_attribute_may_be_a_macro_of_the_crates_choice() {
        let lib = "use mac::test;\n#[test]\npub fn value() -> u32 {\n    1\n}\n";
        let v = compare(lib, &lib.replace("    1", "    2"), true, false);
        assert!(matches!(v, Verdict::Changed(_)), "{v:?}");
    }

    #[test]
    fn an_exported_functions_body_is_private_too() {
        let lib = "#[unsafe(no_mangle)] pub extern \"C\" fn edit() -> u64 { 1 }\n#[unsafe(link_section = \"x\")] pub fn other() -> u64 { 1 }\n";
        let v = compare(lib, &lib.replacen("{ 1 }", "{ 2 }", 1), true, false);
        assert_eq!(v, Verdict::BodiesOnly);
        let v = compare(
            lib,
            &lib.replacen("other() -> u64 { 1 }", "other() -> u64 { 2 }", 1),
            true,
            false,
        );
        assert!(matches!(v, Verdict::Changed(_)), "{v:?}");
    }

    #[test]
    fn wider_characters_move_what_follows_in_bytes() {
        let line = "pub fn plain() -> &'static str { \"a\" } pub fn boom<T: Default>() -> T { panic!() }\n";
        let v = compare(line, &line.replace("\"a\"", "\"\u{4e2d}\""), true, false);
        assert!(matches!(v, Verdict::Changed(_)), "{v:?}");
    }

    #[test]
    fn moved_code_is_changed() {
        // A line more in a body moves every span after it.
        let why = changed(
            "        self.items.iter().sum()\n",
            "        let s = 0;\n        self.items.iter().sum::<u64>() + s\n",
        );
        assert!(why.contains("moved"), "{why}");
        // On the edited line itself, what follows the body moves too.
        let one_line = "pub fn a() -> u64 { 1 } pub fn b<T>() {}\n";
        let v = compare(one_line, &one_line.replace("{ 1 }", "{ 10 }"), true, false);
        assert!(matches!(v, Verdict::Changed(_)), "{v:?}");
    }

    #[test]
    fn items_and_foreign_macros_in_an_edited_body_are_changed() {
        let why = changed(
            "    s\n}",
            "    impl Clone for Store { fn clone(&self) -> Self { todo!() } } s\n}",
        );
        assert!(why.contains("defines an `impl`"), "{why}");
        assert_eq!(
            verdict(r#"write!(s, "n = {}", n)"#, r#"write!(s, "n = {}", n + 1)"#),
            Verdict::BodiesOnly
        );
        let why = changed("    s\n}", "    my_macro!(s)\n}");
        assert!(why.contains("`my_macro!`"), "{why}");
        // With std's names shadowable, their calls count as changed too.
        let v = compare(LIB, &edit(r#""n = {}", n"#, r#""n: {}", n"#), false, false);
        assert!(matches!(v, Verdict::Changed(_)), "{v:?}");
        // An item hidden in a std macro's argument.
        let why = changed(
            r#""n = {}", n)"#,
            r#""n = {}", { impl Default for Store { fn default() -> Self { todo!() } } n })"#,
        );
        assert!(why.contains("defines"), "{why}");
    }

    #[test]
    fn the_librarys_unit_tests_are_none_of_its_dependents_business() {
        let with_tests =
            format!("{LIB}\n#[cfg(test)]\nmod tests {{\n    #[test]\n    fn t() {{}}\n}}\n");
        let more = with_tests.replace(
            "fn t() {}",
            "fn t() {}\n    #[test]\n    fn u() { assert!(true) }",
        );
        assert_eq!(
            compare(&with_tests, &more, true, false),
            Verdict::BodiesOnly
        );
        // A library compiled with `cfg(test)` has them.
        assert!(matches!(
            compare(&with_tests, &more, true, true),
            Verdict::Changed(_)
        ));
        // Before other code, they move it.
        let first = format!("#[cfg(test)]\nmod tests {{}}\n{LIB}");
        let grown = first.replace("mod tests {}", "mod tests {\n}");
        assert!(matches!(
            compare(&first, &grown, true, false),
            Verdict::Changed(_)
        ));
    }

    #[test]
    fn module_files_follow_mod_items_and_includes_are_found() {
        let files: BTreeMap<PathBuf, String> = [
            (
                "src/lib.rs",
                "mod a;\nmod b { mod c; }\n#[cfg(x)] mod gone;\n",
            ),
            ("src/a.rs", "mod inner;\n"),
            ("src/a/inner.rs", ""),
            ("src/b/c/mod.rs", ""),
            ("src/data.rs", "fn main() {}"),
        ]
        .into_iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_owned()))
        .collect();
        let got = module_files(Path::new("./src/lib.rs"), &files).unwrap();
        let want: BTreeSet<PathBuf> =
            ["src/lib.rs", "src/a.rs", "src/a/inner.rs", "src/b/c/mod.rs"]
                .into_iter()
                .map(PathBuf::from)
                .collect();
        assert_eq!(got, want);
        let mut with_path = files.clone();
        with_path.insert("src/lib.rs".into(), "#[path = \"x.rs\"] mod a;".into());
        assert_eq!(module_files(Path::new("src/lib.rs"), &with_path), None);
        // Modules declared through macros that pass items on (tokio's
        // `cfg_time! { pub mod time; }`), where rustc read their files.
        let mut through_macros = files.clone();
        through_macros.insert(
            "src/lib.rs".into(),
            "cfg_a! { pub mod a; }\ncfg_if::cfg_if! { if #[cfg(x)] { mod b { mod c; } } }\n\
             cfg_gone! { mod gone; }\nmacro_rules! m { () => { mod data; } }\n"
                .into(),
        );
        assert_eq!(
            module_files(Path::new("src/lib.rs"), &through_macros).unwrap(),
            want
        );
        let mut path_in_macro = files.clone();
        path_in_macro.insert(
            "src/lib.rs".into(),
            "m! { #[path = \"x.rs\"] mod a; }".into(),
        );
        assert_eq!(module_files(Path::new("src/lib.rs"), &path_in_macro), None);

        let text = "const A: &str = include_str!(\"../README.md\");\nfn f() -> usize { include_bytes!(\"data.rs\").len() }";
        let targets = include_targets(Path::new("src/lib.rs"), text).unwrap();
        assert!(targets.contains(Path::new("README.md")), "{targets:?}");
        assert!(targets.contains(Path::new("src/data.rs")), "{targets:?}");
        assert_eq!(
            include_targets(
                Path::new("src/lib.rs"),
                "include_str!(concat!(env!(\"OUT_DIR\"), \"/x\"))"
            ),
            None
        );
    }

    #[test]
    fn files_a_macro_names_are_found() {
        let files: BTreeSet<PathBuf> = ["/w/lib/src/lib.rs", "/w/lib/src/schema.rs"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let named = |text: &str| files_named_in_macros(text, &files);
        assert_eq!(
            named("pub const H: u64 = mac::source_hash!(\"src/schema.rs\");"),
            BTreeSet::from([PathBuf::from("/w/lib/src/schema.rs")])
        );
        assert_eq!(
            named("#[mac::embed(path = \"./schema.rs\")] pub struct S;").len(),
            1
        );
        // A string that is no macro's argument, or names no file read.
        assert!(named("pub const P: &str = \"src/schema.rs\";").is_empty());
        assert!(named("fn f() { println!(\"schema.rs.bak\"); }").is_empty());
    }

    #[test]
    fn shadowing_of_std_macros_is_found() {
        assert!(std_macros_unshadowed([
            LIB,
            "use crate::a::*; use super::b::*;"
        ]));
        for text in [
            "#[macro_use] extern crate log;",
            "macro_rules! println { () => {} }",
            "use defmt::println;",
            "use defmt::*;",
            "use foo::{bar, baz::*};",
            "use other::format as fmt2; use x::y as format;",
            "macro_rules! r#println { () => {} }",
            "use x::y as r#format;",
        ] {
            assert!(!std_macros_unshadowed([LIB, text]), "{text}");
        }
        assert!(!std_macros_unshadowed(["fn ("]));
    }
}
