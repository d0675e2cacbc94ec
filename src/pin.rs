//! PINs: stored only as a salted argon2id hash (slow on purpose).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand_core::OsRng;

use crate::error::{Error, Result};

pub fn hash(pin: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("cannot hash PIN: {e}")))
}

pub fn verify(pin: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(pin.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let h = super::hash("1234").unwrap();
        assert!(!h.contains("1234"));
        assert!(super::verify("1234", &h));
        assert!(!super::verify("1235", &h));
        assert!(!super::verify("1234", "garbage"));
    }
}
