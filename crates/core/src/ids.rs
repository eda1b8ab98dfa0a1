//! Identifiers. Chasqui's own resources use time-sortable UUIDv7 strings, so ids sort
//! in creation order and double as a tiebreaker in cursors.

use uuid::Uuid;

/// A fresh UUIDv7 as a lowercase hyphenated string.
pub fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// The smallest UUIDv7 string of millisecond `millis` (epoch): every id made at or after that
/// moment sorts at or above it, every id made before sorts below, so an id range stands for
/// a time range without an index on a time column.
pub fn v7_floor(millis: i64) -> String {
    let ms = u128::try_from(millis.max(0)).unwrap_or(0) & ((1 << 48) - 1);
    Uuid::from_u128((ms << 80) | (0x7 << 76) | (0b10 << 62)).to_string()
}

/// Whether `text` is a syntactically valid UUID (any version).
pub fn is_uuid(text: &str) -> bool {
    Uuid::parse_str(text).is_ok()
}

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS random source failing is unrecoverable for a server that mints secrets.
    getrandom::fill(&mut buf).expect("operating system random source unavailable");
    buf
}

/// A random string of `len` decimal digits (Meta-style numeric ids).
pub fn random_digits(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<32>() {
            // Rejection sampling keeps digits uniform.
            if b < 250 && out.len() < len {
                let digit = b % 10;
                if out.is_empty() && digit == 0 {
                    continue;
                }
                out.push(char::from(b'0' + digit));
            }
        }
    }
    out
}

/// A random URL-safe token of `bytes` random bytes, hex encoded.
pub fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(random_bytes::<24>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v7_floor_of_a_moment_splits_ids_before_and_after_it() {
        let before = new_id();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        let floor = v7_floor(now - 1);
        let after = new_id();
        assert!(before < floor, "{before} < {floor}");
        assert!(floor <= after, "{floor} <= {after}");
        assert!(is_uuid(&floor));
        assert_eq!(v7_floor(-5), v7_floor(0));
    }

    #[test]
    fn ids_sort_in_creation_order() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id();
        assert!(a < b);
        assert!(is_uuid(&a));
    }

    #[test]
    fn random_digits_have_requested_length_and_no_leading_zero() {
        for _ in 0..50 {
            let d = random_digits(15);
            assert_eq!(d.len(), 15);
            assert!(d.chars().all(|c| c.is_ascii_digit()));
            assert!(!d.starts_with('0'));
        }
    }
}
