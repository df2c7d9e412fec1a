//! Hot reload: the policy directory is the desired set. One path serves the start, the file
//! watcher and rollback: read → parse → verify the pinned hash → compile (cached) → check
//! imports against grants → run the manifest's fixtures → refuse new grants unless allowed → record the version (with
//! its component) in the store → swap at an evaluation boundary (the scheduler applies the
//! new version between two evaluations; a collector's thread finishes its round first).
//! Only policies whose manifest or component changed are touched. Any failure leaves the
//! running version in place and is shown in `/api/guests` errors, the log and the audit log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tocsin_alerting::{Command, Control};
use tocsin_api::AppState;
use tocsin_engine::{Engine, Guest, GuestKind, sha256_hex};
use tocsin_policy::{PolicyFiles, load_files, read_files};
use tocsin_store::{AuditEntry, PolicyVersion, Store};

use crate::run::now_ms;

/// A running policy version.
struct Running {
    fingerprint: String,
    guest: Guest,
    grants: BTreeSet<String>,
    /// Set to retire a collector thread.
    retired: Option<Arc<AtomicBool>>,
}

/// What a reconcile did.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    /// Policies (re)deployed.
    pub deployed: Vec<String>,
    /// Policies stopped because their manifest is gone.
    pub removed: Vec<String>,
    /// Policies refused, with why (their previous version, if any, keeps running).
    pub refused: Vec<(String, String)>,
}

/// The running policy set and the way to change it.
pub struct Reloader {
    dir: PathBuf,
    engine: Engine,
    store: Arc<Store>,
    state: AppState,
    control: Control,
    stop: Arc<AtomicBool>,
    allow_new_grants: bool,
    running: BTreeMap<String, Running>,
    /// The fingerprint of each manifest as last seen on disk: a file is deployed when it
    /// changes, not whenever it differs from what runs (after a rollback it does).
    on_disk: BTreeMap<String, String>,
    /// Refused versions by fingerprint, so a broken file is not recompiled every scan.
    refused: BTreeMap<String, (String, String)>,
}

fn fingerprint(files: &PolicyFiles) -> String {
    format!(
        "{}:{}",
        sha256_hex(files.text.as_bytes()),
        sha256_hex(&files.component)
    )
}

impl Reloader {
    /// A reloader over `dir`, nothing running yet.
    pub fn new(
        dir: &Path,
        engine: Engine,
        store: Arc<Store>,
        state: AppState,
        control: Control,
        stop: Arc<AtomicBool>,
        allow_new_grants: bool,
    ) -> Reloader {
        Reloader {
            dir: dir.to_path_buf(),
            engine,
            store,
            state,
            control,
            stop,
            allow_new_grants,
            running: BTreeMap::new(),
            on_disk: BTreeMap::new(),
            refused: BTreeMap::new(),
        }
    }

    fn audit(&self, actor: &str, action: &str, target: &str, detail: String) {
        let entry = AuditEntry {
            ts_ms: now_ms(),
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            detail,
        };
        if let Err(e) = self.store.audit(&entry) {
            tracing::error!(error = %e, "audit entry not written");
        }
    }

