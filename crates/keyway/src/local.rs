//! Commands that open the store directly instead of calling a server: schema migration,
//! master-key rotation, moving a whole store (`store export` / `store import`). All are operator
//! maintenance on the machine that holds the data.

use anyhow::{anyhow, bail, Context};
use keyway_crypto::{Keyring, MasterKey};
use keyway_gateway::Config;
use keyway_store::Store;
use std::path::Path;
use std::sync::Arc;

/// Runs the schema migrations and nothing else: no master key is created, no workspace or
/// management key bootstrapped (that stays the first `keyway serve`'s job, which prints the key).
pub async fn migrate(config: Config) -> anyhow::Result<()> {
    let url = config.database_url();
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    }
    // Migrations never open a secret: a throwaway key, never written anywhere, satisfies the handle.
    let store = Store::connect(&url, Arc::new(Keyring::new(MasterKey::generate()))).await?;
    store.close().await;
    println!("Database schema is up to date: {}", store_place(&config));
    Ok(())
}

/// Rotates the keyring: a new keyring key, persisted (sealed under the root key) before anything
/// is sealed with it, then every record's data key re-wrapped under it in batches, each batch one
/// transaction. The root key (`master.key` or `KEYWAY_MASTER_KEY`) is not changed, so no file is
/// written and nothing can be left under a key that only this run knew. A row that can't be
/// opened is reported by id and left as it was; running the command again resumes and finishes.
/// Safe while a server runs (the server also offers it: `POST /api/v1/keyring/rotate`).
pub async fn rotate_master_key(config: Config) -> anyhow::Result<()> {
    let ring = keyway_gateway::state::load_keyring_from(&config, &config.data_dir, false).map_err(|e| anyhow!("{e}"))?;
    let store = Store::connect(&config.database_url(), Arc::new(ring)).await?;
    keyway_gateway::state::check_root_key(&store, &config).await.map_err(|e| anyhow!("{e}"))?;
    store.open_keyring().await?;
    let report = store.rotate_keyring().await;
    store.close().await;
    let report = report?;
    let verb = if report.resumed { "Resumed the rotation to" } else { "Rotated the keyring to" };
    println!("{verb} key {}: re-wrapped {} secret(s), {} already under it.", report.key_id, report.rewrapped, report.already_current);
    if report.failed.is_empty() {
        println!("Every stored secret is now sealed under {}. The root key ({}) is unchanged.", report.key_id, root_place(&config));
        return Ok(());
    }
    for f in &report.failed {
        eprintln!("  credential {}: {} (left as it was)", f.id, f.error);
    }
    bail!(
        "{} secret(s) could not be opened and were left as they were; every other one is under the new key. \
         Fix or delete those credentials, then run `keyway rotate-master-key` again to finish",
        report.failed.len()
    )
}

/// Where the configured store is, for messages: never the URL itself (a PostgreSQL URL may hold
/// a password).
fn store_place(config: &Config) -> String {
    match &config.database_url {
        Some(_) => "the PostgreSQL database (database_url)".to_owned(),
        None => Store::sqlite_url(&config.data_dir).trim_start_matches("sqlite://").to_owned(),
    }
}

/// `keyway store export`: the configured store, read as it is (not migrated), into a new file
/// created 0600. Written under a temporary name and renamed at the end, so `--file` names a
/// complete dump or nothing.
pub async fn store_export(config: Config, file: &Path) -> anyhow::Result<()> {
    if file.exists() {
        bail!("{} already exists: remove it or choose another --file", file.display());
    }
    if config.database_url.is_none() && !config.data_dir.join("keyway.db").is_file() {
        bail!("no store to export: {} does not exist (set --data-dir, or database_url / KEYWAY_DATABASE_URL)", store_place(&config));
    }
    // Export copies sealed values as they are and opens none: a throwaway key satisfies the handle.
    let store = Store::open_existing(&config.database_url(), Arc::new(Keyring::new(MasterKey::generate()))).await?;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "keyway.dump".into());
    let tmp = file.with_file_name(format!(".{name}.partial"));
    let created = {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?
    };
    let report = store.export_dump(std::io::BufWriter::new(created)).await;
    store.close().await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(anyhow!("export from {} failed: {e}", store_place(&config)));
        }
    };
    std::fs::rename(&tmp, file).with_context(|| format!("cannot rename {} to {}", tmp.display(), file.display()))?;
    println!("Exported {} (schema version {}) to {}:", store_place(&config), report.schema_version, file.display());
    print_counts(&report);
    if let Some(id) = &report.master_key_id {
        println!("Secrets are sealed for master key `{id}`: import with that key (this data dir's master.key, or KEYWAY_MASTER_KEY).");
    }
    println!("The file holds every row as stored (secrets sealed, key hashes, usage): protect it like a database backup.");
    Ok(())
}

