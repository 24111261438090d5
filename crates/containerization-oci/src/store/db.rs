//! `images.db`: reference -> descriptor, in SQLite (WAL) so several
//! processes can share it.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use oci_spec::image::Descriptor;
use rusqlite::{Connection, OptionalExtension, params};

use crate::image::Image;

pub(crate) struct Db {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS images (
    reference TEXT PRIMARY KEY NOT NULL,
    descriptor TEXT NOT NULL,
    created TEXT
)";

impl Db {
    pub(crate) fn open(path: &Path) -> Result<Db> {
        let conn = Connection::open(path).context(
            Code::InternalError,
            format!("opening image database '{}'", path.display()),
        )?;
        conn.busy_timeout(Duration::from_secs(10))
            .context(Code::InternalError, "configuring image database")?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .context(Code::InternalError, "enabling WAL on image database")?;
        conn.pragma_update(None, "synchronous", "FULL")
            .context(Code::InternalError, "configuring image database")?;
        conn.execute(SCHEMA, [])
            .context(Code::InternalError, "creating image database schema")?;
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn put(&self, image: &Image) -> Result<()> {
        let descriptor = serde_json::to_string(&image.descriptor)
            .context(Code::InternalError, "encoding descriptor")?;
        self.conn()
            .execute(
                "INSERT INTO images (reference, descriptor, created) VALUES (?1, ?2, ?3)
                 ON CONFLICT(reference) DO UPDATE SET descriptor = ?2, created = ?3",
                params![
                    image.reference,
                    descriptor,
                    image.created.map(|c| c.to_rfc3339())
                ],
            )
            .context(
                Code::InternalError,
                format!("recording image '{}'", image.reference),
            )?;
        Ok(())
    }

    pub(crate) fn get(&self, reference: &str) -> Result<Option<Image>> {
        self.conn()
            .query_row(
                "SELECT reference, descriptor, created FROM images WHERE reference = ?1",
                params![reference],
                row_to_parts,
            )
            .optional()
            .context(
                Code::InternalError,
                format!("looking up image '{reference}'"),
            )?
            .map(parts_to_image)
            .transpose()
    }

    pub(crate) fn delete(&self, reference: &str) -> Result<bool> {
        let n = self
            .conn()
            .execute(
                "DELETE FROM images WHERE reference = ?1",
                params![reference],
            )
            .context(Code::InternalError, format!("deleting image '{reference}'"))?;
        Ok(n > 0)
    }

    pub(crate) fn list(&self) -> Result<Vec<Image>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT reference, descriptor, created FROM images ORDER BY reference")
            .context(Code::InternalError, "listing images")?;
        let rows = stmt
            .query_map([], row_to_parts)
            .context(Code::InternalError, "listing images")?;
        let mut out = Vec::new();
        for row in rows {
            out.push(parts_to_image(
                row.context(Code::InternalError, "listing images")?,
            )?);
        }
        Ok(out)
    }
}

type Parts = (String, String, Option<String>);

fn row_to_parts(row: &rusqlite::Row<'_>) -> rusqlite::Result<Parts> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn parts_to_image((reference, descriptor, created): Parts) -> Result<Image> {
    let descriptor: Descriptor = serde_json::from_str(&descriptor).map_err(|e| {
        ContainerizationError::invalid_state(format!(
            "image '{reference}' has a corrupt record in images.db"
        ))
        .with_cause(e)
    })?;
    let created = created
        .and_then(|c| DateTime::parse_from_rfc3339(&c).ok())
        .map(|c| c.with_timezone(&Utc));
    Ok(Image {
        reference,
        descriptor,
        created,
    })
}
