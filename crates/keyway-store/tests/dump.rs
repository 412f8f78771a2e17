//! `keyway store export` / `import` at the store level: the dump's table list is the migrated
//! schema (so a migration can't add a column the dump leaves out), a store moves between engines
//! value for value with its secrets still opening, and every refusal writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyway_core::{Credential, ProviderSlug};
use keyway_crypto::{Keyring, MasterKey};
use keyway_store::*;
use serde_json::json;
use std::sync::Arc;

mod common;
use common::*;

#[tokio::test]
async fn dump_tables_are_the_migrated_schema() {
    each_engine(|s| async move {
        let mut tables = s.schema_tables().await.unwrap();
        tables.sort();
        let mut listed: Vec<String> = DUMP_TABLES.iter().map(|t| t.name.to_owned()).collect();
        listed.sort();
        assert_eq!(tables, listed, "{:?}: the migrations' tables differ from keyway_store::DUMP_TABLES; update the list", s.engine());
        for t in DUMP_TABLES {
            let mut actual = s.schema_columns(t.name).await.unwrap();
            actual.sort_by(|a, b| a.0.cmp(&b.0));
            let mut want: Vec<(String, Option<ColumnKind>)> = t.columns.iter().map(|(c, k)| ((*c).to_owned(), Some(*k))).collect();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(actual, want, "{:?}: columns of `{}` differ from keyway_store::DUMP_TABLES; update the list", s.engine(), t.name);
        }
        assert_eq!(s.check_dump_schema().await.unwrap(), Store::known_schema_version());
    })
    .await;
}

/// Import inserts in list order: every table a table references must come before it.
#[tokio::test]
async fn dump_tables_are_in_foreign_key_order() {
    let (_s, dir) = sqlite().await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&Store::sqlite_url(dir.path())).await.unwrap();
    for (i, t) in DUMP_TABLES.iter().enumerate() {
        let refs: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_list(?)").bind(t.name).fetch_all(&pool).await.unwrap();
        for (r,) in refs {
            assert!(DUMP_TABLES[..i].iter().any(|d| d.name == r), "`{}` references `{r}`, which DUMP_TABLES lists after it", t.name);
        }
    }
}

const SECRET: &str = "sk-dump-SECRETVALUE-0001";
const GLOBAL_SECRET: &str = "sk-dump-GLOBALVALUE-0002";

