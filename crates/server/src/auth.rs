//! Bearer tokens. The daemon keeps only a SHA-256 of each token; the admin token itself
//! is written once to a file only its owner can read, for the CLI to pick up.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use axum::http::{HeaderMap, header};
use liftoff_store::Store;

use crate::StartError;
use sha2::{Digest, Sha256};

pub const ADMIN: &str = "admin";
pub const TOKEN_FILE: &str = "admin.token";
/// Routers' token: it can fetch snapshots and send reports, nothing else.
pub const ROUTER: &str = "router";
pub const ROUTER_TOKEN_FILE: &str = "router.token";

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The credentials of `Authorization: Bearer <token>`. The scheme is case-insensitive
/// (RFC 9110, section 11.1): `bearer` and `BEARER` are `Bearer`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

/// Make sure an admin token exists and its file matches the stored hash. A missing or
/// stale file means a new token (the old one stops working): deleting the file rotates.
pub fn ensure_admin_token(store: &Store, state_dir: &Path) -> Result<(), StartError> {
    ensure_token(store, state_dir, ADMIN, TOKEN_FILE)
}

/// The same for the routers' token (`router.token`).
pub fn ensure_router_token(store: &Store, state_dir: &Path) -> Result<(), StartError> {
    ensure_token(store, state_dir, ROUTER, ROUTER_TOKEN_FILE)
}

fn ensure_token(store: &Store, state_dir: &Path, name: &str, file: &str) -> Result<(), StartError> {
    let path = state_dir.join(file);
    let on_disk = std::fs::read_to_string(&path)
        .ok()
        .map(|s| s.trim().to_string());
    let stored = store.token_hash(name)?;
    if let (Some(token), Some(stored)) = (&on_disk, &stored)
        && hash(token) == *stored
    {
        return Ok(());
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StartError::Random(e.to_string()))?;
    let prefix = if name == ADMIN { "lft" } else { "lfr" };
    let token = format!("{prefix}_{}", hex::encode(bytes));
    let _ = std::fs::remove_file(&path);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| file.write_all(format!("{token}\n").as_bytes()))
        .map_err(|source| StartError::File {
            path: path.clone(),
            source,
        })?;
    store.set_token_hash(name, &hash(&token), &jiff::Timestamp::now().to_string())?;
    tracing::info!(file = %path.display(), "new {name} token written (only its hash is stored)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            bearer(&h).map(str::to_string)
        };
        for value in [
            "Bearer lft_x",
            "bearer lft_x",
            "BEARER  lft_x ",
            "bEaReR lft_x",
        ] {
            assert_eq!(with(value).as_deref(), Some("lft_x"), "{value}");
        }
        for value in ["Basic lft_x", "Bearer", "Bearer ", "Bearerlft_x", "lft_x"] {
            assert_eq!(with(value), None, "{value}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
