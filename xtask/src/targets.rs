//! What `cargo xtask generate` produces: one generated module per vendor API version,
//! and the fix-ups each spec needs before progenitor accepts it.

use anyhow::Result;
use serde_json::Value;

use crate::fixups::{self, apply};

/// One generated module.
pub struct Target {
    /// Spec file under `specs/`.
    pub spec: &'static str,
    /// Package that owns the module.
    pub package: &'static str,
    /// Module name (file `crates/<dir>/src/<module>.rs`).
    pub module: &'static str,
    /// Crate directory under `crates/`.
    pub dir: &'static str,
    /// The vendor JSON media type the request hook puts on the wire, if not plain JSON.
    pub media: Option<&'static str>,
    /// Vendor-specific fix-ups, run before the tolerance passes.
    pub fixups: fn(&mut Value, &str) -> Result<()>,
    /// Whether its operations have path parameters (then `strict_path_segments` must
    /// rewrite them; else there must be none).
    pub path_parameters: bool,
    /// Page envelopes whose fields paging does not read become tolerant
    /// (`tolerant_envelope_fields`).
    pub envelopes: &'static [&'static str],
    /// Whether the vendor tolerance passes run (required fields relaxed, scalars and
    /// instants in any form, malformed list items kept): for the vendors' APIs. Our own
    /// API's client decodes strictly by its spec, so that it proves the server keeps it.
    pub tolerant: bool,
}

fn allegro(doc: &mut Value, spec: &str, version: &str) -> Result<()> {
    apply(
        spec,
        &format!("select_allegro_media_version({version})"),
        doc,
        |d| fixups::select_allegro_media_version(d, version),
    )?;
    apply(
        spec,
        "prune_unreachable_schemas",
        doc,
        fixups::prune_unreachable_schemas,
    )?;
    apply(
        spec,
        "binary_upload_to_octet_stream",
        doc,
        fixups::binary_upload_to_octet_stream,
    )?;
    Ok(())
}

fn allegro_public(doc: &mut Value, spec: &str) -> Result<()> {
    allegro(doc, spec, "public.v1")
}

fn allegro_beta(doc: &mut Value, spec: &str) -> Result<()> {
    allegro(doc, spec, "beta.v1")
}

fn mercadolibre(doc: &mut Value, spec: &str) -> Result<()> {
    apply(
        spec,
        "drop_multipart_operations",
        doc,
        fixups::drop_multipart_operations,
    )?;
    Ok(())
}

fn magalu(_: &mut Value, _: &str) -> Result<()> {
    Ok(())
}

fn ozon(doc: &mut Value, spec: &str) -> Result<()> {
    apply(
        spec,
        "stringify_numeric_version",
        doc,
        fixups::stringify_numeric_version,
    )?;
    apply(spec, "strip_auth_header_params", doc, |d| {
        fixups::strip_auth_header_params(d, &["Client-Id", "Api-Key"])
    })?;
    Ok(())
}

fn inbox_api(doc: &mut Value, spec: &str) -> Result<()> {
    apply(
        spec,
        "problem_json_as_json",
        doc,
        fixups::problem_json_as_json,
    )?;
    Ok(())
}

/// Every generated module, in generation order.
pub fn all() -> Vec<Target> {
    vec![
        Target {
            spec: "allegro.yaml",
            package: "inbox-allegro",
            module: "public_v1",
            dir: "allegro",
            media: Some("application/vnd.allegro.public.v1+json"),
            fixups: allegro_public,
            path_parameters: true,
            envelopes: &["ThreadsList", "MessagesList"],
            tolerant: true,
        },
        Target {
            spec: "allegro.yaml",
            package: "inbox-allegro",
            module: "beta_v1",
            dir: "allegro",
            media: Some("application/vnd.allegro.beta.v1+json"),
            fixups: allegro_beta,
            path_parameters: true,
            envelopes: &[],
            tolerant: true,
        },
        Target {
            spec: "mercadolibre.yaml",
            package: "inbox-mercadolibre",
            module: "generated",
            dir: "mercadolibre",
            media: None,
            fixups: mercadolibre,
            path_parameters: true,
            envelopes: &["PackMessages", "Paging", "UnreadMessages", "OrdersSearch"],
            tolerant: true,
        },
        Target {
            spec: "magalu.yaml",
            package: "inbox-magalu",
            module: "generated",
            dir: "magalu",
            media: None,
            fixups: magalu,
            path_parameters: true,
            envelopes: &[
                "ConversationsPage",
                "MessagesPage",
                "Meta",
                "Links",
                "PageInfo",
            ],
            tolerant: true,
        },
        Target {
            spec: "ozon.yaml",
            package: "inbox-ozon",
            module: "generated",
            dir: "ozon",
            media: None,
            fixups: ozon,
            path_parameters: false,
            envelopes: &["V3ChatListResponse"],
            tolerant: true,
        },
        Target {
            spec: "inbox-api.yaml",
            package: "inbox-api-client",
            module: "generated",
            dir: "api-client",
            media: None,
            fixups: inbox_api,
            path_parameters: true,
            envelopes: &[],
            tolerant: false,
        },
    ]
}
