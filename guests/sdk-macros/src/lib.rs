//! `world!(kind)`: expands to wit-bindgen's `generate!` for one `tocsin:monitor` world,
//! pointing at the WIT this SDK was built with.
//!
//! Each guest crate generates its own bindings for exactly one world: a component then
//! carries only that world's type information and exports, whatever else is built beside it.

use proc_macro::TokenStream;

const WIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit");
const WORLDS: &[&str] = &["collector", "scorer", "alert-rule", "template", "ingest"];

/// Generate the bindings of a Tocsin world in the calling crate: its `Guest` trait, the
/// shared types, the host interfaces as modules under `tocsin::monitor`, and `export!`.
///
/// `world!(alert_rule)` (or `collector`, `scorer`, `template`, `ingest`).
#[proc_macro]
pub fn world(input: TokenStream) -> TokenStream {
    let name = input.to_string().trim().trim_matches('"').replace('_', "-");
    if !WORLDS.contains(&name.as_str()) {
        let msg = format!(
            "unknown Tocsin world `{name}`; expected one of: {}",
            WORLDS.join(", ")
        );
        return format!("compile_error!({msg:?});")
            .parse()
            .unwrap_or_default();
    }
    format!(
        r#"::tocsin_guest::__wit_bindgen::generate!({{
            path: {WIT_DIR:?},
            world: "tocsin:monitor/{name}",
            runtime_path: "::tocsin_guest::__wit_bindgen::rt",
            generate_all,
        }});"#
    )
    .parse()
    .unwrap_or_default()
}
