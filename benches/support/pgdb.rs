//! A fresh PostgreSQL database for a bench, on the server named by
//! `TICKETGATE_BENCH_DATABASE_URL` (an admin URL, e.g. its `postgres` database), created and
//! dropped with `psql`. Unset: the bench runs on SQLite.

/// The variable naming the server.
pub const BENCH_DATABASE_URL_VAR: &str = "TICKETGATE_BENCH_DATABASE_URL";

/// A database of the bench's own, dropped with it.
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    /// `None` when the variable is unset or empty.
    pub fn create() -> Option<PgDatabase> {
        let admin_url = std::env::var(BENCH_DATABASE_URL_VAR)
            .ok()
            .filter(|u| !u.is_empty())?;
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).expect("random name");
        let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("tg_bench_{name}");
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let (base, query) = match admin_url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin_url.as_str(), String::new()),
        };
        let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
        let url = format!("{base}/{name}{query}");
        Some(PgDatabase {
            admin_url,
            name,
            url,
        })
    }

    /// The database's size in MB.
    pub fn size_mb(&self) -> f64 {
        let out = std::process::Command::new("psql")
            .args(["-qtA", &self.admin_url, "-c"])
            .arg(format!("SELECT pg_database_size('{}')", self.name))
            .output()
            .expect("run psql");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<f64>()
            .map_or(0.0, |b| b / 1e6)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs one statement on the server with `psql`.
fn psql(url: &str, sql: &str) {
    let ok = std::process::Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .status()
        .expect("run psql")
        .success();
    assert!(ok, "psql `{sql}` failed");
}
