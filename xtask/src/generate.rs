//! spec → fix-ups → openapiv3 → progenitor → rustfmt → `crates/<dir>/src/<module>.rs`.

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use progenitor::{CrateVers, GenerationSettings, Generator, InterfaceStyle, TagStyle};
use quote::quote;

use crate::fixups::apply;
use crate::spec;
use crate::targets::{self, Target};
use crate::tolerance::{self, Owner};

/// Generates every target; with `check`, compares instead of writing.
pub fn run(root: &Path, check: bool) -> Result<()> {
    let mut stale = Vec::new();
    for target in targets::all() {
        let code = generate(root, &target)?;
        let out = root
            .join("crates")
            .join(target.dir)
            .join("src")
            .join(format!("{}.rs", target.module));
        let rel = out.strip_prefix(root).unwrap_or(&out).display().to_string();
        let current = std::fs::read_to_string(&out).unwrap_or_default();
        if check {
            if current != code {
                let diff = similar::TextDiff::from_lines(&current, &code);
                print!(
                    "{}",
                    diff.unified_diff()
                        .context_radius(2)
                        .header(&rel, &format!("{rel} (regenerated)"))
                );
                stale.push(rel);
            }
        } else {
            if current != code {
                std::fs::write(&out, &code).with_context(|| format!("writing {rel}"))?;
            }
            println!(
                "{rel}: {} lines from specs/{}",
                code.lines().count(),
                target.spec
            );
        }
    }
    // Each client crate carries the spec it was generated from (a package holds nothing
    // outside its directory).
    let mut copied = std::collections::BTreeSet::new();
    for target in targets::all() {
        if !copied.insert((target.dir, target.spec)) {
            continue;
        }
        let spec = std::fs::read_to_string(root.join("specs").join(target.spec))
            .with_context(|| format!("reading specs/{}", target.spec))?;
        let out = root
            .join("crates")
            .join(target.dir)
            .join("spec")
            .join(target.spec);
        let rel = out.strip_prefix(root).unwrap_or(&out).display().to_string();
        let current = std::fs::read_to_string(&out).unwrap_or_default();
        if current == spec {
            continue;
        }
        if check {
            println!("{rel} differs from specs/{}", target.spec);
            stale.push(rel);
        } else {
            if let Some(dir) = out.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&out, &spec).with_context(|| format!("writing {rel}"))?;
            println!("{rel}: copied from specs/{}", target.spec);
        }
    }
    if !stale.is_empty() {
        bail!(
            "generated code is stale: {}; run `cargo xtask generate` and commit the result",
            stale.join(", ")
        );
    }
    if check {
        println!("generated code is up to date");
    }
    Ok(())
}

