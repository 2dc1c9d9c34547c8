//! The `ticketgate` binary as a user runs it: the embedded default with sample mail, the JSON
//! listings, `ingest` exit codes, configuration errors, and the operator's view of failed and
//! dead outbound mail (`outbox list --state`, `outbox retry`).

use crate::common;
use crate::support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::smtp_sink::{SmtpSink, free_port};

fn tg(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("TICKETGATE_CONFIG")
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn repo_registry(dir: &Path) {
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("customers.toml"),
        dir.join("customers.toml"),
    )
    .unwrap();
}

#[test]
fn the_embedded_default_turns_the_sample_mail_into_tickets_and_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    repo_registry(dir.path());
    let out = tg(dir.path(), &["run", "--once"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("processed 9 mails: 4 tickets created, 1 follow-ups added, 4 quarantined"),
        "{stdout}"
    );

    let tickets = json(&tg(dir.path(), &["tickets", "list", "--json"]));
    let tickets = tickets.as_array().unwrap();
    assert_eq!(tickets.len(), 4);
    for t in tickets {
        for field in [
            "reference",
            "status",
            "severity",
            "customer",
            "subject",
            "created_at",
        ] {
            assert!(!t[field].is_null(), "{field} missing in {t}");
        }
        chrono::DateTime::parse_from_rfc3339(t["created_at"].as_str().unwrap()).unwrap();
    }
    assert_eq!(tickets[0]["reference"], "TKT-000001");
    assert_eq!(tickets[1]["severity"], 1, "the Globex outage says Critical");
    assert_eq!(
        tickets[1]["status"], "new",
        "the agent's reply is unsigned (no DKIM, no trusted path): quarantined, not applied"
    );

    let show = json(&tg(
        dir.path(),
        &["tickets", "show", "TKT-000001", "--json"],
    ));
    assert_eq!(
        show["articles"].as_array().unwrap().len(),
        2,
        "request and follow-up"
    );

    let outbox = json(&tg(dir.path(), &["outbox", "list", "--json"]));
    let outbox = outbox.as_array().unwrap();
    let acks = outbox
        .iter()
        .filter(|o| o["kind"] == "acknowledgement")
        .count();
    assert_eq!(acks, 4);
    for o in outbox {
        for field in ["kind", "to", "subject", "state", "message_id"] {
            assert!(!o[field].is_null(), "{field} missing in {o}");
        }
        assert_eq!(o["state"], "sent");
        assert!(o.get("ticket").is_some());
    }
    let files = std::fs::read_dir(dir.path().join("var/outbox"))
        .unwrap()
        .count();
    assert_eq!(files, outbox.len(), "one .eml file per outbound mail");

    let q = json(&tg(dir.path(), &["quarantine", "list", "--json"]));
    let codes: Vec<_> = q
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason_code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        codes,
        ["no_key", "revoked_key", "no_key", "unauthenticated_agent"]
    );

    // Running it twice works and does nothing new.
    let again = tg(dir.path(), &["run", "--once"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("processed 0 mails"));
    assert_eq!(
        json(&tg(dir.path(), &["tickets", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn ingest_reads_standard_input_and_reports_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    repo_registry(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .args(["ingest"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"From: jane@acme.example\r\nSubject: help\r\nMessage-ID: <x1@acme.example>\r\n\r\nSupport-Key: ACME-7Q2M-4KX9-0001\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "created");
    assert_eq!(v["ticket"], "TKT-000001");
}

/// `ingest` is one process per mail (an MTA pipe). Each process exits only once its
/// connection is closed (the store handle joins its writer thread), and on SQLite it leaves
/// the WAL for the next one instead of checkpointing at every exit, bounded by the commit
/// that takes it past `store::ONE_SHOT_WAL_PAGES` (ADR 0018). Every mail is one ticket, in
/// order; a command-line process (the last connection, checkpointing at close) then leaves
/// no WAL behind.
#[test]
fn ingest_processes_commit_every_mail_and_leave_a_bounded_wal() {
    let dir = tempfile::tempdir().unwrap();
    repo_registry(dir.path());
    let (url, _db) = common::database_url(dir.path());
    std::fs::write(
        dir.path().join("ticketgate.toml"),
        format!(
            "[database]\nurl = \"{url}\"\n[inbound]\nmaildir = \"inbox\"\n\
             [outbound]\ndir = \"outbox\"\n[registry]\npath = \"customers.toml\"\n"
        ),
    )
    .unwrap();
    let wal = dir.path().join("tg.db-wal");
    // A page of WAL is a 24-byte frame header and 4,096 bytes; a new ticket's commit
    // writes a few dozen pages at most.
    let bound = 32 + (u64::from(ticketgate::store::ONE_SHOT_WAL_PAGES) + 64) * (4096 + 24);
    let mut largest = 0;
    let n = 60;
    for i in 1..=n {
        request(dir.path(), i, &format!("user{i}@acme.example"));
        if !common::on_postgres() {
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
    }
    if !common::on_postgres() {
        assert!(largest > 0, "ingest leaves the WAL for the next process");
        assert!(
            largest <= bound,
            "the WAL grew to {largest} bytes (bound {bound})"
        );
    }
    let list = json(&tg(
        dir.path(),
        &["tickets", "list", "--json", "--limit", "1000"],
    ));
    let mut refs: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reference"].as_str().unwrap().to_string())
        .collect();
    refs.sort();
    let expected: Vec<String> = (1..=n).map(|i| format!("TKT-{i:06}")).collect();
    assert_eq!(refs, expected, "one ticket per mail, numbered in order");
    if !common::on_postgres() {
        assert!(
            !wal.exists(),
            "the command line's connection, the last one, checkpoints and removes the WAL before its process exits"
        );
    }
}

#[test]
fn ingest_asks_the_mta_to_retry_when_the_mail_cannot_be_stored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.eml"),
        b"From: a@b.example\r\nSubject: x\r\n\r\nhi\r\n",
    )
    .unwrap();
    // The database path is a folder: nothing can be stored.
    std::fs::create_dir_all(dir.path().join("db.sqlite")).unwrap();
    std::fs::write(
        dir.path().join("ticketgate.toml"),
        "[database]\nurl = \"sqlite:db.sqlite\"\n",
    )
    .unwrap();
    let out = tg(dir.path(), &["ingest", "m.eml"]);
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_bad_configuration_stops_the_start_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[inbound]\npoll_interval = \"often\"\n",
    )
    .unwrap();
    for args in [
        &["--config", "bad.toml", "check-config"][..],
        &["--config", "bad.toml", "run", "--once"],
    ] {
        let out = tg(dir.path(), args);
        assert_eq!(out.status.code(), Some(78));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("inbound.poll_interval"), "{err}");
    }
    // A broken registry is caught at start too, with its key.
    std::fs::write(
        dir.path().join("customers.toml"),
        "[[customers]]\nid = \"a\"\nplan = \"nope\"\n",
    )
    .unwrap();
    let out = tg(dir.path(), &["check-config"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("customers[0].plan"));
    // A good one passes.
    repo_registry(dir.path());
    let out = tg(dir.path(), &["check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("5 customers"));
}

/// `migrate` and configuration errors never print the password in `database.url`; `migrate`
/// names the database with the password masked. The success case needs a PostgreSQL server
/// (`TICKETGATE_TEST_DATABASE_URL` with a password); without one only the error cases run.
#[test]
fn the_database_password_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let printed = |out: &Output| format!("{}{}", stdout(out), stderr(out));

    // An unknown scheme is a configuration error naming the key, not echoing the URL.
    std::fs::write(
        dir.path().join("mysql.toml"),
        "[database]\nurl = \"mysql://tg:pa55-w0rd@db.example/tg\"\n",
    )
    .unwrap();
    for args in [
        &["--config", "mysql.toml", "migrate"][..],
        &["--config", "mysql.toml", "check-config"],
    ] {
        let out = tg(dir.path(), args);
        let all = printed(&out);
        assert_eq!(out.status.code(), Some(78), "{all}");
        assert!(all.contains("database.url"), "{all}");
        assert!(!all.contains("pa55-w0rd"), "password printed: {all}");
    }

    // A server that does not answer: the error names host and user, not the password.
    std::fs::write(
        dir.path().join("down.toml"),
        "[database]\nurl = \"postgres://tg:pa55-w0rd@127.0.0.1:1/tg\"\n",
    )
    .unwrap();
    let out = tg(dir.path(), &["--config", "down.toml", "migrate"]);
    let all = printed(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("127.0.0.1:1"), "{all}");
    assert!(!all.contains("pa55-w0rd"), "password printed: {all}");

    // A server that answers: `migrate` succeeds and shows the URL with the password masked.
    let Some(db) = common::TestDatabase::create() else {
        return;
    };
    // postgres://USER:PASSWORD@HOST…
    let userinfo = db
        .url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(u, _)| u.to_string())
        .unwrap_or_default();
    let Some(password) = userinfo.split_once(':').map(|(_, p)| p.to_string()) else {
        eprintln!("TICKETGATE_TEST_DATABASE_URL has no password: the migrate case is skipped");
        return;
    };
    std::fs::write(
        dir.path().join("pg.toml"),
        format!("[database]\nurl = \"{}\"\n", db.url),
    )
    .unwrap();
    let out = tg(dir.path(), &["--config", "pg.toml", "migrate"]);
    let all = printed(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        stdout(&out).contains(":***@") && stdout(&out).contains("is up to date"),
        "{all}"
    );
    // (The test server's user may have the password as its name: look for it as a password.)
    assert!(
        !all.contains(&format!(":{password}@")),
        "password printed: {all}"
    );
}

#[test]
fn check_config_renders_every_template_and_names_a_broken_override() {
    let dir = tempfile::tempdir().unwrap();
    repo_registry(dir.path());
    std::fs::write(dir.path().join("t.toml"), "[templates]\ndir = \"tpl\"\n").unwrap();
    std::fs::create_dir_all(dir.path().join("tpl/fr")).unwrap();
    let file = dir.path().join("tpl/fr/closure_warning.txt");
    // A variable the closure warning's context does not have, in a branch only some
    // tickets reach: blank text before, an error at start now.
    std::fs::write(
        &file,
        "Subject: [{{ reference }}] {{ subject }}\n\n{% if missing %}{{ period_fr }}{% endif %}\n",
    )
    .unwrap();
    let out = tg(dir.path(), &["--config", "t.toml", "check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("tpl/fr/closure_warning.txt") && err.contains("`period_fr`"),
        "{err}"
    );
    // The same override with the context's own variable passes.
    std::fs::write(
        &file,
        "Subject: [{{ reference }}] {{ subject }}\n\nFermée sous {{ period }}.\n",
    )
    .unwrap();
    let out = tg(dir.path(), &["--config", "t.toml", "check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_agent_acts_on_a_ticket_from_the_command_line_and_the_tick_reports_what_fires() {
    let dir = tempfile::tempdir().unwrap();
    repo_registry(dir.path());
    assert!(tg(dir.path(), &["run", "--once"]).status.success());

    let out = tg(
        dir.path(),
        &[
            "ticket",
            "TKT-000001",
            "--as",
            "mike@support.example.test",
            "status",
            "suspended",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUSPENDED"));
    let out = tg(
        dir.path(),
        &[
            "ticket",
            "TKT-000001",
            "reply",
            "Please send the worker log.",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outbox = json(&tg(dir.path(), &["outbox", "list", "--json"]));
    let kinds: Vec<_> = outbox
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.contains(&"status_change".to_string()) && kinds.contains(&"agent_reply".to_string()),
        "{kinds:?}"
    );

    // A wrong command applies nothing and says why.
    let out = tg(dir.path(), &["ticket", "TKT-000001", "status", "sleeping"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was applied"));

    let sla = json(&tg(dir.path(), &["sla", "TKT-000003", "--json"]));
    assert_eq!(sla["state"], "running");
    assert_eq!(sla["calendar"], "paris");
    assert!(sla["due_at"].is_string());

    // Three working days on: a dry run lists the reminder and the escalations, and sends nothing.
    let due = chrono::DateTime::parse_from_rfc3339(sla["due_at"].as_str().unwrap()).unwrap();
    let later = (due + chrono::Duration::days(10)).to_rfc3339();
    let dry = json(&tg(
        dir.path(),
        &["tick", "--at", &later, "--dry-run", "--json"],
    ));
    let fired = dry.as_array().unwrap();
    assert!(
        fired
            .iter()
            .any(|f| f["ticket"] == "TKT-000001" && f["timer"] == "followup"),
        "{dry}"
    );
    assert!(
        fired
            .iter()
            .any(|f| f["ticket"] == "TKT-000003" && f["timer"] == "sla"),
        "{dry}"
    );
    let after = json(&tg(dir.path(), &["outbox", "list", "--json"]));
    assert_eq!(
        after.as_array().unwrap().len(),
        outbox.as_array().unwrap().len(),
        "dry run sent nothing"
    );
    let real = json(&tg(dir.path(), &["tick", "--at", &later, "--json"]));
    assert_eq!(real.as_array().unwrap().len(), fired.len());
    let esc = json(&tg(dir.path(), &["sla", "TKT-000003", "--json"]));
    assert_eq!(esc["breached"], true);
    assert_eq!(esc["escalations"].as_array().unwrap().len(), 1);
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Queues one acknowledgement: a new request from `from` (an ACME address).
fn request(dir: &Path, n: u32, from: &str) {
    let file = dir.join(format!("m{n}.eml"));
    std::fs::write(
        &file,
        format!(
            "From: {from}\r\nSubject: problem {n}\r\nMessage-ID: <cli{n}@acme.example>\r\n\r\n\
             Support-Key: ACME-7Q2M-4KX9-0001\r\nIt fails.\r\n"
        ),
    )
    .unwrap();
    let out = tg(dir, &["ingest", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn rows(v: &serde_json::Value) -> Vec<(i64, String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_i64().unwrap(),
                o["to"].as_str().unwrap().to_string(),
                o["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_operator_lists_dead_and_failed_mail_and_retries_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    repo_registry(d);
    let port = free_port();
    std::fs::write(
        d.join("ticketgate.toml"),
        format!(
            "[database]\nurl = \"sqlite:tg.db\"\n[inbound]\nmaildir = \"inbox\"\n\
             [outbound]\ntransport = \"smtp\"\nmax_attempts = 1\n\
             [outbound.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"5s\"\n"
        ),
    )
    .unwrap();

    // 1: nobody listens and there is one attempt: a dead letter.
    request(d, 1, "jane@acme.example");
    let out = tg(d, &["run", "--once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // 2: the server refuses it for good: failed.
    let refusing = SmtpSink::start_on(port, &["-f", "rcpt", "-B", "550 5.1.1 no such user"]);
    request(d, 2, "joe@acme.example");
    let out = tg(d, &["run", "--once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    drop(refusing);
    // 3: not tried yet.
    request(d, 3, "ann@acme.example");

    let all = json(&tg(d, &["outbox", "list", "--json"]));
    let all = rows(&all);
    assert_eq!(all.len(), 3, "{all:?}");
    let id = |to: &str| all.iter().find(|r| r.1 == to).unwrap().0;
    let (dead, failed, pending) = (
        id("jane@acme.example"),
        id("joe@acme.example"),
        id("ann@acme.example"),
    );
    let states: Vec<_> = all.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(states, ["dead", "failed", "pending"]);

    // --state filters, and the JSON keeps the last error.
    let v = json(&tg(d, &["outbox", "list", "--state", "dead", "--json"]));
    assert_eq!(
        rows(&v),
        [(dead, "jane@acme.example".into(), "dead".into())]
    );
    let err = v[0]["last_error"].as_str().unwrap();
    assert!(err.contains("gave up after 1 attempts"), "{err}");
    assert_eq!(v[0]["attempts"], 1);
    let v = json(&tg(d, &["outbox", "list", "--state", "failed", "--json"]));
    assert_eq!(
        rows(&v),
        [(failed, "joe@acme.example".into(), "failed".into())]
    );
    assert!(v[0]["last_error"].as_str().unwrap().contains("550"), "{v}");
    let v = json(&tg(d, &["outbox", "list", "--state", "sent", "--json"]));
    assert_eq!(v.as_array().unwrap().len(), 0);

    // The text listing: one line per mail as before, and the error under failed and dead ones.
    let out = tg(d, &["outbox", "list", "--state", "dead"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("dead") && lines[0].contains("acknowledgement"),
        "{text}"
    );
    assert!(lines[0].contains("jane@acme.example"), "{text}");
    assert!(
        lines[1].contains("attempts 1:") && lines[1].contains("gave up after 1 attempts"),
        "{text}"
    );
    let text = stdout(&tg(d, &["outbox", "list"]));
    assert_eq!(text.lines().count(), 5, "3 mails, 2 with an error: {text}");

    let out = tg(d, &["outbox", "list", "--state", "lost"]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    assert!(stderr(&out).contains("dead"), "the valid states are listed");

    // Retrying anything but failed or dead mail, or an unknown id, says so and changes
    // nothing, not even the ids that could be retried.
    let out = tg(
        d,
        &["outbox", "retry", &dead.to_string(), &pending.to_string()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("outbox {pending}: is pending, not failed or dead")),
        "{err}"
    );
    assert!(err.contains("nothing was retried"), "{err}");
    let out = tg(d, &["outbox", "retry", "999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("outbox 999: no such mail"),
        "{}",
        stderr(&out)
    );
    let v = json(&tg(d, &["outbox", "list", "--json"]));
    let states: Vec<_> = rows(&v).into_iter().map(|r| r.2).collect();
    assert_eq!(states, ["dead", "failed", "pending"]);
    let out = tg(d, &["outbox", "retry"]);
    assert_eq!(out.status.code(), Some(2), "an id is required");

    // Retried: back to pending with the attempts reset ...
    let out = tg(
        d,
        &["outbox", "retry", &dead.to_string(), &failed.to_string()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("outbox {dead}: dead -> pending")),
        "{text}"
    );
    assert!(
        text.contains(&format!("outbox {failed}: failed -> pending")),
        "{text}"
    );
    let v = json(&tg(d, &["outbox", "list", "--state", "pending", "--json"]));
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert!(
        v.as_array().unwrap().iter().all(|o| o["attempts"] == 0),
        "{v}"
    );

    // ... and `run --once` delivers them once the server takes mail.
    let sink = SmtpSink::start_on(port, &[]);
    let out = tg(d, &["run", "--once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("outbound: 3 mails sent"),
        "{}",
        stdout(&out)
    );
    let got = sink.wait_for(3);
    assert_eq!(got.len(), 3);
    for to in ["jane@acme.example", "joe@acme.example", "ann@acme.example"] {
        let rcpt = format!("X-Rcpt-Args: <{to}>");
        assert_eq!(got.iter().filter(|m| m.contains(&rcpt)).count(), 1, "{to}");
    }
    let v = json(&tg(d, &["outbox", "list", "--json"]));
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|o| o["state"] == "sent" && o["attempts"] == 1),
        "{v}"
    );
    // Sent mail cannot be retried.
    let out = tg(d, &["outbox", "retry", &dead.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is sent, not failed or dead"),
        "{}",
        stderr(&out)
    );
}
