//! Maintainer tasks for marketplace-inbox.
//!
//! - `cargo xtask generate` regenerates every vendor client under `crates/` from `specs/`.
//! - `cargo xtask generate --check` fails with a diff when a checked-in file is stale.
//! - `cargo xtask upstream-check [DIR]` proves that `specs/allegro.yaml` and
//!   `specs/ozon.yaml` agree with the vendors' published specs (default DIR:
//!   `../shared/upstream-specs`).

mod fixups;
mod generate;
mod spec;
mod targets;
mod tolerance;
mod upstream;

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf();
    match args.first().map(String::as_str) {
        Some("generate") => {
            let check = args[1..].iter().any(|a| a == "--check");
            generate::run(&root, check)
        }
        Some("upstream-check") => {
            let dir = args
                .get(1)
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("../shared/upstream-specs"));
            upstream::run(&root, &dir)
        }
        _ => {
            eprintln!("usage: cargo xtask generate [--check] | cargo xtask upstream-check [DIR]");
            std::process::exit(2)
        }
    }
}
