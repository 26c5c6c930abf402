//! The flag service: flags kept in the store, served from memory.
//!
//! Design notes and invariants:
//! - Evaluation never touches SQLite or a lock. The flags live in a [`Snapshot`] behind
//!   an `ArcSwap`; a change writes the store first (the flag and its audit record in one
//!   transaction), then builds a new snapshot and swaps it in. Evaluations in flight
//!   finish on the snapshot they loaded.
//! - Changes are serialized by one mutex (`writer`), so a read-modify-write of a flag
//!   never loses a concurrent change, and snapshots are installed in store order.
//! - Evaluation counts are relaxed atomics, per flag, variant and reason. They live in a
//!   registry that outlives snapshots (and deleted flags), so the Prometheus counters
//!   only grow until the daemon restarts.
//! - Evaluation keys and the admin token are compared as SHA-256 digests and never
//!   logged.
//!
//! The admin API (`/api/admin/feature-flags`, every method behind the admin token) takes
//! the seed runbooks' own call; `/api/v1/flags` is what the CLI uses (reads open like
//! every v1 read, changes behind the token). OFREP is in `ofrep.rs`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::ApiError;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use liftoff_api::flags::{
    AuditView, CreatedKey, Definition, Deleted, FlagActorRequest, FlagChangeRequest, FlagView,
    KeyView, NewKeyRequest, Revoked, admin_actor,
};
use liftoff_driver::ports::{FlagChange, FlagControl, PortError};
use liftoff_flags::{Change, Flag, FlagDoc, Problem, Reason};
use liftoff_store::{FlagAudit, FlagKeyRow, FlagRow, Store, StoreError};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Prefix of evaluation keys, so a leaked one is recognisable.
const KEY_PREFIX: &str = "lfe_";

pub struct FlagService {
    store: Arc<Store>,
    admin_digest: Option<[u8; 32]>,
    snapshot: ArcSwap<Snapshot>,
    keys: ArcSwap<HashMap<[u8; 32], Arc<EvalKey>>>,
    writer: Mutex<()>,
    counters: Mutex<BTreeMap<String, Arc<FlagCounters>>>,
    not_found: AtomicU64,
    /// Bulk evaluations answered in full (200) and as unchanged (304).
    pub(crate) bulk_full: AtomicU64,
    pub(crate) bulk_not_modified: AtomicU64,
    started: Instant,
}

/// What evaluations read: every flag, compiled.
pub(crate) struct Snapshot {
    pub flags: BTreeMap<String, Arc<Entry>>,
    /// A hash of every flag's key, salt and definition: changes whenever any flag does,
    /// and is the same for the same flags after a restart.
    pub fingerprint: u64,
}

pub(crate) struct Entry {
    pub flag: Flag,
    /// Aligned with `flag.variants()`.
    variant_counts: Vec<Arc<ReasonCounts>>,
    counters: Arc<FlagCounters>,
    fingerprint: u64,
}

type ReasonCounts = [AtomicU64; Reason::ALL.len()];

#[derive(Default)]
struct FlagCounters {
    by_variant: Mutex<BTreeMap<String, Arc<ReasonCounts>>>,
    targeting_key_missing: AtomicU64,
    invalid_context: AtomicU64,
}

/// A read-only evaluation key, in memory.
pub(crate) struct EvalKey {
    pub name: String,
    rate_limit: Option<u32>,
    /// The current one-second window (high 32 bits) and the requests in it.
    window: AtomicU64,
    pub rate_limited: AtomicU64,
}

/// Who may evaluate.
pub(crate) enum Caller {
    Admin,
    Key(Arc<EvalKey>),
}

