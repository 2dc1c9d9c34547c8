//! A private PostgreSQL server for a test that must restart it (the soak): `initdb` into a
//! temporary folder (run as the `postgres` user: the server refuses to run as root), started
//! with `pg_ctl` on a free loopback port, trust authentication, its socket in the data folder.
//! The machine's shared server is never touched. Stopped (immediate) when dropped.
//!
//! Needs Debian's `postgresql` (its `/usr/lib/postgresql/VERSION/bin`) and `runuser`.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|b| b.join("pg_ctl").is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("no /usr/lib/postgresql/*/bin/pg_ctl: install it with `apt-get install postgresql`")
    })
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().expect("temporary folder for PostgreSQL");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let pg = Postgres {
            bin: bin_dir(),
            port: super::smtp_sink::free_port(),
            dir,
        };
        chown_postgres(&data);
        pg.as_postgres(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.ctl(&["start"]);
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The URL for `database.url`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/server.log")).unwrap_or_default()
    }

    /// An immediate stop (no checkpoint: crash recovery at the start, as after a power cut)
    /// and a start: every connection is cut.
    pub fn restart(&self) {
        self.ctl(&["stop", "-m", "immediate"]);
        self.ctl(&["start"]);
    }

    fn ctl(&self, args: &[&str]) {
        let data = self.data();
        let log = format!("{data}/server.log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data}",
            self.port
        );
        let mut all: Vec<&str> = vec!["-D", &data, "-w", "-l", &log, "-o", &options];
        all.extend_from_slice(args);
        self.as_postgres("pg_ctl", &all);
    }

    fn as_postgres(&self, program: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} as postgres: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed ({}): {}{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

fn chown_postgres(p: &std::path::Path) {
    let out = Command::new("chown")
        .arg("postgres:postgres")
        .arg(p)
        .output()
        .expect("chown");
    assert!(out.status.success(), "chown: {out:?}");
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-w", "stop", "-m", "immediate"])
            .output();
    }
}
