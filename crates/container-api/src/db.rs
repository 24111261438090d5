//! `containers.db`: container records in SQLite (WAL), written by the
//! apiserver and by each runtime helper, so state and exit codes survive
//! either process dying.

use std::path::Path;
use std::time::Duration;

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use rusqlite::{Connection, OptionalExtension, params};

use crate::config::{ContainerConfiguration, ContainerSnapshot, ContainerStatus};

/// A connection to `containers.db`.
pub struct ContainerDb {
    conn: Connection,
}

impl std::fmt::Debug for ContainerDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContainerDb")
    }
}

fn db_err(e: rusqlite::Error) -> ContainerizationError {
    ContainerizationError::internal("containers.db").with_cause(e)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl ContainerDb {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<ContainerDb> {
        let conn = Connection::open(path)
            .context(Code::InternalError, format!("opening {}", path.display()))?;
        // Several processes write: wait for each other instead of failing.
        conn.busy_timeout(Duration::from_secs(10)).map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS containers (
                id TEXT PRIMARY KEY,
                config TEXT NOT NULL,
                status TEXT NOT NULL,
                exit_code INTEGER,
                helper_pid INTEGER,
                created_at TEXT NOT NULL,
                started_at TEXT,
                finished_at TEXT,
                reason TEXT
            );",
        )
        .map_err(db_err)?;
        // Databases made before `reason` existed get the column.
        let has_reason = conn
            .prepare("SELECT reason FROM containers LIMIT 0")
            .is_ok();
        if !has_reason {
            conn.execute_batch("ALTER TABLE containers ADD COLUMN reason TEXT;")
                .map_err(db_err)?;
        }
        Ok(ContainerDb { conn })
    }

    /// Inserts a new record; `Exists` when the id is taken.
    pub fn insert(&self, config: &ContainerConfiguration) -> Result<ContainerSnapshot> {
        let json = serde_json::to_string(config)
            .context(Code::InternalError, "encoding the container configuration")?;
        let created = now();
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO containers (id, config, status, created_at) VALUES (?1, ?2, 'created', ?3)",
                params![config.id, json, created],
            )
            .map_err(db_err)?;
        if n == 0 {
            return Err(ContainerizationError::exists(format!(
                "container name '{}' is already in use",
                config.id
            )));
        }
        self.get(&config.id)
    }

    /// The record of `id`; `NotFound` when there is none.
    pub fn get(&self, id: &str) -> Result<ContainerSnapshot> {
        self.find(id)?
            .ok_or_else(|| ContainerizationError::not_found(format!("container '{id}' not found")))
    }

    /// The record of `id`, if any.
    pub fn find(&self, id: &str) -> Result<Option<ContainerSnapshot>> {
        self.conn
            .query_row(
                "SELECT config, status, exit_code, helper_pid, created_at, started_at, finished_at, reason FROM containers WHERE id = ?1",
                params![id],
                row,
            )
            .optional()
            .map_err(db_err)?
            .transpose()
    }

    /// Every record, oldest first.
    pub fn list(&self) -> Result<Vec<ContainerSnapshot>> {
        let mut stmt = self
            .conn
            .prepare("SELECT config, status, exit_code, helper_pid, created_at, started_at, finished_at, reason FROM containers ORDER BY created_at")
            .map_err(db_err)?;
        let rows = stmt.query_map([], row).map_err(db_err)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(db_err)??);
        }
        Ok(out)
    }

    /// Records that a helper (pid) is booting the container.
    pub fn set_starting(&self, id: &str, helper_pid: u32) -> Result<()> {
        self.update(
            "UPDATE containers SET status='starting', helper_pid=?2, exit_code=NULL, finished_at=NULL, reason=NULL WHERE id=?1",
            params![id, helper_pid],
        )
    }

    /// Records that the init process runs.
    pub fn set_running(&self, id: &str, helper_pid: u32) -> Result<()> {
        self.update(
            "UPDATE containers SET status='running', helper_pid=?2, started_at=?3 WHERE id=?1",
            params![id, helper_pid, now()],
        )
    }

    /// Records the exit (code) of the init process.
    pub fn set_stopped(&self, id: &str, exit_code: Option<i32>) -> Result<()> {
        self.set_stopped_because(id, exit_code, None)
    }

    /// Records that the container stopped, with `reason` when the exit was
    /// not the init process's own (its VM or helper died, a start failed).
    pub fn set_stopped_because(
        &self,
        id: &str,
        exit_code: Option<i32>,
        reason: Option<&str>,
    ) -> Result<()> {
        self.update(
            "UPDATE containers SET status='stopped', exit_code=?2, helper_pid=NULL, finished_at=?3, reason=?4 WHERE id=?1",
            params![id, exit_code, now(), reason],
        )
    }

    /// Back to created (a start failed before the init process ran).
    pub fn set_created(&self, id: &str) -> Result<()> {
        self.update(
            "UPDATE containers SET status='created', helper_pid=NULL WHERE id=?1",
            params![id],
        )
    }

    /// Removes the record (no error when absent).
    pub fn remove(&self, id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM containers WHERE id=?1", params![id])
            .map_err(db_err)?;
        Ok(())
    }

    fn update(&self, sql: &str, p: impl rusqlite::Params) -> Result<()> {
        self.conn.execute(sql, p).map_err(db_err)?;
        Ok(())
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ContainerSnapshot>> {
    let config: String = r.get(0)?;
    let status: String = r.get(1)?;
    let configuration = match serde_json::from_str(&config) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Err(ContainerizationError::internal(
                "a container record is unreadable",
            )
            .with_cause(e)));
        }
    };
    Ok(Ok(ContainerSnapshot {
        configuration,
        status: ContainerStatus::parse(&status),
        exit_code: r.get(2)?,
        helper_pid: r.get::<_, Option<i64>>(3)?.map(|p| p as u32),
        created_at: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        reason: r.get(7)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_databases_gain_the_reason_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("containers.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE containers (id TEXT PRIMARY KEY, config TEXT NOT NULL,
             status TEXT NOT NULL, exit_code INTEGER, helper_pid INTEGER,
             created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT);",
        )
        .unwrap();
        drop(old);
        let db = ContainerDb::open(&path).unwrap();
        let cfg = ContainerConfiguration {
            id: "old".into(),
            ..Default::default()
        };
        db.insert(&cfg).unwrap();
        db.set_stopped_because("old", None, Some("gone")).unwrap();
        assert_eq!(db.get("old").unwrap().reason.as_deref(), Some("gone"));
        // Opening again does not try to add it twice.
        ContainerDb::open(&path).unwrap();
    }

    #[test]
    fn records_round_trip_and_names_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let db = ContainerDb::open(&dir.path().join("containers.db")).unwrap();
        let cfg = ContainerConfiguration {
            id: "web".into(),
            image: "x".into(),
            ..Default::default()
        };
        let s = db.insert(&cfg).unwrap();
        assert_eq!(s.status, ContainerStatus::Created);
        assert!(db.insert(&cfg).unwrap_err().is_code(Code::Exists));
        db.set_running("web", 42).unwrap();
        // A second connection (another process) sees the write.
        let db2 = ContainerDb::open(&dir.path().join("containers.db")).unwrap();
        assert_eq!(db2.get("web").unwrap().helper_pid, Some(42));
        db2.set_stopped("web", Some(3)).unwrap();
        let s = db.get("web").unwrap();
        assert_eq!((s.status, s.exit_code), (ContainerStatus::Stopped, Some(3)));
        assert_eq!(s.reason, None);
        db.set_starting("web", 43).unwrap();
        db.set_stopped_because("web", None, Some("the VM exited"))
            .unwrap();
        let s = db2.get("web").unwrap();
        assert_eq!(
            (s.status, s.exit_code, s.reason.as_deref()),
            (ContainerStatus::Stopped, None, Some("the VM exited"))
        );
        db.set_starting("web", 44).unwrap();
        assert_eq!(db.get("web").unwrap().reason, None);
        db.remove("web").unwrap();
        assert!(db.get("web").unwrap_err().is_code(Code::NotFound));
    }
}
