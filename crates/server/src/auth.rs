//! Bearer tokens. The daemon keeps only a SHA-256 of each token; the admin token itself
//! is written once to a file only its owner can read, for the CLI to pick up.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use liftoff_store::Store;

use crate::StartError;
use sha2::{Digest, Sha256};

pub const ADMIN: &str = "admin";
pub const TOKEN_FILE: &str = "admin.token";

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Make sure an admin token exists and its file matches the stored hash. A missing or
/// stale file means a new token (the old one stops working): deleting the file rotates.
pub fn ensure_admin_token(store: &Store, state_dir: &Path) -> Result<(), StartError> {
    let path = state_dir.join(TOKEN_FILE);
    let on_disk = std::fs::read_to_string(&path)
        .ok()
        .map(|s| s.trim().to_string());
    let stored = store.token_hash(ADMIN)?;
    if let (Some(token), Some(stored)) = (&on_disk, &stored)
        && hash(token) == *stored
    {
        return Ok(());
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StartError::Random(e.to_string()))?;
    let token = format!("lft_{}", hex::encode(bytes));
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
    store.set_token_hash(ADMIN, &hash(&token), &jiff::Timestamp::now().to_string())?;
    tracing::info!(file = %path.display(), "new admin token written (only its hash is stored)");
    Ok(())
}
