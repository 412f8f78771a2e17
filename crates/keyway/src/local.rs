//! Commands that open the store directly instead of calling a server: schema migration and
//! master-key rotation. Both are operator maintenance on the machine that holds the data.

use anyhow::{anyhow, bail, Context};
use keyway_crypto::{Keyring, MasterKey};
use keyway_gateway::state::write_private;
use keyway_gateway::Config;
use keyway_store::Store;
use secrecy::ExposeSecret;
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
    // Never the URL itself: a PostgreSQL URL may hold a password.
    let place = match &config.database_url {
        Some(_) => "the PostgreSQL database (database_url)".to_owned(),
        None => Store::sqlite_url(&config.data_dir).trim_start_matches("sqlite://").to_owned(),
    };
    println!("Database schema is up to date: {place}");
    Ok(())
}

/// Generates a new master key, re-wraps every sealed secret under it, and installs it.
///
/// Order matters for a crash halfway: the new key is written (as `master.key.new`) before any
/// row changes, and rows name the key that sealed them, so with both files present every row
/// still opens. Stop the server first: a running server would keep sealing with the old key.
pub async fn rotate_master_key(config: Config) -> anyhow::Result<()> {
    let dir = config.data_dir.clone();
    let file = dir.join("master.key");
    let from_env = config.master_key.is_some();
    let old = match &config.master_key {
        Some(b64) => MasterKey::from_base64(b64.expose_secret()).map_err(|e| anyhow!("KEYWAY_MASTER_KEY: {e}"))?,
        None => {
            let s = std::fs::read_to_string(&file).with_context(|| format!("no master key to rotate at {}", file.display()))?;
            MasterKey::from_base64(&s).map_err(|e| anyhow!("{}: {e}", file.display()))?
        }
    };
    let old_id = old.id().to_owned();
    let new = MasterKey::generate();
    let new_b64 = new.to_base64();
    let new_id = new.id().to_owned();

    let staged = dir.join("master.key.new");
    if !from_env {
        // A leftover from an interrupted rotation holds a key some rows may be sealed with.
        if staged.exists() {
            bail!("{} exists (an interrupted rotation?): keep it until you know no row needs it, then remove it and retry", staged.display());
        }
        write_private(&staged, new_b64.as_bytes()).with_context(|| format!("cannot write {}", staged.display()))?;
    }

    let mut ring = Keyring::new(new).with_retired(old);
    for r in &config.retired_master_keys {
        ring = ring.with_retired(MasterKey::from_base64(r.expose_secret()).map_err(|e| anyhow!("retired_master_keys: {e}"))?);
    }
    let store = Store::connect(&config.database_url(), Arc::new(ring)).await?;
    let changed = store.reseal_all().await?;
    store.set_meta("master_key_id", &new_id).await?;
    store.close().await;

    if from_env {
        println!("Re-sealed {changed} secret(s) from master key {old_id} to {new_id}.");
        println!("KEYWAY_MASTER_KEY is in use, so no file was written. Set, before the next start:");
        println!("  KEYWAY_MASTER_KEY={}", new_b64.as_str());
        println!("The old key is no longer needed once every node runs with the new one.");
    } else {
        install(&dir, &file, &staged)?;
        println!("Re-sealed {changed} secret(s) from master key {old_id} to {new_id}.");
        println!("New key: {} (0600). Old key kept as {} (0600); delete it once you have a backup of the new one.", file.display(), dir.join("master.key.old").display());
    }
    Ok(())
}

/// master.key -> master.key.old, master.key.new -> master.key (renames are atomic on one filesystem).
fn install(dir: &Path, file: &Path, staged: &Path) -> anyhow::Result<()> {
    let old = dir.join("master.key.old");
    if old.exists() {
        std::fs::remove_file(&old).with_context(|| format!("cannot replace {}", old.display()))?;
    }
    std::fs::rename(file, &old).with_context(|| format!("cannot move {} aside", file.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(staged, file).with_context(|| format!("cannot install {}", file.display()))?;
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
