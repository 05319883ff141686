//! The OS keychain for cloud profile secrets (`keyring`: the Secret Service over D-Bus on
//! Linux, Keychain on macOS, Credential Manager on Windows). One entry per profile, under the
//! service `dev.pixelflow.desktop`. A machine without a keychain (no session bus, no Secret
//! Service: CI, a bare server) answers [`KeychainError::Unavailable`]; the secret then goes
//! nowhere. Nothing here logs a secret.

use pixelflow_app::profiles::{Keychain, KeychainError};

const SERVICE: &str = "dev.pixelflow.desktop";

/// The user's keychain.
pub struct OsKeychain;

fn entry(profile: &str) -> Result<keyring::Entry, KeychainError> {
    keyring::Entry::new(SERVICE, &format!("cloud-profile:{profile}")).map_err(map)
}

fn map(e: keyring::Error) -> KeychainError {
    match e {
        keyring::Error::PlatformFailure(e) => KeychainError::Unavailable(e.to_string()),
        keyring::Error::NoStorageAccess(e) => KeychainError::Unavailable(e.to_string()),
        other => KeychainError::Failed(other.to_string()),
    }
}

impl Keychain for OsKeychain {
    fn set(&self, profile: &str, secret: &str) -> Result<(), KeychainError> {
        entry(profile)?.set_password(secret).map_err(map)
    }

    fn get(&self, profile: &str) -> Result<Option<String>, KeychainError> {
        match entry(profile)?.get_password() {
            Ok(secret) => Ok(Some(secret)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(map(e)),
        }
    }

    fn delete(&self, profile: &str) -> Result<(), KeychainError> {
        match entry(profile)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(map(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixelflow_app::profiles::{self, CloudProfile, CloudService};
    use pixelflow_app::{App, DataDir};

    const SECRET: &str = "wJalrXUtnFEMI-pixelflow-test-secret";

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    /// With the real keychain of this machine: in CI (no Secret Service) the profile is saved
    /// without its secret and says why; with one, the secret is there and only there. Either
    /// way no file of the data dir (the SQLite database, its WAL, the settings) holds it.
    #[test]
    fn a_profile_secret_is_in_the_keychain_or_nowhere() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(DataDir::new(dir.path())).unwrap();
        let name = format!("pixelflow-test-{}", std::process::id());
        let profile = CloudProfile {
            name: name.clone(),
            service: CloudService::S3,
            bucket: "photos".into(),
            prefix: "exports".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: None,
            access_key_id: Some("AKIDPIXELFLOWTEST".into()),
            aws_profile: None,
            account: None,
            azure_secret: None,
        };
        let saved = profiles::save(&app, &profile, Some(SECRET), &OsKeychain).unwrap();
        match OsKeychain.get(&name) {
            Err(KeychainError::Unavailable(_)) => {
                assert!(!saved.secret_stored);
                let note = saved.entry.keychain_note.clone().unwrap_or_default();
                assert!(note.contains("no keychain") && note.contains("environment"), "{note}");
            }
            Ok(Some(secret)) => {
                assert!(saved.secret_stored);
                assert_eq!(secret, SECRET);
            }
            other => panic!("the keychain answered {other:?} after a save that said {saved:?}"),
        }
        let mut files = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if entry.path().is_file() {
                files += 1;
                let bytes = std::fs::read(entry.path()).unwrap();
                assert!(!contains(&bytes, SECRET), "{} holds the secret", entry.path().display());
            }
        }
        assert!(files >= 1, "the database was written");
        profiles::remove(&app, &name, &OsKeychain).unwrap();
        assert!(!matches!(OsKeychain.get(&name), Ok(Some(_))), "the secret left the keychain with its profile");
    }
}
