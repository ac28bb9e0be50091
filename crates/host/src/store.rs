//! Durable state in SQLite: services, volumes and projects as JSON documents.
//!
//! Writes go through WAL with `synchronous=NORMAL`: a killed host (even SIGKILL) loses nothing
//! that was acknowledged, since the WAL is in the OS cache; only a power cut could.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Tables holding documents.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    /// Services.
    Services,
    /// Volumes.
    Volumes,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Self::Services => "services",
            Self::Volumes => "volumes",
        }
    }
}

/// The database.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS projects (id TEXT PRIMARY KEY, created_at TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS services (project_id TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (project_id, id));
             CREATE TABLE IF NOT EXISTS volumes (project_id TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (project_id, id));
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| Error::Internal("database lock poisoned".into()))
    }

    /// Records a project the first time it is used.
    pub fn touch_project(&self, project_id: &str, now: &str) -> Result<()> {
        self.conn()?.execute(
            "INSERT OR IGNORE INTO projects (id, created_at) VALUES (?1, ?2)",
            params![project_id, now],
        )?;
        Ok(())
    }

    /// Inserts or replaces a document.
    pub fn put<T: Serialize>(&self, table: Table, project_id: &str, id: &str, doc: &T) -> Result<()> {
        let json = serde_json::to_string(doc).map_err(|e| Error::Internal(e.to_string()))?;
        let sql = format!(
            "INSERT OR REPLACE INTO {} (project_id, id, doc) VALUES (?1, ?2, ?3)",
            table.name()
        );
        self.conn()?.execute(&sql, params![project_id, id, json])?;
        Ok(())
    }

    /// Deletes a document.
    pub fn delete(&self, table: Table, project_id: &str, id: &str) -> Result<()> {
        let sql = format!("DELETE FROM {} WHERE project_id = ?1 AND id = ?2", table.name());
        self.conn()?.execute(&sql, params![project_id, id])?;
        Ok(())
    }

    /// Every document of a table, in insertion order.
    pub fn all<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<T>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!("SELECT doc FROM {} ORDER BY rowid", table.name()))?;
        let docs = stmt.query_map([], |row| row.get::<_, String>(0))?;
        let mut out = Vec::new();
        for doc in docs {
            let doc = doc?;
            match serde_json::from_str(&doc) {
                Ok(v) => out.push(v),
                Err(e) => tracing::error!("skipping an unreadable {} row: {e}", table.name()),
            }
        }
        Ok(out)
    }

    /// Takes the next value of a counter.
    pub fn next(&self, counter: &str) -> Result<u32> {
        let conn = self.conn()?;
        let current: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [counter], |r| r.get(0))
            .optional()?;
        let next = current.unwrap_or(0) + 1;
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![counter, next],
        )?;
        u32::try_from(next).map_err(|_| Error::Internal(format!("counter {counter} overflowed")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path).unwrap();
            store
                .put(Table::Services, "p", "a", &serde_json::json!({"id": "a"}))
                .unwrap();
            store
                .put(Table::Services, "p", "b", &serde_json::json!({"id": "b"}))
                .unwrap();
            store.delete(Table::Services, "p", "a").unwrap();
            assert_eq!(store.next("slot").unwrap(), 1);
            assert_eq!(store.next("slot").unwrap(), 2);
        }
        let store = Store::open(&path).unwrap();
        let docs: Vec<serde_json::Value> = store.all(Table::Services).unwrap();
        assert_eq!(docs, vec![serde_json::json!({"id": "b"})]);
        assert_eq!(store.next("slot").unwrap(), 3);
    }
}
