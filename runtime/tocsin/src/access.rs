//! API tokens from the command line and at start-up: the first admin token (written to
//! `admin.token` in the data directory, mode 0600, when the store has no admin), and
//! `tocsin token create|list|revoke` on a stopped instance's store.

use crate::run::now_ms;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tocsin_api::auth::{digest, new_secret};
use tocsin_store::{AuditEntry, Store, TokenRecord};

/// The file the first admin token is written to.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Create token `name` in `store`, audited as `actor`; answers the secret.
pub fn create(
    store: &Store,
    name: &str,
    role: &str,
    client: Option<&str>,
    actor: &str,
) -> anyhow::Result<String> {
    tocsin_api::check_new(name, role, client).map_err(anyhow::Error::msg)?;
    let secret = new_secret().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let now = now_ms();
    store.create_token(&TokenRecord {
        name: name.into(),
        role: role.into(),
        client: client.map(str::to_string),
        sha256: digest(&secret),
        created_ms: now,
        created_by: actor.into(),
    })?;
    store.audit(&AuditEntry {
        ts_ms: now,
        actor: actor.into(),
        action: "token.create".into(),
        target: name.into(),
        detail: format!("role {role}"),
    })?;
    Ok(secret)
}

/// When no admin token exists, create one and write its secret to `data_dir/admin.token`
/// (readable by this user only); answers the file when it did.
pub fn bootstrap_admin(store: &Store, data_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let tokens = store.tokens()?;
    if tokens.iter().any(|t| t.role == "admin") {
        return Ok(None);
    }
    let name = std::iter::once("admin".to_string())
        .chain((2..).map(|n| format!("admin-{n}")))
        .find(|n| tokens.iter().all(|t| &t.name != n))
        .unwrap_or_else(|| "admin".into());
    let secret = create(store, &name, "admin", None, "system")?;
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    write_private(&path, &format!("{secret}\n"))
        .with_context(|| format!("writing the admin token to {}", path.display()))?;
    Ok(Some(path))
}

/// The key chart links in messages are signed with: `data_dir/chart.key` (0600), made at
/// the first start. Links signed before a key change stop working; nothing else does.
pub fn chart_key(data_dir: &Path) -> anyhow::Result<tocsin_notify::chart_link::ChartKey> {
    let path = data_dir.join("chart.key");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(key) = hex::decode(text.trim())
        && key.len() >= 32
    {
        return Ok(tocsin_notify::chart_link::ChartKey(key));
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| anyhow::anyhow!("no randomness for the chart key: {e}"))?;
    write_private(&path, &format!("{}\n", hex::encode(key)))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(tocsin_notify::chart_link::ChartKey(key.to_vec()))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        // An older file keeps its mode through `open`: tighten it.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn open(data_dir: &Path) -> anyhow::Result<Store> {
    let path = data_dir.join("tocsin.redb");
    Store::open(&path).with_context(|| {
        format!(
            "opening {} (while Tocsin runs, manage tokens over the API: POST /api/tokens)",
            path.display()
        )
    })
}

/// `tocsin token create`.
pub fn cli_create(
    data_dir: &Path,
    name: &str,
    role: &str,
    client: Option<&str>,
) -> anyhow::Result<()> {
    let store = open(data_dir)?;
    let secret = create(&store, name, role, client, "cli")?;
    println!("{secret}");
    eprintln!("token `{name}` ({role}) created; this is the only time its secret is shown");
    Ok(())
}

/// `tocsin token list`.
pub fn cli_list(data_dir: &Path) -> anyhow::Result<()> {
    let store = open(data_dir)?;
    for t in store.tokens()? {
        let client = t.client.map(|c| format!(" client={c}")).unwrap_or_default();
        println!(
            "{}\t{}{client}\tcreated by {}",
            t.name, t.role, t.created_by
        );
    }
    Ok(())
}

/// `tocsin token revoke`.
pub fn cli_revoke(data_dir: &Path, name: &str) -> anyhow::Result<()> {
    let store = open(data_dir)?;
    let old = store.revoke_token(name)?;
    store.audit(&AuditEntry {
        ts_ms: now_ms(),
        actor: "cli".into(),
        action: "token.revoke".into(),
        target: old.name.clone(),
        detail: format!("role {}", old.role),
    })?;
    println!("revoked `{}` ({})", old.name, old.role);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_start_writes_one_private_admin_token() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("db")).expect("store");
        create(&store, "admin", "operator", None, "test").expect("a non-admin named admin");
        let path = bootstrap_admin(&store, dir.path())
            .expect("bootstrap")
            .expect("written");
        let secret = std::fs::read_to_string(&path).expect("read");
        let tokens = store.tokens().expect("tokens");
        let admin = tokens.iter().find(|t| t.role == "admin").expect("admin");
        assert_eq!(admin.name, "admin-2");
        assert_eq!(admin.sha256, digest(secret.trim()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(bootstrap_admin(&store, dir.path()).expect("again"), None);
        assert_eq!(store.audit_log(0, 10).expect("audit")[0].actor, "system");
    }
}
