//! `docs/config.md`, generated from the configuration struct itself.
//!
//! The field list, types and descriptions come from the doc comments in
//! `keyway-gateway/src/config.rs` (read at compile time), the defaults from `Config::default()`.
//! A test fails when `docs/config.md` differs from what this renders, so the reference can't
//! drift: after changing the config, run `keyway config-docs > docs/config.md`.

use keyway_gateway::Config;
use serde_json::Value;
use std::fmt::Write as _;

const SOURCE: &str = include_str!("../../keyway-gateway/src/config.rs");

#[derive(Debug)]
struct Field {
    name: String,
    ty: String,
    doc: String,
    secret: bool,
    /// `#[serde(default)]` on the field (or its struct): may be left out.
    has_default: bool,
}

#[derive(Debug)]
struct Struct {
    name: String,
    doc: String,
    fields: Vec<Field>,
}

/// The `pub struct`s of config.rs with their documented `pub` fields.
fn parse(src: &str) -> Vec<Struct> {
    let mut out = Vec::new();
    let mut doc: Vec<String> = Vec::new();
    let mut attrs = String::new();
    let mut current: Option<Struct> = None;
    let mut struct_default = false;
    for line in src.lines() {
        let t = line.trim();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if let Some(d) = t.strip_prefix("///") {
            doc.push(d.trim().to_owned());
            continue;
        }
        if t.starts_with("#[") {
            attrs.push_str(t);
            continue;
        }
        if let Some(rest) = t.strip_prefix("pub struct ") {
            let name = rest.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or("").to_owned();
            if rest.trim_end().ends_with('{') {
                struct_default = attrs.contains("serde(default)");
                current = Some(Struct { name, doc: doc.join(" "), fields: Vec::new() });
            }
        } else if t == "}" {
            if let Some(s) = current.take() {
                out.push(s);
            }
        } else if let (Some(s), Some(rest)) = (current.as_mut(), t.strip_prefix("pub ")) {
            if let Some((name, ty)) = rest.split_once(':') {
                s.fields.push(Field {
                    name: name.trim().to_owned(),
                    ty: ty.trim().trim_end_matches(',').to_owned(),
                    doc: doc.join(" "),
                    secret: attrs.contains("skip_serializing"),
                    has_default: struct_default || attrs.contains("default"),
                });
            }
        }
        doc.clear();
        attrs.clear();
    }
    out
}

fn inner<'a>(ty: &'a str, wrapper: &str) -> Option<&'a str> {
    ty.strip_prefix(wrapper)?.strip_prefix('<')?.strip_suffix('>')
}

fn type_name(ty: &str) -> String {
    if let Some(t) = inner(ty, "Option") {
        return format!("{} (optional)", type_name(t));
    }
    if let Some(t) = inner(ty, "Vec") {
        return format!("list of {}", type_name(t));
    }
    if let Some(t) = inner(ty, "BTreeMap") {
        return format!("table of {}", type_name(t.split_once(',').map(|(_, v)| v.trim()).unwrap_or(t)));
    }
    match ty {
        "String" | "SecretString" => "string".into(),
        "bool" => "boolean".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" | "i64" => "integer".into(),
        "f64" => "number".into(),
        "SocketAddr" => "address (`host:port`)".into(),
        "PathBuf" => "path".into(),
        "PrecedenceConfig" => "`\"byok_first\"` or `\"provider_order\"`".into(),
        other => format!("`{other}`"),
    }
}

/// The struct a field's type holds (directly, in an Option, a list or a map), if config.rs defines it.
fn nested<'a>(ty: &str, structs: &'a [Struct]) -> Option<&'a Struct> {
    let base = inner(ty, "Option").or_else(|| inner(ty, "Vec")).or_else(|| inner(ty, "BTreeMap").and_then(|t| t.split_once(',').map(|(_, v)| v.trim()))).unwrap_or(ty);
    structs.iter().find(|s| s.name == base)
}

fn default_text(v: Option<&Value>, secret: bool) -> String {
    if secret {
        return "none (secret: never written back)".into();
    }
    match v {
        None | Some(Value::Null) => "none".into(),
        Some(Value::String(s)) => format!("`\"{s}\"`"),
        Some(Value::Array(a)) if a.is_empty() => "`[]`".into(),
        Some(Value::Object(o)) if o.is_empty() => "none".into(),
        Some(other) => format!("`{other}`"),
    }
}

fn env_name(path: &[&str]) -> String {
    format!("KEYWAY_{}", path.iter().map(|p| p.to_ascii_uppercase()).collect::<Vec<_>>().join("__"))
}

fn table(out: &mut String, s: &Struct, prefix: &[&str], defaults: Option<&Value>, structs: &[Struct], with_env: bool) {
    let _ = writeln!(out, "| key | type | default | description |");
    let _ = writeln!(out, "|---|---|---|---|");
    for f in &s.fields {
        if nested(&f.ty, structs).is_some() && inner(&f.ty, "Option").is_none() {
            continue; // its own section below
        }
        let mut path: Vec<&str> = prefix.to_vec();
        path.push(&f.name);
        let mut desc = f.doc.replace('|', "\\|");
        if with_env {
            let _ = write!(desc, "{}Env: `{}`.", if desc.is_empty() { "" } else { " " }, env_name(&path));
        }
        let default = match defaults {
            Some(d) => default_text(d.get(&f.name), f.secret),
            // Entries of a list or map: say what may be left out.
            None if inner(&f.ty, "Option").is_some() => "none".into(),
            None if f.has_default => "`false` / empty".into(),
            None => "**required**".into(),
        };
        let _ = writeln!(out, "| `{}` | {} | {} | {} |", f.name, type_name(&f.ty), default, desc);
    }
    out.push('\n');
}