/// `keyway store import`: a dump into the configured store, which must be empty. Migrates it
/// first (as `keyway migrate` would), then inserts everything in one transaction that commits
/// only once this node's root key has opened every keyring key and sealed credential.
pub async fn store_import(config: Config, file: &Path) -> anyhow::Result<()> {
    let input = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    // The node's root key, as `serve` will load it: the import proves it opens what it brings.
    let ring = keyway_gateway::state::load_keyring_from(&config, &config.data_dir, false).map_err(|e| anyhow!("{e}"))?;
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    }
    let store = Store::connect(&config.database_url(), Arc::new(ring)).await?;
    let report = store.import_dump(std::io::BufReader::new(input)).await;
    store.close().await;
    let report = report.map_err(|e| anyhow!("import into {} failed, nothing was written: {e}", store_place(&config)))?;
    println!("Imported {} into {} (schema version {}):", file.display(), store_place(&config), report.schema_version);
    print_counts(&report);
    println!("Every keyring key and stored secret opened with the configured master key. Start `keyway serve` on this store with that key.");
    Ok(())
}

fn print_counts(report: &keyway_store::DumpReport) {
    for (table, n) in &report.rows {
        println!("  {table:<18} {n:>10} row(s)");
    }
}

fn root_place(config: &Config) -> String {
    match config.master_key {
        Some(_) => "KEYWAY_MASTER_KEY".to_owned(),
        None => config.data_dir.join("master.key").display().to_string(),
    }
}

/// Creates an admin key directly in the store (the way back in when no admin key is left, or
/// the only one was lost) and prints it once. Needs the root key, like `serve`.
pub async fn create_admin_key(config: Config, name: &str) -> anyhow::Result<()> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        bail!("--name must be 1 to 200 characters");
    }
    let ring = keyway_gateway::state::load_keyring_from(&config, &config.data_dir, false).map_err(|e| anyhow!("{e}"))?;
    let store = Store::connect(&config.database_url(), Arc::new(ring)).await?;
    keyway_gateway::state::check_root_key(&store, &config).await.map_err(|e| anyhow!("{e}"))?;
    let ws = store
        .get_meta("default_workspace")
        .await?
        .ok_or_else(|| anyhow!("this store has never been started: run `keyway serve` once (it prints the first admin key)"))?;
    let (rec, raw) = store.create_key_with_role(&ws, name, keyway_store::Role::Admin, &Default::default()).await?;
    let admins = store.count_enabled_admins().await?;
    store.close().await;
    println!("Admin key `{}` created (hash {}); {admins} enabled admin key(s) now.", rec.name, rec.hash);
    println!("Admin key (shown once, store it now): {}", raw.as_str());
    Ok(())
}

/// Validates `file` as a catalog (and `[[pricing]]` against it, so the next start can't fail on
/// it), then installs it as `data_dir/catalog.json` through a rename: a reader never sees half a file.
pub fn install_catalog(config: &Config, file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let catalog = keyway_core::catalog::Catalog::from_json(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    keyway_core::pricing::apply_overrides(&catalog, &config.pricing).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    if let Some(other) = &config.catalog_file {
        eprintln!("note: `catalog_file` is set ({}); it takes precedence over the installed catalog", other.display());
    }
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let dest = config.data_dir.join(keyway_gateway::config::CATALOG_FILE);
    let tmp = config.data_dir.join(format!("{}.tmp", keyway_gateway::config::CATALOG_FILE));
    std::fs::write(&tmp, text.as_bytes()).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &dest).with_context(|| format!("cannot install {}", dest.display()))?;
    println!("Installed {} models as {}; restart `keyway serve` to use them.", catalog.models().len(), dest.display());
    Ok(())
}