#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the flag definition has {} problem(s): {}", .0.len(), join(.0))]
    Invalid(Vec<Problem>),
    #[error("no flag named `{0}`")]
    NoSuchFlag(String),
    #[error("no evaluation key named `{0}`")]
    NoSuchKey(String),
    #[error("an evaluation key named `{0}` exists")]
    KeyExists(String),
    #[error("no randomness from the OS: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl FlagService {
    /// Load every flag and evaluation key from the store. A stored flag that no longer
    /// compiles is logged and left out (evaluations get FLAG_NOT_FOUND) rather than
    /// stopping the daemon.
    pub fn open(store: Arc<Store>, admin_hash: &str) -> Result<Arc<Self>, StoreError> {
        let admin_digest = hex::decode(admin_hash)
            .ok()
            .and_then(|d| <[u8; 32]>::try_from(d).ok());
        let service = Arc::new(FlagService {
            store,
            admin_digest,
            snapshot: ArcSwap::from_pointee(Snapshot {
                flags: BTreeMap::new(),
                fingerprint: 0,
            }),
            keys: ArcSwap::from_pointee(HashMap::new()),
            writer: Mutex::new(()),
            counters: Mutex::new(BTreeMap::new()),
            not_found: AtomicU64::new(0),
            bulk_full: AtomicU64::new(0),
            bulk_not_modified: AtomicU64::new(0),
            started: Instant::now(),
        });
        let mut flags = BTreeMap::new();
        for row in service.store.flags()? {
            match service.entry(&row) {
                Ok(entry) => {
                    flags.insert(row.key.clone(), Arc::new(entry));
                }
                Err(e) => tracing::error!(flag = %row.key, error = %e, "stored flag skipped"),
            }
        }
        service.snapshot.store(Arc::new(Snapshot::new(flags)));
        service.reload_keys()?;
        Ok(service)
    }

    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    fn entry(&self, row: &FlagRow) -> Result<Entry, FlagError> {
        let doc: FlagDoc = serde_json::from_str(&row.definition)
            .map_err(|e| FlagError::BadRequest(format!("stored definition: {e}")))?;
        let flag = doc
            .compile(&row.key, &row.salt)
            .map_err(FlagError::Invalid)?;
        let counters = {
            let mut all = lock(&self.counters);
            all.entry(row.key.clone()).or_default().clone()
        };
        let variant_counts = {
            let mut by_variant = lock(&counters.by_variant);
            flag.variants()
                .iter()
                .map(|(name, _)| by_variant.entry(name.clone()).or_default().clone())
                .collect()
        };
        let fingerprint = xxhash_rust::xxh3::xxh3_64(
            format!("{}\0{}\0{}", row.key, row.salt, row.definition).as_bytes(),
        );
        Ok(Entry {
            flag,
            variant_counts,
            counters,
            fingerprint,
        })
    }

    /// Swap in a snapshot with one flag replaced or removed. Called with `writer` held.
    fn install(&self, key: &str, entry: Option<Entry>) {
        let mut flags = self.snapshot.load().flags.clone();
        match entry {
            Some(e) => flags.insert(key.to_string(), Arc::new(e)),
            None => flags.remove(key),
        };
        self.snapshot.store(Arc::new(Snapshot::new(flags)));
    }

    fn reload_keys(&self) -> Result<(), StoreError> {
        let old = self.keys.load();
        let mut keys = HashMap::new();
        for row in self.store.flag_keys()? {
            let Some(digest) = hex::decode(&row.sha256)
                .ok()
                .and_then(|d| <[u8; 32]>::try_from(d).ok())
            else {
                tracing::error!(key = %row.name, "stored evaluation key has a malformed hash; skipped");
                continue;
            };
            // Keep a key's rate-limit window and counts across reloads.
            let key = old
                .get(&digest)
                .filter(|k| k.name == row.name && k.rate_limit == row.rate_limit)
                .cloned()
                .unwrap_or_else(|| {
                    Arc::new(EvalKey {
                        name: row.name.clone(),
                        rate_limit: row.rate_limit,
                        window: AtomicU64::new(0),
                        rate_limited: AtomicU64::new(0),
                    })
                });
            keys.insert(digest, key);
        }
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// Who presented which credential: the admin token or an evaluation key, as
    /// `Authorization: Bearer` or `X-API-Key`.
    pub(crate) fn caller(&self, headers: &HeaderMap) -> Result<Caller, &'static str> {
        let presented = crate::auth::bearer(headers)
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .ok_or("this call needs an evaluation key: `Authorization: Bearer <key>` or `X-API-Key: <key>`")?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if self.admin_digest == Some(digest) {
            return Ok(Caller::Admin);
        }
        self.keys
            .load()
            .get(&digest)
            .cloned()
            .map(Caller::Key)
            .ok_or("the key is not valid")
    }

    /// Seconds since the service started, for rate-limit windows.
    pub(crate) fn now_secs(&self) -> u32 {
        self.started.elapsed().as_secs() as u32
    }

    pub(crate) fn count(
        &self,
        entry: &Entry,
        resolution: Result<liftoff_flags::Resolution, &liftoff_flags::EvalError>,
    ) {
        match resolution {
            Ok(r) => {
                entry.variant_counts[r.variant][r.reason.index()].fetch_add(1, Ordering::Relaxed);
            }
            Err(liftoff_flags::EvalError::TargetingKeyMissing(_)) => {
                entry
                    .counters
                    .targeting_key_missing
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(liftoff_flags::EvalError::InvalidContext(_)) => {
                entry
                    .counters
                    .invalid_context
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn count_not_found(&self) {
        self.not_found.fetch_add(1, Ordering::Relaxed);
    }

    /// One change, made by a launch or an operator: create the flag if missing
    /// (boolean, off), replace its definition if one is given, then apply the
    /// percentage and the kill switch (in that order, so `enabled: false` beside a
    /// percentage wins). Audited with `actor` and `cause`.
    pub fn apply_change(
        &self,
        key: &str,
        req: ChangeRequest,
        actor: &str,
        cause: &str,
    ) -> Result<Changed, FlagError> {
        liftoff_flags::check_key(key).map_err(FlagError::BadRequest)?;
        let _writing = lock(&self.writer);
        let existing = self.store.flag(key)?;
        if existing.is_some()
            && req.definition.is_none()
            && req.enabled.is_none()
            && req.percent.is_none()
        {
            return Err(FlagError::BadRequest(
                "nothing to change: give `enabled`, `percentage` or a definition".into(),
            ));
        }
        let before: Option<FlagDoc> = match &existing {
            Some(row) => Some(
                serde_json::from_str(&row.definition)
                    .map_err(|e| FlagError::BadRequest(format!("stored definition: {e}")))?,
            ),
            None => None,
        };
        let mut doc = match (req.definition, &before) {
            (Some(d), _) => d,
            (None, Some(b)) => b.clone(),
            (None, None) => FlagDoc::boolean_off(),
        };
        let mut problems = Vec::new();
        if let Some(p) = req.percent
            && let Err(e) = doc.apply(Change::Percent(p))
        {
            problems.push(e);
        }
        if let Some(on) = req.enabled {
            doc.apply(Change::Enabled(on))
                .map_err(|e| FlagError::Invalid(vec![e]))?;
        }
        if !problems.is_empty() {
            return Err(FlagError::Invalid(problems));
        }
        let salt = match &existing {
            Some(row) => row.salt.clone(),
            None => new_salt()?,
        };
        let flag = doc.compile(key, &salt).map_err(FlagError::Invalid)?;
        let definition =
            serde_json::to_string(flag.doc()).map_err(|e| FlagError::BadRequest(e.to_string()))?;
        let row = self
            .store
            .save_flag(key, &salt, &definition, &audit(actor, cause))?;
        let entry = self.entry(&row)?;
        self.install(key, Some(entry));
        tracing::info!(flag = key, actor, cause, "flag changed");
        Ok(Changed {
            created: existing.is_none(),
            summary: describe_change(before.as_ref(), flag.doc()),
            view: flag_view(&row),
        })
    }

    pub fn delete(&self, key: &str, actor: &str, cause: &str) -> Result<(), FlagError> {
        let _writing = lock(&self.writer);
        if !self.store.delete_flag(key, &audit(actor, cause))? {
            return Err(FlagError::NoSuchFlag(key.to_string()));
        }
        self.install(key, None);
        tracing::info!(flag = key, actor, cause, "flag deleted");
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<FlagView>, FlagError> {
        Ok(self.store.flags()?.iter().map(flag_view).collect())
    }

    pub fn get(&self, key: &str) -> Result<FlagView, FlagError> {
        self.store
            .flag(key)?
            .map(|row| flag_view(&row))
            .ok_or_else(|| FlagError::NoSuchFlag(key.to_string()))
    }

    pub fn history(&self, key: &str, limit: usize) -> Result<Vec<AuditView>, FlagError> {
        let rows = self.store.flag_history(Some(key), limit)?;
        if rows.is_empty() && self.store.flag(key)?.is_none() {
            return Err(FlagError::NoSuchFlag(key.to_string()));
        }
        let parse = |s: Option<String>| s.as_deref().map(Definition::parse);
        Ok(rows
            .into_iter()
            .map(|r| AuditView {
                id: r.id,
                flag: r.flag,
                at: r.at,
                actor: r.actor,
                cause: r.cause,
                action: r.action,
                before: parse(r.before),
                after: parse(r.after),
            })
            .collect())
    }

    /// A new evaluation key; the only time the key itself is seen.
    pub fn create_key(&self, req: &NewKeyRequest) -> Result<CreatedKey, FlagError> {
        check_key_name(&req.name)?;
        if req.rate_limit == Some(0) {
            return Err(FlagError::BadRequest(
                "rate_limit must be at least 1 evaluation per second (omit it for none)".into(),
            ));
        }
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| FlagError::Random(e.to_string()))?;
        let secret = format!("{KEY_PREFIX}{}", hex::encode(bytes));
        let row = FlagKeyRow {
            name: req.name.clone(),
            sha256: crate::auth::hash(&secret),
            prefix: secret[..KEY_PREFIX.len() + 6].to_string(),
            rate_limit: req.rate_limit,
            created_at: jiff::Timestamp::now().to_string(),
            created_by: req.by.clone(),
        };
        let _writing = lock(&self.writer);
        if !self.store.create_flag_key(&row)? {
            return Err(FlagError::KeyExists(req.name.clone()));
        }
        self.reload_keys()?;
        tracing::info!(key = %row.name, by = %row.created_by, "evaluation key created");
        Ok(CreatedKey {
            key: secret,
            info: key_view(&row),
        })
    }

    pub fn keys(&self) -> Result<Vec<KeyView>, FlagError> {
        Ok(self.store.flag_keys()?.iter().map(key_view).collect())
    }

    pub fn revoke_key(&self, name: &str, by: &str) -> Result<(), FlagError> {
        let _writing = lock(&self.writer);
        if !self.store.delete_flag_key(name)? {
            return Err(FlagError::NoSuchKey(name.to_string()));
        }
        self.reload_keys()?;
        tracing::info!(key = name, by, "evaluation key revoked");
        Ok(())
    }

    /// Prometheus text for the flags: evaluations by flag, variant and reason; errors;
    /// each flag's kill switch and rollout percentage; rate-limited OFREP calls.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP liftoff_flag_evaluations_total Flag evaluations served, by flag, variant and reason.\n\
             # TYPE liftoff_flag_evaluations_total counter\n",
        );
        let counters: Vec<(String, Arc<FlagCounters>)> = lock(&self.counters)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (flag, c) in &counters {
            for (variant, counts) in lock(&c.by_variant).iter() {
                for reason in Reason::ALL {
                    let n = counts[reason.index()].load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "liftoff_flag_evaluations_total{{flag=\"{}\",variant=\"{}\",reason=\"{}\"}} {n}",
                        escape(flag),
                        escape(variant),
                        reason.as_str()
                    );
                }
            }
        }
        out.push_str(
            "# HELP liftoff_flag_evaluation_errors_total Evaluations that served no variant, by flag and OpenFeature error code.\n\
             # TYPE liftoff_flag_evaluation_errors_total counter\n",
        );
        for (flag, c) in &counters {
            for (code, n) in [
                ("TARGETING_KEY_MISSING", &c.targeting_key_missing),
                ("INVALID_CONTEXT", &c.invalid_context),
            ] {
                let _ = writeln!(
                    out,
                    "liftoff_flag_evaluation_errors_total{{flag=\"{}\",error_code=\"{code}\"}} {}",
                    escape(flag),
                    n.load(Ordering::Relaxed)
                );
            }
        }
        let _ = write!(
            out,
            "# HELP liftoff_flag_not_found_total Evaluations of a flag that does not exist.\n\
             # TYPE liftoff_flag_not_found_total counter\n\
             liftoff_flag_not_found_total {}\n",
            self.not_found.load(Ordering::Relaxed)
        );
        let snapshot = self.snapshot.load();
        out.push_str(
            "# HELP liftoff_flag_enabled Whether the flag is on (1) or killed (0).\n\
             # TYPE liftoff_flag_enabled gauge\n",
        );
        for (key, e) in &snapshot.flags {
            let _ = writeln!(
                out,
                "liftoff_flag_enabled{{flag=\"{}\"}} {}",
                escape(key),
                u8::from(e.flag.enabled())
            );
        }
        out.push_str(
            "# HELP liftoff_flag_rollout_percent The share of users the flag's rollout serves (0-100).\n\
             # TYPE liftoff_flag_rollout_percent gauge\n",
        );
        for (key, e) in &snapshot.flags {
            if let Some(p) = e.flag.percent() {
                let _ = writeln!(
                    out,
                    "liftoff_flag_rollout_percent{{flag=\"{}\"}} {p}",
                    escape(key)
                );
            }
        }
        let _ = write!(
            out,
            "# HELP liftoff_ofrep_bulk_responses_total OFREP bulk evaluations, answered in full (200) or unchanged since the client's ETag (304).\n\
             # TYPE liftoff_ofrep_bulk_responses_total counter\n\
             liftoff_ofrep_bulk_responses_total{{status=\"200\"}} {}\n\
             liftoff_ofrep_bulk_responses_total{{status=\"304\"}} {}\n",
            self.bulk_full.load(Ordering::Relaxed),
            self.bulk_not_modified.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP liftoff_ofrep_rate_limited_total OFREP calls refused with 429, by evaluation key.\n\
             # TYPE liftoff_ofrep_rate_limited_total counter\n",
        );
        for key in self.keys.load().values() {
            let _ = writeln!(
                out,
                "liftoff_ofrep_rate_limited_total{{key=\"{}\"}} {}",
                escape(&key.name),
                key.rate_limited.load(Ordering::Relaxed)
            );
        }
        out
    }
}

