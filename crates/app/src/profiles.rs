//! Cloud profiles: named export destinations of the desktop app. A profile's settings (service,
//! bucket or container, prefix, endpoint, region, access key id, account) are kept in the
//! history database; its secret (an S3 secret access key, an Azure account key or SAS) only in
//! the OS keychain, behind the [`Keychain`] trait (the desktop shell implements it with the
//! `keyring` crate). Without a keychain a profile is still saved, without its secret, and
//! exports find credentials where the sync step does: the environment and `~/.aws`.

use pixelflow_sync::{Credentials, Destination, StoreOptions};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::App;

/// Where a profile sends files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloudService {
    S3,
    Azure,
}

/// A profile's settings: everything but the secret. `deny_unknown_fields` so a secret sent by
/// mistake in the settings is refused rather than stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudProfile {
    pub name: String,
    pub service: CloudService,
    /// The S3 bucket or the Azure container.
    pub bucket: String,
    /// The key prefix (may use `{variant}`, `{execution}`, `{date}`).
    #[serde(default)]
    pub prefix: String,
    /// An S3-compatible server or an Azure blob endpoint (requests are then path-style).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The AWS region (S3).
    #[serde(default)]
    pub region: Option<String>,
    /// The S3 access key id (not a secret; its secret access key is in the keychain).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// An AWS profile of `~/.aws` to take the credentials from instead (S3).
    #[serde(default)]
    pub aws_profile: Option<String>,
    /// The Azure storage account.
    #[serde(default)]
    pub account: Option<String>,
    /// What the keychain holds for Azure: `key` (the account key) or `sas`.
    #[serde(default)]
    pub azure_secret: Option<String>,
}

impl CloudProfile {
    /// Checks the name and the destination it makes; returns the destination URL.
    pub fn validate(&self) -> Result<String> {
        let valid_name = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '));
        if !valid_name {
            return Err(Error::invalid("/name", format!("'{}' is not a profile name: use letters, digits, spaces, '-', '_' and '.'", self.name)));
        }
        if let Some(kind) = self.azure_secret.as_deref() {
            if !matches!(kind, "key" | "sas") {
                return Err(Error::invalid("/azureSecret", format!("'{kind}' is not an Azure secret kind: expected key or sas")));
            }
        }
        if let Some(endpoint) = self.endpoint.as_deref().filter(|e| !e.is_empty()) {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) || endpoint.contains(['?', '#', '@']) {
                return Err(Error::invalid("/endpoint", format!("'{endpoint}' is not an endpoint: expected http(s)://host[:port] without credentials")));
            }
        }
        let url = self.destination();
        Destination::parse(&url).map_err(|e| Error::invalid("/bucket", e.to_string()))?;
        Ok(url)
    }

    /// `s3://bucket/prefix` or `az://container/prefix`.
    pub fn destination(&self) -> String {
        let scheme = match self.service {
            CloudService::S3 => "s3",
            CloudService::Azure => "az",
        };
        let prefix = self.prefix.trim_matches('/');
        if prefix.is_empty() {
            format!("{scheme}://{}", self.bucket)
        } else {
            format!("{scheme}://{}/{prefix}", self.bucket)
        }
    }

    /// The store options the sync code opens the destination with. With `secret` (the
    /// keychain's) and the settings' half of the credentials (the S3 access key id, the Azure
    /// account), those credentials; else none, and the sync code looks in the environment and
    /// `~/.aws`. An Azure account without an endpoint gets its public blob endpoint.
    pub fn store_options(&self, secret: Option<String>) -> StoreOptions {
        let some = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
        let endpoint = some(&self.endpoint).or_else(|| match (self.service, some(&self.account)) {
            (CloudService::Azure, Some(account)) => Some(format!("https://{account}.blob.core.windows.net")),
            _ => None,
        });
        let credentials = secret.filter(|s| !s.is_empty()).and_then(|secret| match self.service {
            CloudService::S3 => some(&self.access_key_id).map(|access_key_id| Credentials::S3 { access_key_id, secret_access_key: secret }),
            CloudService::Azure => some(&self.account).map(|account| match self.azure_secret.as_deref() {
                Some("sas") => Credentials::AzureSas { account, sas: secret },
                _ => Credentials::AzureKey { account, key: secret },
            }),
        });
        StoreOptions { profile: some(&self.aws_profile), region: some(&self.region), endpoint, credentials }
    }
}