    /// Bring the running set in line with the directory.
    pub fn reconcile(&mut self, actor: &str) -> Report {
        let mut report = Report::default();
        let mut present = BTreeSet::new();
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(listing) => listing
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "policy directory unreadable; keeping what runs");
                return report;
            }
        };
        // Collectors first, so rules and scorers deployed with them find data.
        let collector = |p: &PathBuf| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| tocsin_policy::Manifest::parse(&t, p).ok())
                .is_some_and(|m| m.kind == GuestKind::Collector)
        };
        paths.sort_by_key(|p| (!collector(p), p.clone()));
        for path in paths {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            present.insert(name.clone());
            let files = match read_files(&path) {
                Ok(f) => f,
                Err(e) => {
                    self.refuse(
                        &name,
                        "unreadable".into(),
                        e.to_string(),
                        actor,
                        &mut report,
                    );
                    continue;
                }
            };
            let fp = fingerprint(&files);
            let seen = self.on_disk.insert(name.clone(), fp.clone());
            if seen.as_ref() == Some(&fp) && self.running.contains_key(&name) {
                continue;
            }
            if self.running.get(&name).is_some_and(|r| r.fingerprint == fp) {
                self.refused.remove(&name);
                continue;
            }
            if self.refused.get(&name).is_some_and(|(f, _)| *f == fp) {
                continue;
            }
            match self.deploy(files, &fp, actor, true) {
                Ok(()) => {
                    self.refused.remove(&name);
                    report.deployed.push(name);
                }
                Err(e) => {
                    self.refuse(&name, fp, e, actor, &mut report);
                    // Nothing runs yet (a start): run the recorded version instead, so a
                    // refused file never leaves a policy down.
                    if !self.running.contains_key(&name) {
                        self.restore_recorded(&name, actor);
                    }
                }
            }
        }
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|n| !present.contains(*n))
            .cloned()
            .collect();
        for name in gone {
            self.retire(&name);
            self.state.templates().remove(&name);
            self.state.charts().remove(&name);
            self.running.remove(&name);
            self.refused.remove(&name);
            self.on_disk.remove(&name);
            self.audit(actor, "policy.remove", &name, "manifest removed".into());
            report.removed.push(name);
        }
        self.refused.retain(|n, _| present.contains(n));
        self.on_disk.retain(|n, _| present.contains(n));
        self.publish();
        report
    }

    fn refuse(&mut self, name: &str, fp: String, error: String, actor: &str, report: &mut Report) {
        let keeps = if self.running.contains_key(name) {
            "; the previous version keeps running"
        } else {
            ""
        };
        tracing::error!(policy = %name, error = %error, "policy refused{keeps}");
        self.audit(actor, "policy.refused", name, error.clone());
        report.refused.push((name.to_string(), error.clone()));
        self.refused
            .insert(name.to_string(), (fp, format!("{error}{keeps}")));
    }

    /// The grants new versions of `name` are compared with: the running version's, else
    /// the recorded current one's (at a start); `None` for a new policy.
    fn granted(&self, name: &str) -> Result<Option<BTreeSet<String>>, String> {
        match self.running.get(name) {
            Some(r) => Ok(Some(r.grants.clone())),
            None => Ok(self
                .store
                .current_policy_version(name)
                .map_err(|e| e.to_string())?
                .map(|v| v.grants.into_iter().collect())),
        }
    }

    /// Load, check and start one version; on error nothing changes.
    /// `record`: record a new version (a rollback returns to a recorded one instead).
    fn deploy(
        &mut self,
        files: PolicyFiles,
        fp: &str,
        actor: &str,
        record: bool,
    ) -> Result<(), String> {
        let policy = load_files(&self.engine, &files).map_err(|e| e.to_string())?;
        let failed: Vec<String> = tocsin_policy::run_fixtures(&policy)
            .into_iter()
            .filter_map(|r| {
                r.failure
                    .map(|f| format!("fixture `{}` failed: {f}", r.name))
            })
            .collect();
        if !failed.is_empty() {
            return Err(format!("{}: {}", files.path.display(), failed.join("; ")));
        }
        let grants: BTreeSet<String> = policy.manifest.grants.iter().cloned().collect();
        let before = self.granted(&policy.name)?;
        if let Some(before) = before {
            let added: Vec<&String> = grants.difference(&before).collect();
            if !added.is_empty() && !self.allow_new_grants {
                return Err(format!(
                    "{}: this version asks for new grants {added:?} (running: {:?}); \
                     confirm with `policies.allow_new_grants = true`",
                    files.path.display(),
                    before
                ));
            }
        }
        let sha = policy.guest.sha256().to_string();
        let version = if record {
            let v = self
                .store
                .record_policy_version(
                    &policy.name,
                    &sha,
                    &files.text,
                    &files.component,
                    &grants.iter().cloned().collect::<Vec<_>>(),
                    now_ms(),
                    actor,
                )
                .map_err(|e| e.to_string())?;
            Some(v.version)
        } else {
            None
        };
        // A rule or scorer is replaced in place by the scheduler (keeping its slot in the
        // schedule); anything else is stopped first.
        let in_place = matches!(
            policy.manifest.kind,
            GuestKind::AlertRule | GuestKind::Scorer
        ) && self
            .running
            .get(&policy.name)
            .is_some_and(|r| r.retired.is_none());
        if !in_place {
            self.retire(&policy.name);
        }
        let retired = match policy.manifest.kind {
            GuestKind::Collector => {
                let retired = Arc::new(AtomicBool::new(false));
                crate::collector::spawn_collector(
                    policy.clone(),
                    self.state.clone(),
                    self.store.clone(),
                    self.stop.clone(),
                    retired.clone(),
                )
                .map_err(|e| e.to_string())?;
                Some(retired)
            }
            GuestKind::AlertRule | GuestKind::Scorer => {
                if policy.manifest.kind == GuestKind::AlertRule {
                    self.state.charts().set(
                        &policy.name,
                        tocsin_notify::RuleChart {
                            select: policy.manifest.input.select.clone(),
                            threshold: policy
                                .manifest
                                .params
                                .get("threshold")
                                .and_then(|t| t.trim().parse().ok()),
                        },
                    );
                }
                self.control
                    .send(Command::Upsert(Box::new(policy.clone())))
                    .map_err(|_| "the scheduler has stopped".to_string())?;
                None
            }
            GuestKind::Template => {
                self.state
                    .templates()
                    .set(&policy.guest, &policy.template_kinds());
                None
            }
            // Ingest guests are called on demand; loading them is enough.
            _ => None,
        };
        if let Some(version) = version {
            self.audit(
                actor,
                "policy.deploy",
                &policy.name,
                format!("version {version} sha256 {sha}"),
            );
            tracing::info!(policy = %policy.name, version, sha256 = %sha, "policy deployed");
        }
        self.running.insert(
            policy.name.clone(),
            Running {
                fingerprint: fp.to_string(),
                guest: policy.guest,
                grants,
                retired,
            },
        );
        Ok(())
    }

    /// Stop the running version of `name` (collector thread, or scheduler job).
    fn retire(&self, name: &str) {
        if let Some(r) = self.running.get(name) {
            match &r.retired {
                Some(flag) => flag.store(true, Ordering::Relaxed),
                None => {
                    let _ = self.control.send(Command::Remove(name.to_string()));
                }
            }
        }
    }

    fn publish(&self) {
        let guests = self.running.values().map(|r| r.guest.clone()).collect();
        let errors = self
            .refused
            .iter()
            .map(|(n, (_, e))| format!("{n}: {e}"))
            .collect();
        self.state.set_guests(guests, errors);
    }

    /// The running version of alert rule `name`, loaded again as a guest of its own (its
    /// calls count in their own counters: a backtest never touches the live rule's
    /// counters or its quarantine). The compile is cached.
    fn running_policy(&self, name: &str) -> Result<tocsin_policy::LoadedPolicy, String> {
        if !self.running.contains_key(name) {
            return Err(format!("no policy named `{name}` runs"));
        }
        let version = self
            .store
            .current_policy_version(name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("policy `{name}` has no recorded version"))?;
        let files = self.recorded_files(&version)?;
        let policy = load_files(&self.engine, &files).map_err(|e| e.to_string())?;
        if policy.manifest.kind != GuestKind::AlertRule {
            return Err(format!("`{name}` is not an alert rule"));
        }
        Ok(policy)
    }

    /// Start the recorded current version of `name` from the store (component and
    /// manifest as deployed), when there is one.
    fn restore_recorded(&mut self, name: &str, actor: &str) {
        let current = match self.store.current_policy_version(name) {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(policy = %name, error = %e, "reading the recorded version failed");
                return;
            }
        };
        match self.deploy_recorded(&current, actor) {
            Ok(()) => {
                tracing::warn!(policy = %name, version = current.version, "running the recorded version instead of the refused file");
                self.audit(
                    actor,
                    "policy.restore",
                    name,
                    format!(
                        "recorded version {} runs; the file was refused",
                        current.version
                    ),
                );
            }
            Err(e) => {
                tracing::error!(policy = %name, error = %e, "the recorded version does not load either");
            }
        }
    }

    /// Deploy a version whose grants were already answered for (a recorded version, a
    /// confirmed upload).
    fn deploy_confirmed(
        &mut self,
        files: PolicyFiles,
        fp: &str,
        actor: &str,
        record: bool,
    ) -> Result<(), String> {
        let allow = std::mem::replace(&mut self.allow_new_grants, true);
        let result = self.deploy(files, fp, actor, record);
        self.allow_new_grants = allow;
        result
    }

    /// The files of recorded version `v`: its manifest and component, from the store.
    fn recorded_files(&self, v: &PolicyVersion) -> Result<PolicyFiles, String> {
        let component = self
            .store
            .component(&v.sha256)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("component {} is not in the store", v.sha256))?;
        Ok(PolicyFiles {
            name: v.policy.clone(),
            path: self.dir.join(format!("{}.toml", v.policy)),
            text: v.manifest.clone(),
            component,
        })
    }

    /// Start recorded version `v` again, from the manifest and component in the store.
    fn deploy_recorded(&mut self, v: &PolicyVersion, actor: &str) -> Result<(), String> {
        let files = self.recorded_files(v)?;
        let fp = fingerprint(&files);
        self.deploy_confirmed(files, &fp, actor, false)
    }

    /// Return `name` to its previous recorded version (loaded from the store, so the
    /// files may have changed since). The files on disk are not touched: it stays rolled
    /// back until they change again (or the next start, which deploys what is on disk).
    pub fn rollback(&mut self, name: &str, actor: &str) -> Result<PolicyVersion, String> {
        let versions = self
            .store
            .policy_versions(name)
            .map_err(|e| e.to_string())?;
        let current = self
            .store
            .current_policy_version(name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("policy `{name}` has no recorded version"))?;
        let previous = versions
            .iter()
            .rev()
            .find(|v| v.version < current.version)
            .ok_or_else(|| format!("policy `{name}` has no version before {}", current.version))?
            .clone();
        // Grants of an older version are not new: allowed for the rollback.
        self.deploy_recorded(&previous, actor)?;
        let back = self
            .store
            .set_current_policy_version(name, previous.version)
            .map_err(|e| e.to_string())?;
        self.audit(
            actor,
            "policy.rollback",
            name,
            format!("to version {}", back.version),
        );
        self.publish();
        Ok(back)
    }
}