impl Snapshot {
    fn new(flags: BTreeMap<String, Arc<Entry>>) -> Self {
        let mut bytes = Vec::with_capacity(flags.len() * 8);
        for e in flags.values() {
            bytes.extend_from_slice(&e.fingerprint.to_le_bytes());
        }
        Snapshot {
            fingerprint: xxhash_rust::xxh3::xxh3_64(&bytes),
            flags,
        }
    }
}

impl EvalKey {
    /// Take one request from this second's allowance. Err: seconds until the next
    /// window (always 1: windows are one second long).
    pub(crate) fn admit(&self, now_secs: u32) -> Result<(), u32> {
        let Some(limit) = self.rate_limit else {
            return Ok(());
        };
        let mut current = self.window.load(Ordering::Relaxed);
        loop {
            let (second, used) = ((current >> 32) as u32, current as u32);
            let next = if second != now_secs {
                (u64::from(now_secs) << 32) | 1
            } else if used < limit {
                current + 1
            } else {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
                return Err(1);
            };
            match self.window.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }
}

#[async_trait]
impl FlagControl for FlagService {
    async fn change(
        &self,
        flag: &str,
        change: FlagChange,
        actor: &str,
        cause: &str,
    ) -> Result<String, PortError> {
        let req = match change {
            FlagChange::Enabled(on) => ChangeRequest {
                enabled: Some(on),
                ..ChangeRequest::default()
            },
            FlagChange::Percent(p) => ChangeRequest {
                percent: Some(p),
                ..ChangeRequest::default()
            },
        };
        self.apply_change(flag, req, actor, cause)
            .map(|c| format!("flag {flag}: {}", c.summary))
            .map_err(|e| match e {
                // The launch may ask again (a retried step); the store may be back.
                FlagError::Random(_) | FlagError::Store(_) => PortError::Unavailable(e.to_string()),
                _ => PortError::Rejected(e.to_string()),
            })
    }
}

/// What a change asks for; all parts optional.
#[derive(Clone, Debug, Default)]
pub struct ChangeRequest {
    pub definition: Option<FlagDoc>,
    pub enabled: Option<bool>,
    pub percent: Option<f64>,
}

pub struct Changed {
    pub created: bool,
    /// One line: `flag `x`: 5% → 25%`.
    pub summary: String,
    pub view: FlagView,
}

fn describe_change(before: Option<&FlagDoc>, after: &FlagDoc) -> String {
    let state = |d: &FlagDoc| {
        let on = if d.enabled { "on" } else { "disabled" };
        match &d.rollout {
            Some(r) => format!("{on} at {}%", r.percent),
            None => on.to_string(),
        }
    };
    match before {
        None => format!("created ({})", state(after)),
        Some(b) if state(b) == state(after) && b != after => {
            format!("definition changed ({})", state(after))
        }
        Some(b) => format!("{} → {}", state(b), state(after)),
    }
}

fn audit(actor: &str, cause: &str) -> FlagAudit {
    FlagAudit {
        actor: actor.to_string(),
        cause: cause.to_string(),
        at: jiff::Timestamp::now().to_string(),
    }
}

fn new_salt() -> Result<String, FlagError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| FlagError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

fn check_key_name(name: &str) -> Result<(), FlagError> {
    liftoff_flags::check_key(name)
        .map_err(|m| FlagError::BadRequest(m.replacen("flag key", "key name", 1)))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing under these locks can be left half-done by a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Label values are flag, variant and key names, which allow no quote or backslash;
/// escaped anyway so a bug elsewhere cannot break the exposition.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

// ---- HTTP bodies (the v1 ones are `liftoff_api::flags`) ----

fn flag_view(row: &FlagRow) -> FlagView {
    FlagView {
        key: row.key.clone(),
        salt: row.salt.clone(),
        created_at: row.created_at.clone(),
        updated_at: row.updated_at.clone(),
        definition: Definition::parse(&row.definition),
    }
}

fn key_view(row: &FlagKeyRow) -> KeyView {
    KeyView {
        name: row.name.clone(),
        prefix: row.prefix.clone(),
        rate_limit: row.rate_limit,
        created_at: row.created_at.clone(),
        created_by: row.created_by.clone(),
    }
}

/// The seed runbooks' call: `{"flag": "canary_5_percent", "enabled": true, "percentage": 5}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedChange {
    flag: String,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    percentage: Option<f64>,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActorQuery {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

// ---- routes ----

/// The admin API and the CLI's v1 endpoints.
pub fn router<S: Clone + Send + Sync + 'static>(svc: Arc<FlagService>) -> Router<S> {
    let admin = Router::new()
        .route("/api/admin/feature-flags", get(list).post(seed_change))
        .route(
            "/api/admin/feature-flags/{key}",
            get(get_flag).put(put_flag).delete(delete_flag),
        )
        .route("/api/admin/feature-flags/{key}/history", get(history))
        .route("/api/admin/flag-keys", get(list_keys).post(create_key))
        .route(
            "/api/admin/flag-keys/{name}",
            axum::routing::delete(revoke_key),
        )
        .route("/api/v1/flags/{key}", post(v1_change))
        .route("/api/v1/flags/{key}/delete", post(v1_delete))
        .route("/api/v1/flag-keys", post(create_key))
        .route("/api/v1/flag-keys/{name}/revoke", post(v1_revoke))
        .route_layer(middleware::from_fn_with_state(svc.clone(), require_admin));
    let reads = Router::new()
        .route("/api/v1/flags", get(list))
        .route("/api/v1/flags/{key}", get(get_flag))
        .route("/api/v1/flags/{key}/history", get(history))
        .route("/api/v1/flag-keys", get(list_keys));
    admin.merge(reads).with_state(svc)
}

async fn require_admin(State(svc): State<Arc<FlagService>>, req: Request, next: Next) -> Response {
    match crate::auth::bearer(req.headers()) {
        Some(token) => {
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if svc.admin_digest == Some(digest) {
                next.run(req).await
            } else {
                unauthorized("the bearer token is not the admin token")
            }
        }
        None => unauthorized("this call needs `Authorization: Bearer <admin token>`"),
    }
}

fn unauthorized(message: &str) -> Response {
    ApiError::unauthorized(message).into_response()
}

impl IntoResponse for FlagError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            FlagError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            FlagError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_flag"),
            FlagError::NoSuchFlag(_) | FlagError::NoSuchKey(_) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            FlagError::KeyExists(_) => (StatusCode::CONFLICT, "key_exists"),
            FlagError::Store(e) => return ApiError::store_failed(e).into_response(),
            FlagError::Random(_) => {
                tracing::error!(error = %self, "internal error");
                return ApiError::internal().into_response();
            }
        };
        ApiError::new(status, code, self.to_string()).into_response()
    }
}