/// A store with a row in every table, a rotated keyring (a retired and an active key), a scoped
/// and a global credential. Returns the store, its root key and the credentials' ids.
async fn populated(url: &str) -> (Store, MasterKey, Vec<String>) {
    let root = MasterKey::generate();
    let s = Store::connect(url, Arc::new(Keyring::new(root.clone()))).await.unwrap();
    let ws = match s.bootstrap(root.id(), None).await.unwrap() {
        Bootstrapped::Created { workspace_id, .. } => workspace_id,
        Bootstrapped::Existing { .. } => panic!("a fresh store was already bootstrapped"),
    };
    s.open_keyring().await.unwrap();
    let cred = Credential::parse(ProviderSlug::OpenAi, &json!(SECRET)).unwrap();
    let scoped = s.create_byok(&ws, ProviderSlug::OpenAi, &ByokFields { name: "main ✓ 'quoted'".into(), sort_order: 3, ..Default::default() }, &cred).await.unwrap();
    // The scoped one under the first keyring key, the global one under the second.
    s.rotate_keyring().await.unwrap();
    let global = Credential::parse(ProviderSlug::OpenAi, &json!(GLOBAL_SECRET)).unwrap();
    let global = s.create_byok_in(None, ProviderSlug::OpenAi, &ByokFields { name: "everyone".into(), ..Default::default() }, &global).await.unwrap();
    s.create_key(&ws, "app", KeyKind::Inference, false, &Default::default()).await.unwrap();
    let rows: Vec<GenerationRow> = (0..75)
        .map(|i| GenerationRow {
            user_id: (i % 2 == 0).then(|| format!("user-{i}")),
            ttft_ms: (i % 3 == 0).then_some(i),
            app_title: Some("héllo \"✓\"\n".into()),
            route_plan: (i % 4 == 0).then(|| Arc::new(RoutePlan::new(format!(r#"{{"candidates":[],"n":{}}}"#, i % 8)))),
            ..gen(&format!("gen-{i:04}"), &ws, "kh", "openai/gpt-4o-mini", Some("openai"), i % 2 == 1, i * 3, i, 1_000 + i)
        })
        .collect();
    s.insert_generations(Arc::from(rows)).await.unwrap();
    s.add_credits(&ws, CreditKind::Topup, 5_000_000, Some("first"), None).await.unwrap();
    s.record_audit(&AuditRow {
        id: "audit-1".into(),
        at: 42,
        workspace_id: None,
        actor_key: "kh".into(),
        actor_name: "ops".into(),
        source: Some("127.0.0.1".into()),
        action: "byok.create".into(),
        target_type: "byok".into(),
        target_id: Some(scoped.id.clone()),
        changes: json!({"name": "main"}),
        outcome: "ok".into(),
    })
    .await
    .unwrap();
    (s, root, vec![scoped.id, global.id])
}

async fn export(s: &Store) -> (String, DumpReport) {
    let mut out = Vec::new();
    let report = s.export_dump(&mut out).await.unwrap();
    (String::from_utf8(out).unwrap(), report)
}

/// Everything but the header (which names the engine and the time), sorted: two stores hold the
/// same values exactly when these are equal.
fn body(dump: &str) -> Vec<String> {
    let mut lines: Vec<String> = dump.lines().skip(1).map(str::to_owned).collect();
    lines.sort();
    lines
}

async fn rows_in(url: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut n = 0;
    for t in DUMP_TABLES {
        let (c,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {}", t.name)).fetch_one(&pool).await.unwrap();
        n += c;
    }
    pool.close().await;
    n
}

async fn fresh_target(ring: Keyring) -> (String, Store, Option<tempfile::TempDir>) {
    let (url, dir) = match postgres_url().await {
        Some(url) => (url, None),
        None => {
            let dir = tempfile::tempdir().unwrap();
            (Store::sqlite_url(dir.path()), Some(dir))
        }
    };
    let s = Store::connect(&url, Arc::new(ring)).await.unwrap();
    (url, s, dir)
}

#[tokio::test]
async fn a_store_moves_to_postgres_and_back_value_for_value() {
    let src_dir = tempfile::tempdir().unwrap();
    let (src, root, ids) = populated(&Store::sqlite_url(src_dir.path())).await;
    let (dump, report) = export(&src).await;
    assert!(!dump.contains("SECRETVALUE") && !dump.contains("GLOBALVALUE"), "a secret reached the dump in the clear");
    let header: serde_json::Value = serde_json::from_str(dump.lines().next().unwrap()).unwrap();
    assert_eq!(header["format"], "keyway-store-dump");
    assert_eq!(header["version"], 1);
    assert_eq!(header["schema_version"], Store::known_schema_version());
    assert_eq!(header["source_engine"], "sqlite");
    let end: serde_json::Value = serde_json::from_str(dump.lines().last().unwrap()).unwrap();
    assert_eq!(end["end"], true);
    assert_eq!(end["rows"]["generations"], 75);
    assert_eq!(end["rows"]["keyring_keys"], 2);
    assert_eq!(report.master_key_id.as_deref(), Some(root.id()));

    // To PostgreSQL (or another SQLite file without a server) with the same root key.
    let (_url, mid, _d) = fresh_target(Keyring::new(root.clone())).await;
    let imported = mid.import_dump(dump.as_bytes()).await.unwrap();
    assert_eq!(imported.rows, report.rows);
    let (mid_dump, _) = export(&mid).await;
    assert_eq!(body(&mid_dump), body(&dump));
    mid.open_keyring().await.unwrap();
    assert_eq!(mid.open_byok(None, &ids[0]).await.unwrap().1.secret_strings(), vec![SECRET]);
    assert_eq!(mid.open_byok(None, &ids[1]).await.unwrap().1.secret_strings(), vec![GLOBAL_SECRET]);

    // And back to a fresh SQLite file.
    let back_dir = tempfile::tempdir().unwrap();
    let back = Store::connect(&Store::sqlite_url(back_dir.path()), Arc::new(Keyring::new(root.clone()))).await.unwrap();
    back.import_dump(mid_dump.as_bytes()).await.unwrap();
    let (back_dump, _) = export(&back).await;
    assert_eq!(body(&back_dump), body(&dump));
    // Same engine, same order: the dumps agree line for line after the header.
    assert_eq!(back_dump.lines().skip(1).collect::<Vec<_>>(), dump.lines().skip(1).collect::<Vec<_>>());
}

/// Each broken dump is refused with a message naming where, and the target keeps no row.
#[tokio::test]
async fn a_refused_import_writes_nothing() {
    let src_dir = tempfile::tempdir().unwrap();
    let (src, root, _) = populated(&Store::sqlite_url(src_dir.path())).await;
    let (dump, _) = export(&src).await;
    let lines: Vec<&str> = dump.lines().collect();
    let sealed_values: Vec<String> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Vec<serde_json::Value>>(l).ok())
        .flat_map(|row| row.into_iter().filter_map(|v| v.as_str().filter(|s| s.starts_with("v1.")).map(str::to_owned)))
        .collect();
    assert!(sealed_values.len() >= 4, "keyring keys and credentials are sealed");

    let without_end = lines[..lines.len() - 1].join("\n");
    let bad_json = lines.iter().enumerate().map(|(i, l)| if i == 5 { "[\"cut" } else { l }).collect::<Vec<_>>().join("\n");
    let bad_columns = dump.replace(r#""columns":["key","value"]"#, r#""columns":["key","value","extra"]"#);
    let bad_version = dump.replacen(&format!("\"schema_version\":{}", Store::known_schema_version()), "\"schema_version\":1", 1);
    let bad_count = dump.replace("\"generations\":75", "\"generations\":74");
    // Two credentials' sealed secrets swapped: each is bound to its own row, so neither opens.
    let start = lines.iter().position(|l| l.starts_with(r#"{"table":"byok_credentials""#)).unwrap();
    let byok = [start + 1, start + 2];
    let swapped = {
        let a: Vec<serde_json::Value> = serde_json::from_str(lines[byok[0]]).unwrap();
        let b: Vec<serde_json::Value> = serde_json::from_str(lines[byok[1]]).unwrap();
        let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        let (mut a2, mut b2) = (a.clone(), b.clone());
        a2[5] = b[5].clone();
        b2[5] = a[5].clone();
        out[byok[0]] = serde_json::to_string(&a2).unwrap();
        out[byok[1]] = serde_json::to_string(&b2).unwrap();
        out.join("\n")
    };

    let cases: Vec<(&str, String, Keyring, &str)> = vec![
        ("another root key", dump.clone(), Keyring::new(MasterKey::generate()), "keyring_keys row"),
        ("no end line", without_end, Keyring::new(root.clone()), "without its end line"),
        ("bad JSON", bad_json, Keyring::new(root.clone()), "dump line 6: not JSON"),
        ("column mismatch", bad_columns, Keyring::new(root.clone()), "table `meta` has columns [key, value, extra]"),
        ("schema version", bad_version, Keyring::new(root.clone()), "made at schema version 1"),
        ("row count", bad_count, Keyring::new(root.clone()), "counts 74 rows in `generations`"),
        ("swapped secrets", swapped, Keyring::new(root.clone()), "byok_credentials row"),
    ];
    for (what, text, ring, expect) in cases {
        let (url, target, _d) = fresh_target(ring).await;
        let err = target.import_dump(text.as_bytes()).await.expect_err(what).to_string();
        assert!(err.contains(expect), "{what}: {err}");
        for v in &sealed_values {
            assert!(!err.contains(v.as_str()), "{what}: the error shows a sealed value: {err}");
        }
        target.close().await;
        assert_eq!(rows_in(&url).await, 0, "{what}: rows were left behind");
    }

    // A target that holds anything is refused, and keeps exactly what it had.
    let (url, target, _d) = fresh_target(Keyring::new(root.clone())).await;
    target.import_dump(dump.as_bytes()).await.unwrap();
    let before = rows_in(&url).await;
    let err = target.import_dump(dump.as_bytes()).await.unwrap_err().to_string();
    assert!(err.contains("the target already holds data"), "{err}");
    assert_eq!(rows_in(&url).await, before);
}

/// Export refuses a store whose schema is not this build's newest instead of leaving data out.
#[tokio::test]
async fn export_refuses_an_unknown_column() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    let s = Store::connect(&url, Arc::new(Keyring::new(MasterKey::generate()))).await.unwrap();
    sqlx::query("ALTER TABLE workspaces ADD COLUMN color TEXT").execute(&sqlx::AnyPool::connect(&url).await.unwrap()).await.unwrap();
    let err = s.export_dump(Vec::new()).await.unwrap_err().to_string();
    assert!(err.contains("table `workspaces`") && err.contains("unexpected: [color]"), "{err}");
}