/// Point a manifest's top-level `component = ...` at `file` (beside the manifest).
fn point_component(text: &str, file: &str) -> Result<String, String> {
    let mut out = Vec::new();
    let mut done = false;
    let mut in_table = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            in_table = true;
        }
        let is_component = !in_table
            && t.strip_prefix("component")
                .is_some_and(|rest| rest.trim_start().starts_with('='));
        if is_component && !done {
            out.push(format!("component = {file:?}"));
            done = true;
        } else {
            out.push(line.to_string());
        }
    }
    if !done {
        return Err("the manifest has no top-level `component = ...`".into());
    }
    Ok(out.join("\n") + "\n")
}

/// Write `bytes` to `path` through a hidden temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Reloader {
    /// Deploy an uploaded version of `name` (the API's deploy): the same checks as a file
    /// change — hash, compile, imports vs grants, fixtures — and a grant diff against the
    /// running version that refuses added grants unless `allow_new_grants`. Once it runs,
    /// the manifest and component are written into the policy directory (`NAME.toml`,
    /// `NAME.wasm`), so the deployed version is what the next start loads.
    pub fn upload(
        &mut self,
        name: &str,
        manifest: &str,
        component: Vec<u8>,
        allow_new_grants: bool,
        actor: &str,
    ) -> Result<PolicyVersion, tocsin_api::DeployRefusal> {
        use tocsin_api::DeployRefusal as R;
        let valid = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(R::Invalid(format!(
                "policy name `{name}`: 1 to 64 letters, digits, `-`, `_` or `.`"
            )));
        }
        let component_file = format!("{name}.wasm");
        let text = point_component(manifest, &component_file).map_err(R::Invalid)?;
        let path = self.dir.join(format!("{name}.toml"));
        let parsed =
            tocsin_policy::Manifest::parse(&text, &path).map_err(|e| R::Invalid(e.to_string()))?;
        let grants: BTreeSet<String> = parsed.grants.iter().cloned().collect();
        let before = self.granted(name).map_err(R::Invalid)?;
        if let Some(before) = &before {
            let added: Vec<String> = grants.difference(before).cloned().collect();
            if !added.is_empty() && !allow_new_grants && !self.allow_new_grants {
                return Err(R::NewGrants {
                    added,
                    running: before.iter().cloned().collect(),
                });
            }
        }
        let files = PolicyFiles {
            name: name.to_string(),
            path: path.clone(),
            text,
            component,
        };
        let fp = fingerprint(&files);
        let unchanged = self.running.get(name).is_some_and(|r| r.fingerprint == fp);
        if !unchanged {
            // The grant diff was answered above: the deploy itself may add them.
            if let Err(e) = self.deploy_confirmed(files.clone(), &fp, actor, true) {
                self.audit(actor, "policy.refused", name, e.clone());
                return Err(R::Invalid(e));
            }
        }
        // Component first: a manifest never names a file that is not there yet.
        write_atomic(&self.dir.join(&component_file), &files.component)
            .and_then(|()| write_atomic(&path, files.text.as_bytes()))
            .map_err(|e| {
                R::Invalid(format!(
                    "deployed, but not saved to {}: {e} (the next start loads what is there)",
                    self.dir.display()
                ))
            })?;
        self.on_disk.insert(name.to_string(), fp);
        self.refused.remove(name);
        self.publish();
        self.store
            .current_policy_version(name)
            .map_err(|e| R::Invalid(e.to_string()))?
            .ok_or_else(|| R::Invalid("no version recorded".into()))
    }
}

