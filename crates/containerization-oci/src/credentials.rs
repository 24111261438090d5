//! `CredentialStore`: registry logins in `<state_root>/credentials.json`
//! (mode 0600, replaced atomically).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    auths: BTreeMap<String, Login>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Login {
    username: String,
    password: String,
}

/// Stored registry credentials, keyed by registry host (`host[:port]`).
#[derive(Debug, Clone)]
pub struct CredentialStore {
    path: PathBuf,
}

impl CredentialStore {
    /// Opens the credential store of `state_root` (the file is created on
    /// the first login).
    pub fn open(state_root: &Path) -> Result<CredentialStore> {
        fs::create_dir_all(state_root).context(
            Code::InternalError,
            format!("creating state directory '{}'", state_root.display()),
        )?;
        Ok(CredentialStore {
            path: state_root.join("credentials.json"),
        })
    }

    fn load(&self) -> Result<File> {
        match fs::read(&self.path) {
            Ok(data) => serde_json::from_slice(&data).context(
                Code::InvalidState,
                format!("credentials file '{}' is corrupt", self.path.display()),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
            Err(e) => Err(ContainerizationError::internal(format!(
                "reading credentials file '{}'",
                self.path.display()
            ))
            .with_cause(e)),
        }
    }

    fn save(&self, file: &File) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".credentials-")
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .context(Code::InternalError, "creating credentials file")?;
        let data =
            serde_json::to_vec_pretty(file).context(Code::InternalError, "encoding credentials")?;
        tmp.write_all(&data)
            .and_then(|_| tmp.as_file().sync_all())
            .context(Code::InternalError, "writing credentials file")?;
        tmp.persist(&self.path).map_err(|e| {
            ContainerizationError::internal("replacing credentials file").with_cause(e.error)
        })?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Records (or replaces) the login for `host`.
    pub fn login(&self, host: &str, username: &str, password: &str) -> Result<()> {
        if host.is_empty() || host.contains('/') {
            return Err(ContainerizationError::invalid_argument(format!(
                "invalid registry host '{host}'"
            )));
        }
        let mut file = self.load()?;
        file.auths.insert(
            host.to_string(),
            Login {
                username: username.to_string(),
                password: password.to_string(),
            },
        );
        self.save(&file)
    }

    /// Forgets the login for `host`; `NotFound` if there is none.
    pub fn logout(&self, host: &str) -> Result<()> {
        let mut file = self.load()?;
        if file.auths.remove(host).is_none() {
            return Err(ContainerizationError::not_found(format!(
                "not logged in to '{host}'"
            )));
        }
        self.save(&file)
    }

    /// `(host, username)` of every stored login.
    pub fn list(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .load()?
            .auths
            .into_iter()
            .map(|(h, l)| (h, l.username))
            .collect())
    }

    /// `(username, password)` for `host`, if stored.
    pub fn get(&self, host: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .load()?
            .auths
            .get(host)
            .map(|l| (l.username.clone(), l.password.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_list_get_logout() {
        let tmp = tempfile::tempdir().unwrap();
        let cs = CredentialStore::open(tmp.path()).unwrap();
        assert!(cs.list().unwrap().is_empty());
        cs.login("127.0.0.1:5000", "user", "pass").unwrap();
        cs.login("ghcr.io", "me", "tok").unwrap();
        assert_eq!(
            cs.get("127.0.0.1:5000").unwrap(),
            Some(("user".into(), "pass".into()))
        );
        assert_eq!(cs.list().unwrap().len(), 2);
        let mode = fs::metadata(tmp.path().join("credentials.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        cs.logout("ghcr.io").unwrap();
        assert!(cs.logout("ghcr.io").unwrap_err().is_code(Code::NotFound));
        assert_eq!(
            cs.list().unwrap(),
            vec![("127.0.0.1:5000".into(), "user".into())]
        );
        assert!(cs.login("a/b", "u", "p").is_err());
    }
}
