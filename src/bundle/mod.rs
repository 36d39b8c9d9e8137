//! Making the bundle: choosing its roots from what the members use, reading
//! each root's exact closure, splitting the bundled crates into shared
//! libraries by the units that use them ([`crate::split`]), linking each
//! from the exact rlibs of the user's build with rustc, and compiling a
//! facade for each root. Because the libraries are linked from the user
//! build's own units, and each crate goes into exactly one library, no
//! crate is ever compiled or linked twice; because a unit loads only the
//! libraries of its own closure, it sees exactly its own dependencies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::layout::Layout;
use crate::plan::Graph;
use crate::settings::Settings;
use crate::shell::Shell;
use crate::state::{BundleState, JournalEntry};

mod facade;
mod gc;
mod link;
mod native;
mod place;
mod space;
mod toolchain;
mod units;

pub use gc::{collect_garbage, remove_leftovers};
use link::Linked;
use toolchain::Toolchain;

/// Everything a new bundle is made from.
#[derive(Debug)]
pub struct Request<'a> {
    pub layout: &'a Layout,
    /// For the generated source's comment: "the bundle of `game`".
    pub workspace_name: &'a str,
    pub generation: &'a str,
    /// What the wrapper recorded of every member unit of this build.
    pub entries: &'a [JournalEntry],
    /// Unit stem -> package id, from cargo's artifact messages.
    pub packages_by_stem: &'a BTreeMap<String, String>,
    /// Package id -> the rlibs cargo built for it, from the same messages.
    pub rlibs_by_package: &'a BTreeMap<String, Vec<PathBuf>>,
    /// Every package the build compiled, from the same messages.
    pub built_packages: &'a BTreeSet<String>,
    pub graph: &'a Graph,
    pub settings: &'a Settings,
    /// The bundle in use so far, whose units carry over within a generation.
    pub previous: Option<&'a BundleState>,
}

pub fn make(shell: &Shell, req: &Request<'_>) -> Result<BundleState> {
    let toolchain = Toolchain::from_entries(req.entries)?;
    let native = native::scan_native_code(req)?;
    let hidden_native: BTreeMap<String, String> = native
        .iter()
        .filter_map(|(id, n)| Some((id.clone(), n.hidden.first()?.clone())))
        .collect();
    let same_generation = req.previous.filter(|p| p.generation == req.generation);
    let mut link_failed: BTreeMap<String, String> = same_generation
        .map(|p| p.plan.link_failed.clone())
        .unwrap_or_default();

    // Within a generation the bundle keeps the units of other selections,
    // so the packages they compiled count too.
    let mut built = req.built_packages.clone();
    if let Some(prev) = same_generation {
        built.extend(prev.plan.built_packages.iter().cloned());
    }
    let graph = req.graph.restricted_to(&built);

    let proxy = crate::helpers::install(
        &req.layout.state_dir.join("bin"),
        crate::contract::names::LINKER,
    )?;
    let inputs = units::inputs(req, same_generation, &toolchain, &proxy)?;

    loop {
        let placed = place::place(req, &graph, &inputs, &link_failed, &hidden_native);
        match link::link(shell, req, &toolchain, &placed, &native, &proxy)? {
            Linked::Done(state) => return Ok(*state),
            Linked::Failed { culprits, message } => {
                if culprits.is_empty() {
                    bail!(
                        "failed to link the bundle, and could not tell which dependency is \
                         to blame\n\n{message}\n\nhelp: keep the dependency named above out \
                         of the bundle with `[workspace.metadata.dyndev] exclude = [\"NAME\"]`"
                    );
                }
                let mut learned = false;
                for (id, why) in culprits {
                    let name = req.graph.nodes.get(&id).map_or(id.as_str(), |n| &n.name);
                    shell.warn(format_args!(
                        "`{name}` cannot be linked into a shared library; it stays static ({why})"
                    ));
                    learned |= link_failed.insert(id, why).is_none();
                }
                // Blaming the same packages again would loop for ever.
                if !learned {
                    bail!("failed to link the bundle\n\n{message}");
                }
            }
        }
    }
}