/// Watch the directory (and rescan every `rescan`, which also catches rebuilt components
/// outside it) and reconcile on change, until `stop`.
pub fn spawn_watcher(
    reloader: Arc<Mutex<Reloader>>,
    dir: &Path,
    rescan: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    use notify::Watcher as _;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Changes only: reading the manifests and components (which every reconcile does)
        // raises open/access/close events, and reacting to those would loop forever.
        use notify::event::{EventKind as K, ModifyKind};
        let change = |k: &K| {
            matches!(k, K::Create(_) | K::Remove(_))
                || matches!(k, K::Modify(m) if !matches!(m, ModifyKind::Metadata(_)))
        };
        if event.is_ok_and(|e| change(&e.kind)) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
    std::thread::Builder::new()
        .name("policy-watcher".into())
        .spawn(move || {
            let _watcher = watcher;
            while !stop.load(Ordering::Relaxed) {
                match rx.recv_timeout(rescan) {
                    Ok(()) => {
                        // Let an editor finish writing: settle, then take everything queued.
                        std::thread::sleep(Duration::from_millis(30));
                        while rx.try_recv().is_ok() {}
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
                let mut r = reloader.lock().unwrap_or_else(|e| e.into_inner());
                let report = r.reconcile("file-watcher");
                if report != Report::default() {
                    tracing::info!(?report, "policy set reconciled");
                }
            }
        })?;
    Ok(())
}

/// The reloader as the API's policy admin.
#[derive(Clone)]
pub struct Admin(pub Arc<Mutex<Reloader>>);

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admin")
    }
}

