//! Sticky bucketing. Other implementations reproduce it from docs/flags.md:
//!
//! ```text
//! bucket    = xxh3_64(utf8(salt) ++ ":" ++ utf8(key), seed 0) mod 100000
//! threshold = round(percent × 1000)            (percent in 0..=100)
//! in rollout  iff  bucket < threshold
//! ```

use xxhash_rust::xxh3::xxh3_64;

/// Buckets per flag: a resolution of 0.001%.
pub const BUCKETS: u32 = 100_000;

/// The bucket (0..100000) of one bucketing key under a flag's salt.
pub fn bucket(salt: &str, key: &str) -> u32 {
    let len = salt.len() + 1 + key.len();
    // Hash one contiguous buffer, on the stack for the usual short salts and keys.
    let mut stack = [0u8; 256];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    buf[..salt.len()].copy_from_slice(salt.as_bytes());
    buf[salt.len()] = b':';
    buf[salt.len() + 1..].copy_from_slice(key.as_bytes());
    (xxh3_64(buf) % u64::from(BUCKETS)) as u32
}

/// The bucket threshold of a percentage: users with a bucket below it are in.
/// Monotonic in `percent`; 0 lets nobody in and 100 everybody. `percent` is clamped to
/// 0–100 (validation rejects anything else before it gets here).
pub fn threshold(percent: f64) -> u32 {
    if percent.is_nan() {
        return 0;
    }
    (percent.clamp(0.0, 100.0) * 1000.0).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_is_xxh3_of_salt_colon_key_mod_100000() {
        let expected = (xxh3_64(b"s4lt:user-1") % 100_000) as u32;
        assert_eq!(bucket("s4lt", "user-1"), expected);
        let long = "k".repeat(1000);
        let expected = (xxh3_64(format!("s4lt:{long}").as_bytes()) % 100_000) as u32;
        assert_eq!(bucket("s4lt", &long), expected);
    }

    #[test]
    fn thresholds_have_a_resolution_of_a_thousandth_of_a_percent() {
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(0.001), 1);
        assert_eq!(threshold(5.0), 5000);
        assert_eq!(threshold(12.3456), 12346);
        assert_eq!(threshold(100.0), BUCKETS);
        assert_eq!(threshold(f64::NAN), 0);
        assert_eq!(threshold(150.0), BUCKETS);
    }
}