/// Why the keychain could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeychainError {
    /// No keychain on this machine (no Secret Service on the session bus, no session bus).
    #[error("no keychain is available ({0})")]
    Unavailable(String),
    #[error("the keychain refused: {0}")]
    Failed(String),
}

/// The OS keychain, by profile name. Implementations never log the secret.
pub trait Keychain: Send + Sync {
    fn set(&self, profile: &str, secret: &str) -> std::result::Result<(), KeychainError>;
    fn get(&self, profile: &str) -> std::result::Result<Option<String>, KeychainError>;
    fn delete(&self, profile: &str) -> std::result::Result<(), KeychainError>;
}

/// A profile as the UI lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileEntry {
    pub profile: CloudProfile,
    pub destination: String,
    /// Whether the keychain holds its secret (`None`: the keychain could not be asked).
    pub has_secret: Option<bool>,
    /// Why the keychain could not be used, said once for the UI.
    pub keychain_note: Option<String>,
}

/// What saving a profile did with its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    pub entry: ProfileEntry,
    /// A secret was given and is now in the keychain.
    pub secret_stored: bool,
}

fn note(e: &KeychainError) -> String {
    match e {
        KeychainError::Unavailable(_) => format!("{e}: secrets are not saved; exports use the environment and ~/.aws credentials"),
        KeychainError::Failed(_) => e.to_string(),
    }
}

fn entry(profile: CloudProfile, keychain: &dyn Keychain) -> ProfileEntry {
    let (has_secret, keychain_note) = match keychain.get(&profile.name) {
        Ok(s) => (Some(s.is_some()), None),
        Err(e) => (None, Some(note(&e))),
    };
    ProfileEntry { destination: profile.destination(), profile, has_secret, keychain_note }
}

/// Every profile, by name, with whether the keychain holds its secret.
pub fn list(app: &App, keychain: &dyn Keychain) -> Result<Vec<ProfileEntry>> {
    let mut out = Vec::new();
    for stored in app.history().cloud_profiles()? {
        match serde_json::from_value::<CloudProfile>(stored.settings) {
            Ok(p) => out.push(entry(p, keychain)),
            Err(e) => tracing::warn!(profile = %stored.name, error = %e, "skipped a cloud profile that cannot be read"),
        }
    }
    Ok(out)
}

/// The profile of that name.
pub fn get(app: &App, name: &str) -> Result<CloudProfile> {
    let stored = app.history().cloud_profiles()?.into_iter().find(|p| p.name == name).ok_or_else(|| Error::NotFound(format!("no cloud profile '{name}'")))?;
    serde_json::from_value(stored.settings).map_err(|e| Error::invalid("", format!("cloud profile '{name}' cannot be read: {e}")))
}

/// Saves (adds or replaces) a profile: its settings in the history, `secret` (when given and
/// not empty) in the keychain. Without a keychain the profile is saved without the secret and
/// the entry's note says so; the secret is never written anywhere else.
pub fn save(app: &App, profile: &CloudProfile, secret: Option<&str>, keychain: &dyn Keychain) -> Result<Saved> {
    profile.validate()?;
    let settings = serde_json::to_value(profile).map_err(|e| Error::invalid("", e.to_string()))?;
    app.history().save_cloud_profile(&profile.name, &settings)?;
    let mut secret_stored = false;
    let mut failed = None;
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        match keychain.set(&profile.name, secret) {
            Ok(()) => secret_stored = true,
            Err(e) => failed = Some(note(&e)),
        }
    }
    let mut entry = entry(profile.clone(), keychain);
    if failed.is_some() {
        entry.keychain_note = failed;
    }
    Ok(Saved { entry, secret_stored })
}