/// JSON from the body whatever its Content-Type: the seed runbooks post with
/// `curl -d`, which says `application/x-www-form-urlencoded`.
fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, FlagError> {
    serde_json::from_slice(body)
        .map_err(|e| FlagError::BadRequest(format!("the body is not the expected JSON: {e}")))
}

type Reply = Result<Response, FlagError>;

fn changed_reply(c: Changed) -> Response {
    let status = if c.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(c.view)).into_response()
}

async fn list(State(svc): State<Arc<FlagService>>) -> Reply {
    Ok(Json(svc.list()?).into_response())
}

async fn get_flag(State(svc): State<Arc<FlagService>>, Path(key): Path<String>) -> Reply {
    Ok(Json(svc.get(&key)?).into_response())
}

async fn seed_change(State(svc): State<Arc<FlagService>>, body: Bytes) -> Reply {
    let req: SeedChange = json_body(&body)?;
    let change = ChangeRequest {
        definition: None,
        enabled: req.enabled,
        percent: req.percentage,
    };
    let actor = req.by.unwrap_or_else(admin_actor);
    let cause = req.reason.unwrap_or_else(|| "admin API".into());
    Ok(changed_reply(
        svc.apply_change(&req.flag, change, &actor, &cause)?,
    ))
}

async fn put_flag(
    State(svc): State<Arc<FlagService>>,
    Path(key): Path<String>,
    Query(q): Query<ActorQuery>,
    body: Bytes,
) -> Reply {
    let doc: FlagDoc = json_body(&body)?;
    let change = ChangeRequest {
        definition: Some(doc),
        ..ChangeRequest::default()
    };
    let actor = q.by.unwrap_or_else(admin_actor);
    let cause = q.reason.unwrap_or_else(|| "admin API".into());
    Ok(changed_reply(
        svc.apply_change(&key, change, &actor, &cause)?,
    ))
}