/// The whole of docs/config.md.
pub fn render() -> String {
    let structs = parse(SOURCE);
    let defaults = serde_json::to_value(Config::default()).unwrap_or(Value::Null);
    let mut out = String::new();
    out.push_str(
        "# Configuration reference\n\n\
         <!-- Generated by `keyway config-docs` from crates/keyway-gateway/src/config.rs; do not edit by hand.\n     \
         A test fails when this file is out of date: run `cargo run -- config-docs > docs/config.md`. -->\n\n\
         Keyway reads one typed configuration, later sources overriding earlier ones:\n\n\
         1. built-in defaults (below);\n\
         2. `keyway.toml` in the working directory, or the file given by `--config` / `KEYWAY_CONFIG`;\n\
         3. environment variables `KEYWAY_*`, with `__` for each level of nesting\n   \
            (`KEYWAY_PROVIDERS__OPENAI__BASE_URL`; a `-` in a provider slug becomes `_`: `KEYWAY_PROVIDERS__AMAZON_BEDROCK__BASE_URL`);\n\
         4. command-line flags (`keyway serve --listen ... --data-dir ...`).\n\n\
         Secrets in files are references, never values: `env:NAME` reads an environment variable,\n\
         `file:/path` reads a file (trimmed). See `keyway.example.toml` for a commented example.\n\n",
    );
    let Some(root) = structs.iter().find(|s| s.name == "Config") else {
        return out;
    };
    let _ = writeln!(out, "## Top level\n");
    table(&mut out, root, &[], Some(&defaults), &structs, true);
    for f in &root.fields {
        let Some(s) = nested(&f.ty, &structs) else { continue };
        if inner(&f.ty, "Option").is_some() {
            continue;
        }
        let (heading, prefix, with_env): (String, Vec<&str>, bool) = if inner(&f.ty, "Vec").is_some() {
            (format!("[[{}]]", f.name), vec![], false)
        } else if inner(&f.ty, "BTreeMap").is_some() {
            (format!("[{}.<name>]", f.name), vec![], false)
        } else {
            (format!("[{}]", f.name), vec![f.name.as_str()], true)
        };
        let _ = writeln!(out, "## `{heading}`\n");
        let doc = if f.doc.is_empty() { &s.doc } else { &f.doc };
        if !doc.is_empty() {
            let _ = writeln!(out, "{doc}\n");
        }
        if inner(&f.ty, "BTreeMap").is_some() {
            let _ = writeln!(out, "Env: `KEYWAY_{}__<NAME>__<KEY>`.\n", f.name.to_ascii_uppercase());
        }
        if inner(&f.ty, "Vec").is_some() {
            let _ = writeln!(out, "A list of tables; in the environment, a TOML-style inline list: `KEYWAY_{}='[{{...}}]'`.\n", f.name.to_ascii_uppercase());
        }
        let d = if with_env { defaults.get(&f.name) } else { None };
        table(&mut out, s, &prefix, d, &structs, with_env);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(rel: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
    }

    #[test]
    fn every_config_field_is_documented_in_the_source() {
        let structs = parse(SOURCE);
        let root = structs.iter().find(|s| s.name == "Config");
        assert!(root.is_some_and(|r| r.fields.len() >= 10), "Config not parsed: {structs:?}");
        let rendered = render();
        for f in root.map(|r| r.fields.iter()).into_iter().flatten() {
            assert!(rendered.contains(f.name.as_str()), "{} missing from docs", f.name);
        }
        assert!(rendered.contains("`KEYWAY_LISTEN`"));
        assert!(rendered.contains("`KEYWAY_BILLING__CREDITS_ENABLED`"));
    }

    #[test]
    fn docs_config_md_is_current() {
        let path = repo_file("docs/config.md");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(on_disk == render(), "docs/config.md is out of date: run `cargo run -p keyway -- config-docs > docs/config.md`");
    }

    #[test]
    fn example_toml_loads_and_names_every_section() {
        let path = repo_file("keyway.example.toml");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.is_empty(), "keyway.example.toml is missing");
        let fig = figment::Figment::from(figment::providers::Serialized::defaults(Config::default()))
            .merge(<figment::providers::Toml as figment::providers::Format>::string(&text));
        let cfg = Config::from_figment(fig);
        assert!(cfg.is_ok(), "keyway.example.toml does not load: {cfg:?}");
        let structs = parse(SOURCE);
        for f in structs.iter().find(|s| s.name == "Config").map(|r| r.fields.iter()).into_iter().flatten() {
            assert!(text.contains(&f.name), "keyway.example.toml does not mention `{}`", f.name);
        }
        // Secrets only as references.
        for line in text.lines().filter(|l| l.trim_start().starts_with("key =") || l.contains("master_key =")) {
            let v = line.split_once('=').map(|(_, v)| v.trim().trim_matches('"')).unwrap_or("");
            assert!(v.starts_with("env:") || v.starts_with("file:"), "inline secret in keyway.example.toml: {line}");
        }
    }
}