/// The secret the keychain holds for profile `name`: `None` when it has none or there is no
/// keychain (exports then use the environment's credentials); an error when the keychain
/// refused (locked, access denied), rather than sending with other credentials than asked.
pub fn secret(name: &str, keychain: &dyn Keychain) -> Result<Option<String>> {
    match keychain.get(name) {
        Ok(secret) => Ok(secret),
        Err(KeychainError::Unavailable(why)) => {
            tracing::debug!(profile = %name, %why, "no keychain: the environment's credentials apply");
            Ok(None)
        }
        Err(e @ KeychainError::Failed(_)) => Err(Error::Busy(format!("cloud profile '{name}': {e}"))),
    }
}

/// Removes a profile and its secret.
pub fn remove(app: &App, name: &str, keychain: &dyn Keychain) -> Result<()> {
    if !app.history().remove_cloud_profile(name)? {
        return Err(Error::NotFound(format!("no cloud profile '{name}'")));
    }
    if let Err(e) = keychain.delete(name) {
        tracing::warn!(profile = %name, error = %e, "the profile's secret stays in the keychain");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A keychain in memory, or none at all.
    #[derive(Default)]
    struct Memory(Option<Mutex<HashMap<String, String>>>);

    impl Keychain for Memory {
        fn set(&self, profile: &str, secret: &str) -> std::result::Result<(), KeychainError> {
            let map = self.0.as_ref().ok_or_else(|| KeychainError::Unavailable("test".into()))?;
            map.lock().unwrap().insert(profile.into(), secret.into());
            Ok(())
        }
        fn get(&self, profile: &str) -> std::result::Result<Option<String>, KeychainError> {
            let map = self.0.as_ref().ok_or_else(|| KeychainError::Unavailable("test".into()))?;
            Ok(map.lock().unwrap().get(profile).cloned())
        }
        fn delete(&self, profile: &str) -> std::result::Result<(), KeychainError> {
            let map = self.0.as_ref().ok_or_else(|| KeychainError::Unavailable("test".into()))?;
            map.lock().unwrap().remove(profile);
            Ok(())
        }
    }

    pub(crate) fn s3(name: &str) -> CloudProfile {
        CloudProfile {
            name: name.into(),
            service: CloudService::S3,
            bucket: "photos".into(),
            prefix: "/web/{variant}/".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: Some("eu-west-1".into()),
            access_key_id: Some("AKIDEXAMPLE".into()),
            aws_profile: None,
            account: None,
            azure_secret: None,
        }
    }

    /// The database file and its WAL, as bytes: what someone who copies them gets.
    fn database_bytes(app: &App) -> Vec<u8> {
        let db = app.data().database();
        let mut bytes = std::fs::read(&db).unwrap();
        for side in ["-wal", "-journal"] {
            let mut p = db.clone().into_os_string();
            p.push(side);
            bytes.extend(std::fs::read(p).unwrap_or_default());
        }
        assert!(bytes.len() > 4096, "the database was read");
        bytes
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[test]
    fn profiles_are_saved_listed_and_removed_with_their_secret_in_the_keychain() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(crate::DataDir::new(dir.path())).unwrap();
        let keychain = Memory(Some(Mutex::default()));
        let saved = save(&app, &s3("work"), Some("s3cr3t-value"), &keychain).unwrap();
        assert!(saved.secret_stored);
        assert_eq!(saved.entry.destination, "s3://photos/web/{variant}");
        assert_eq!(saved.entry.has_secret, Some(true));
        let all = list(&app, &keychain).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].profile, s3("work"));
        let options = get(&app, "work").unwrap().store_options(secret("work", &keychain).unwrap());
        assert_eq!(options.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(options.credentials, Some(Credentials::S3 { access_key_id: "AKIDEXAMPLE".into(), secret_access_key: "s3cr3t-value".into() }));
        assert!(!format!("{options:?}").contains("s3cr3t-value"), "Debug shows no secret");
        // The settings are in SQLite; the secret is not, in any form SQLite wrote.
        let bytes = database_bytes(&app);
        assert!(contains(&bytes, "AKIDEXAMPLE"), "the settings are stored");
        assert!(!contains(&bytes, "s3cr3t-value"), "the secret is in the database file");
        remove(&app, "work", &keychain).unwrap();
        assert!(list(&app, &keychain).unwrap().is_empty());
        assert_eq!(keychain.get("work").unwrap(), None);
        assert!(matches!(remove(&app, "work", &keychain), Err(Error::NotFound(_))));
    }

    #[test]
    fn without_a_keychain_the_profile_is_saved_without_its_secret_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(crate::DataDir::new(dir.path())).unwrap();
        let saved = save(&app, &s3("nokeychain"), Some("s3cr3t-value"), &Memory(None)).unwrap();
        assert!(!saved.secret_stored);
        assert_eq!(saved.entry.has_secret, None);
        assert!(saved.entry.keychain_note.as_deref().unwrap().contains("no keychain"), "{:?}", saved.entry.keychain_note);
        assert_eq!(list(&app, &Memory(None)).unwrap().len(), 1);
        assert_eq!(secret("nokeychain", &Memory(None)).unwrap(), None);
        assert_eq!(get(&app, "nokeychain").unwrap().store_options(None).credentials, None, "the environment's credentials apply");
        let bytes = database_bytes(&app);
        assert!(contains(&bytes, "AKIDEXAMPLE") && !contains(&bytes, "s3cr3t-value"));
        assert!(!std::fs::read_dir(dir.path()).unwrap().flatten().any(|e| e.path().is_file() && contains(&std::fs::read(e.path()).unwrap(), "s3cr3t-value")), "no file of the data dir holds the secret");
    }

    #[test]
    fn bad_profiles_are_refused_with_the_field_named() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(crate::DataDir::new(dir.path())).unwrap();
        let keychain = Memory(Some(Mutex::default()));
        let mut bad = s3("../x");
        assert!(save(&app, &bad, None, &keychain).unwrap_err().to_string().contains("profile name"));
        bad = s3("ok");
        bad.bucket = "No_Such".into();
        assert!(save(&app, &bad, None, &keychain).unwrap_err().to_string().contains("bucket"));
        bad = s3("ok");
        bad.endpoint = Some("http://user:pw@host".into());
        assert!(save(&app, &bad, None, &keychain).is_err());
        // A secret in the settings is refused, not stored.
        let with_secret = serde_json::json!({"name": "x", "service": "s3", "bucket": "photos", "secretAccessKey": "s"});
        assert!(serde_json::from_value::<CloudProfile>(with_secret).is_err());
        assert!(list(&app, &keychain).unwrap().is_empty());
    }

    #[test]
    fn an_azure_account_gets_its_blob_endpoint() {
        let p = CloudProfile { service: CloudService::Azure, account: Some("acme".into()), endpoint: None, ..s3("az") };
        assert_eq!(p.destination(), "az://photos/web/{variant}");
        assert_eq!(p.store_options(None).endpoint.as_deref(), Some("https://acme.blob.core.windows.net"));
        let sas = CloudProfile { azure_secret: Some("sas".into()), ..p.clone() };
        assert_eq!(sas.store_options(Some("sv=1&sig=x".into())).credentials, Some(Credentials::AzureSas { account: "acme".into(), sas: "sv=1&sig=x".into() }));
        assert_eq!(p.store_options(Some("k".into())).credentials, Some(Credentials::AzureKey { account: "acme".into(), key: "k".into() }));
    }
}