async fn delete_flag(
    State(svc): State<Arc<FlagService>>,
    Path(key): Path<String>,
    Query(q): Query<ActorQuery>,
) -> Reply {
    let actor = q.by.unwrap_or_else(admin_actor);
    let cause = q.reason.unwrap_or_else(|| "admin API".into());
    svc.delete(&key, &actor, &cause)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn history(
    State(svc): State<Arc<FlagService>>,
    Path(key): Path<String>,
    Query(q): Query<ActorQuery>,
) -> Reply {
    let limit = q.limit.unwrap_or(100).min(10_000);
    Ok(Json(svc.history(&key, limit)?).into_response())
}

async fn list_keys(State(svc): State<Arc<FlagService>>) -> Reply {
    Ok(Json(svc.keys()?).into_response())
}

async fn create_key(State(svc): State<Arc<FlagService>>, body: Bytes) -> Reply {
    let req: NewKeyRequest = json_body(&body)?;
    Ok((StatusCode::CREATED, Json(svc.create_key(&req)?)).into_response())
}

async fn revoke_key(
    State(svc): State<Arc<FlagService>>,
    Path(name): Path<String>,
    Query(q): Query<ActorQuery>,
) -> Reply {
    svc.revoke_key(&name, q.by.as_deref().unwrap_or("admin token"))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn v1_change(
    State(svc): State<Arc<FlagService>>,
    Path(key): Path<String>,
    body: Bytes,
) -> Reply {
    let req: FlagChangeRequest = json_body(&body)?;
    let change = ChangeRequest {
        definition: req.definition,
        enabled: req.enabled,
        percent: req.percentage,
    };
    let cause = req.reason.unwrap_or_else(|| "CLI".into());
    Ok(changed_reply(
        svc.apply_change(&key, change, &req.by, &cause)?,
    ))
}

async fn v1_delete(
    State(svc): State<Arc<FlagService>>,
    Path(key): Path<String>,
    body: Bytes,
) -> Reply {
    let req: FlagActorRequest = json_body(&body)?;
    let cause = req.reason.unwrap_or_else(|| "CLI".into());
    svc.delete(&key, &req.by, &cause)?;
    Ok(Json(Deleted { deleted: key }).into_response())
}

async fn v1_revoke(
    State(svc): State<Arc<FlagService>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    let req: FlagActorRequest = json_body(&body)?;
    svc.revoke_key(&name, &req.by)?;
    Ok(Json(Revoked { revoked: name }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> (tempfile::TempDir, Arc<FlagService>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.db")).unwrap());
        let svc = FlagService::open(store, &crate::auth::hash("admin")).unwrap();
        (dir, svc)
    }

    #[tokio::test]
    async fn a_launch_change_creates_a_missing_flag_off_then_applies_and_audits_it() {
        let (_dir, svc) = service();
        let control: &dyn FlagControl = svc.as_ref();
        let line = control
            .change(
                "new_checkout",
                FlagChange::Percent(5.0),
                "launch L1",
                "step 3 (flag)",
            )
            .await
            .unwrap();
        assert_eq!(line, "flag new_checkout: created (on at 5%)");
        let line = control
            .change(
                "new_checkout",
                FlagChange::Percent(25.0),
                "launch L1",
                "step 5 (flag)",
            )
            .await
            .unwrap();
        assert_eq!(line, "flag new_checkout: on at 5% → on at 25%");
        let line = control
            .change(
                "new_checkout",
                FlagChange::Enabled(false),
                "launch L1",
                "trigger disable_flag",
            )
            .await
            .unwrap();
        assert_eq!(line, "flag new_checkout: on at 25% → disabled at 25%");
        let line = control
            .change(
                "maintenance_mode",
                FlagChange::Enabled(true),
                "launch L1",
                "maintenance on",
            )
            .await
            .unwrap();
        assert_eq!(line, "flag maintenance_mode: created (on at 100%)");
        let history = svc.history("new_checkout", 10).unwrap();
        assert_eq!(history.len(), 3);
        assert_eq!(history[0].cause, "trigger disable_flag");
        assert_eq!(history[2].action, "create");
        assert!(history[2].before.is_none());
        let enabled = |d: &Option<Definition>| match d {
            Some(Definition::Doc(doc)) => doc.enabled,
            other => panic!("{other:?}"),
        };
        assert!(enabled(&history[0].before));
        assert!(!enabled(&history[0].after));
        let err = control
            .change("bad name", FlagChange::Enabled(true), "launch L1", "x")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PortError::Rejected(m) if m.contains("bad name")),
            "{err}"
        );
        assert!(
            control
                .change("f", FlagChange::Percent(150.0), "launch L1", "x")
                .await
                .is_err()
        );
        assert!(svc.get("f").is_err(), "a refused change creates nothing");
    }

    #[test]
    fn the_snapshot_follows_every_change_and_its_fingerprint_with_it() {
        let (_dir, svc) = service();
        let empty = svc.snapshot().fingerprint;
        let on = ChangeRequest {
            enabled: Some(true),
            ..ChangeRequest::default()
        };
        svc.apply_change("a", on.clone(), "t", "t").unwrap();
        let one = svc.snapshot().fingerprint;
        assert_ne!(one, empty);
        assert!(svc.snapshot().flags["a"].flag.enabled());
        svc.apply_change(
            "a",
            ChangeRequest {
                enabled: Some(false),
                ..ChangeRequest::default()
            },
            "t",
            "t",
        )
        .unwrap();
        assert!(!svc.snapshot().flags["a"].flag.enabled());
        assert_ne!(svc.snapshot().fingerprint, one);
        svc.delete("a", "t", "t").unwrap();
        assert!(svc.snapshot().flags.is_empty());
        assert_eq!(svc.snapshot().fingerprint, empty);
        let err = svc.apply_change("a", ChangeRequest::default(), "t", "t");
        assert!(err.is_ok(), "a bare change creates the flag, off");
        let err = svc
            .apply_change("a", ChangeRequest::default(), "t", "t")
            .err()
            .unwrap();
        assert!(err.to_string().contains("nothing to change"), "{err}");
    }

    #[test]
    fn a_rate_limited_key_gets_its_allowance_per_second() {
        let key = EvalKey {
            name: "k".into(),
            rate_limit: Some(3),
            window: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        };
        for _ in 0..3 {
            assert!(key.admit(10).is_ok());
        }
        assert_eq!(key.admit(10), Err(1));
        assert!(key.admit(11).is_ok());
        assert_eq!(key.rate_limited.load(Ordering::Relaxed), 1);
    }
}