/// The complete text of one generated module.
pub fn generate(root: &Path, target: &Target) -> Result<String> {
    let spec_path = root.join("specs").join(target.spec);
    let mut doc = spec::load(&spec_path)?;
    let name = format!("specs/{}", target.spec);
    (target.fixups)(&mut doc, &name)?;
    let owner = Owner {
        package: target.package,
        module: target.module,
    };
    let enums = tolerance::open_enums(&mut doc, &owner)?;
    if enums.is_empty() {
        bail!("fix-up `open_enums` matched nothing in {name}");
    }
    if target.tolerant {
        apply(
            &name,
            "relax_response_schemas",
            &mut doc,
            tolerance::relax_response_schemas,
        )?;
        apply(
            &name,
            "tolerant_scalars",
            &mut doc,
            tolerance::tolerant_scalars,
        )?;
        apply(&name, "flex_datetimes", &mut doc, tolerance::flex_datetimes)?;
        apply(
            &name,
            "lenient_list_items",
            &mut doc,
            tolerance::lenient_list_items,
        )?;
    }

    let binary_ops = binary_response_operations(&doc);
    let api: openapiv3::OpenAPI = serde_json::from_value(doc)
        .map_err(|e| anyhow!("{name} is not valid OpenAPI 3.0 after the fix-ups: {e}"))?;
    let mut settings = GenerationSettings::new();
    settings
        .with_interface(InterfaceStyle::Builder)
        .with_tag(TagStyle::Merged)
        .with_inner_type(quote!(::inbox_core::Context))
        .with_crate("inbox-core", CrateVers::Any, None)
        .with_crate(target.package, CrateVers::Any, None);
    let tokens = catch_unwind(AssertUnwindSafe(|| {
        Generator::new(&settings).generate_tokens(&api)
    }))
    .map_err(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        anyhow!("progenitor panicked on {name} ({}): {msg}", target.module)
    })?
    .map_err(|e| anyhow!("progenitor rejected {name} ({}): {e}", target.module))?;
    let (tokens, _) = crate::fixups::line_doc_comments(tokens)
        .with_context(|| format!("{name} ({})", target.module))?;
    let file: syn::File = syn::parse2(tokens).context("progenitor produced unparsable code")?;
    let body = prettyplease::unparse(&file);

    let mut text = String::new();
    text.push_str(&format!(
        "// @generated by `cargo xtask generate` from specs/{} ({}). Do not edit by hand.\n\n",
        target.spec,
        target.media.unwrap_or("application/json"),
    ));
    text.push_str(&body);
    text.push_str(&enums_module(&enums));
    if let Some(media) = target.media {
        text.push_str(&format!(
            "\n/// The media type this module's operations send and accept.\npub const MEDIA_TYPE: &str = {media:?};\n"
        ));
        text.push_str(&format!(
            "\n/// Operations that answer with a file rather than JSON.\npub const BINARY_RESPONSE_OPERATIONS: &[&str] = &{binary_ops:?};\n"
        ));
    }
    let (text, _) = crate::fixups::tolerant_envelope_fields(&rustfmt(&text)?, target.envelopes)
        .with_context(|| format!("{name} ({})", target.module))?;
    let formatted = rustfmt(&text)?;
    if !target.path_parameters {
        if formatted.contains("encode_path(&") {
            bail!(
                "{name} ({}) has path parameters now: set `path_parameters` on its target",
                target.module
            );
        }
        return Ok(formatted);
    }
    // Rewritten on rustfmt's layout, then laid out again.
    let (strict, _) = crate::fixups::strict_path_segments(&formatted)
        .with_context(|| format!("{name} ({})", target.module))?;
    rustfmt(&strict)
}

/// Operation ids whose success responses carry no JSON media type.
fn binary_response_operations(doc: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for (_, _, op) in spec::operations_mut(&mut doc.clone()) {
        let Some(responses) = op.get("responses").and_then(|r| r.as_object()) else {
            continue;
        };
        let binary = responses.iter().any(|(code, r)| {
            code.starts_with('2')
                && r.get("content")
                    .and_then(|c| c.as_object())
                    .is_some_and(|c| !c.is_empty() && !c.keys().any(|k| k.contains("json")))
        });
        if binary {
            if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                out.push(id.to_string());
            }
        }
    }
    out.sort();
    out
}

fn enums_module(enums: &BTreeMap<String, Vec<String>>) -> String {
    let mut s = String::from(
        "\n/// Open enums: the values the vendor documents, and `Unknown(String)` for any other.\npub mod enums {\n",
    );
    for (name, values) in enums {
        s.push_str(&format!(
            "::inbox_core::open_enum! {{\n/// Values of `{name}`.\npub enum {name} {{\n"
        ));
        let mut used = Vec::new();
        for v in values {
            let mut variant = variant_name(v);
            if variant == "Unknown" || used.contains(&variant) {
                variant.push_str("Value");
            }
            while used.contains(&variant) {
                variant.push('_');
            }
            s.push_str(&format!("{variant} = {v:?},\n"));
            used.push(variant);
        }
        s.push_str("}\n}\n");
    }
    s.push_str("}\n");
    s
}

fn variant_name(value: &str) -> String {
    let lowered = if value.chars().any(|c| c.is_lowercase()) {
        value.to_string()
    } else {
        value.to_lowercase()
    };
    let mut name = spec::pascal(&lowered);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, 'V');
    }
    name
}

fn rustfmt(code: &str) -> Result<String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running rustfmt (rustup component add rustfmt)")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(code.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("rustfmt failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?.replace("\r\n", "\n"))
}