impl tocsin_api::PolicyAdmin for Admin {
    fn backtest(
        &self,
        name: &str,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<Vec<(i64, tocsin_alerting::Event)>, String> {
        // The running version's guest and manifest; the lock is not held while it runs.
        let (policy, store) = {
            let reloader = self.0.lock().unwrap_or_else(|e| e.into_inner());
            (reloader.running_policy(name)?, reloader.store.clone())
        };
        tocsin_alerting::Rule::from_policy(&policy)
            .backtest(&store, from, to, step)
            .map_err(|e| e.to_string())
    }

    fn deploy(
        &self,
        name: &str,
        manifest: &str,
        component: Vec<u8>,
        allow_new_grants: bool,
        actor: &str,
    ) -> Result<PolicyVersion, tocsin_api::DeployRefusal> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).upload(
            name,
            manifest,
            component,
            allow_new_grants,
            actor,
        )
    }

    fn rollback(&self, name: &str, actor: &str) -> Result<PolicyVersion, String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rollback(name, actor)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_component_line_is_pointed_beside_the_manifest() {
        let text = "# rule\nkind = \"alert-rule\"\ncomponent   = \"../x/y.wasm\"\n[params]\ncomponent = \"kept\"\n";
        let out = super::point_component(text, "r.wasm").expect("pointed");
        assert_eq!(
            out,
            "# rule\nkind = \"alert-rule\"\ncomponent = \"r.wasm\"\n[params]\ncomponent = \"kept\"\n"
        );
        assert!(
            super::point_component("kind = \"x\"\n[a]\ncomponent = \"y\"\n", "r.wasm").is_err()
        );
    }
}
