//! The `ticketgate` command: the daemon, the MTA pipe, and the operator's listings.

use clap::{Parser, Subcommand};

mod cli;

// mimalloc: the pipeline allocates many small, short-lived strings per mail; measured
// +19 % end-to-end throughput over the system allocator (benches/pipeline.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use ticketgate::app::App;
use ticketgate::clock::{SharedClock, SystemClock};
use ticketgate::config::{Config, ConfigSource, LogFormat};
use ticketgate::ingest::Maildir;
use ticketgate::pipeline::RawMail;
use ticketgate::services::{self, ServiceError, tickets::AgentAction};
use ticketgate::store;

/// sysexits: temporary failure, the MTA should retry.
const EX_TEMPFAIL: u8 = 75;
/// sysexits: configuration error.
const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "ticketgate",
    version,
    about = "Email-driven support-ticket gateway"
)]
struct Cli {
    /// Configuration file. Default: ./ticketgate.toml if present, else the embedded default
    /// (SQLite and folders under ./var, customers in ./customers.toml).
    #[arg(long, global = true, env = "TICKETGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: read the inbox, update tickets, deliver the outbox.
    Run {
        /// Process what is waiting, deliver what is due, and exit.
        #[arg(long)]
        once: bool,
    },
    /// Process one raw message from FILE or standard input, as an MTA pipe delivers it.
    /// Exits 0 once its effects are committed (or it is quarantined), 75 when it could not be
    /// stored and the MTA should retry.
    Ingest { file: Option<PathBuf> },
    /// List or show tickets.
    Tickets {
        #[command(subcommand)]
        command: TicketsCommand,
    },
    /// Outbound mail: list it, and send again what failed or ran out of attempts.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Inbound mail that made no ticket change, with the reason.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// Act on a ticket as an agent: the same actions as commands in an agent's reply.
    Ticket {
        /// Ticket reference, e.g. TKT-000123.
        reference: String,
        /// Who acts (recorded in the history and shown to the customer).
        #[arg(long = "as", default_value = "cli")]
        author: String,
        #[command(subcommand)]
        action: TicketAction,
    },
    /// Show a ticket's SLA clock: started, paused, elapsed business time, due at, breached.
    Sla {
        reference: String,
        #[arg(long)]
        json: bool,
    },
    /// Run every timer (reminders, closure warnings, closes, escalations) as of an instant.
    Tick {
        /// RFC 3339 instant; default: now.
        #[arg(long)]
        at: Option<String>,
        /// List what would fire; change and send nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Addresses no automatic mail goes to (hard bounces, repeated soft bounces).
    Suppressions {
        #[command(subcommand)]
        command: SuppressionsCommand,
    },
    #[command(flatten)]
    Announce(cli::announce::Commands),
    /// Create or upgrade the database schema.
    Migrate,
    /// Validate the configuration and the customer registry, then exit.
    CheckConfig,
    /// A customer's KPI report for a period of at most a year (days in the plan's time zone):
    /// tickets by severity and type, first-response compliance, escalations, response and
    /// resolution times in business time, reopen rate, survey. Text by default.
    Report {
        /// The customer's id in the registry.
        customer: String,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last day (included), YYYY-MM-DD; not after today.
        #[arg(long)]
        to: chrono::NaiveDate,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
        /// Language of the text: en or fr. Default: the customer plan's.
        #[arg(long)]
        lang: Option<String>,
    },
    /// Ask the running daemon whether it is ready (GET /readyz): exits 0 when it is, 1 when
    /// not or when it does not answer (for containers and systemd).
    Healthcheck {
        /// The daemon's web server; default: http.listen.
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
    },
    /// Maintenance announced to the platform's maintenance lists: schedule (MNT-000001),
    /// start, finish, cancel.
    Maintenance {
        #[command(subcommand)]
        command: cli::maintenance::MaintenanceCommand,
    },
    /// Tokens for the JSON API (/api/v1) and the /ops/ pages.
    ApiToken {
        #[command(subcommand)]
        command: ApiTokenCommand,
    },
}

#[derive(Subcommand)]
enum ApiTokenCommand {
    /// Create a token; it is printed once, only its hash is stored.
    Create {
        name: String,
        /// read: lists and shows; agent: also acts on tickets and sees internal notes;
        /// admin: also retries outbound mail and replays quarantine.
        #[arg(long, value_parser = ["read", "agent", "admin"])]
        scope: String,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum TicketsCommand {
    List {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    Show {
        /// Ticket reference, e.g. TKT-000123.
        reference: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TicketAction {
    /// Change the status (a name of the ticket's workflow, e.g. suspended, "in progress").
    Status { status: String },
    /// Requalify the severity (1-4).
    Severity { severity: String },
    /// A public answer, relayed to the customer (the first one stops the SLA clock).
    Reply {
        text: String,
        /// Files sent with the answer (within outbound.max_attachment_size and
        /// outbound.max_total_attachment_size; larger ones are left out and listed).
        #[arg(long = "attach", value_name = "FILE", num_args = 1..)]
        attach: Vec<PathBuf>,
    },
    /// An internal note, not relayed.
    Note { text: String },
    /// Resolve with a reason (e.g. workaround), optionally with an explanation.
    Resolve {
        reason: String,
        text: Option<String>,
    },
    /// Close with a reason (e.g. duplicate), optionally with an explanation.
    Close {
        reason: String,
        text: Option<String>,
    },
    /// The ticket's watchers: who gets its public updates in Cc.
    Watchers {
        #[command(subcommand)]
        command: WatchersCommand,
    },
}

#[derive(Subcommand)]
enum WatchersCommand {
    /// Add a watcher (the same as `#cc add ADDRESS` in an agent's reply).
    Add { address: String },
    /// Remove a watcher (`#cc remove ADDRESS`).
    Remove { address: String },
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    List {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Process a quarantined mail again, e.g. after its sender's key was added.
    Replay { id: i64 },
}

#[derive(Subcommand)]
enum SuppressionsCommand {
    /// List the suppressed addresses with the bounce that put each there.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Take an address off the list: automatic mail goes to it again.
    Remove { address: String },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// List outbound mail, oldest first. Failed and dead rows show their last error.
    List {
        /// Only mail in this state: `dead` (out of attempts) and `failed` (refused for good)
        /// are the ones to look at.
        #[arg(long, value_enum)]
        state: Option<OutboxState>,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Put failed or dead mail back to pending with its attempts reset; the daemon (or
    /// `run --once`) then sends it. Changes nothing unless every ID is failed or dead.
    Retry {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<i64>,
    },
}

/// The states of an outbox row.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutboxState {
    Pending,
    Sending,
    Retry,
    Sent,
    /// Refused for good (SMTP 5xx, a recipient that is not an address).
    Failed,
    /// Out of attempts (`outbound.max_attempts`): the dead letters.
    Dead,
    /// Held back by the automatic-reply cap; never sent.
    Suppressed,
}

impl OutboxState {
    fn to_store(self) -> store::OutboxState {
        match self {
            OutboxState::Pending => store::OutboxState::Pending,
            OutboxState::Sending => store::OutboxState::Sending,
            OutboxState::Retry => store::OutboxState::Retry,
            OutboxState::Sent => store::OutboxState::Sent,
            OutboxState::Failed => store::OutboxState::Failed,
            OutboxState::Dead => store::OutboxState::Dead,
            OutboxState::Suppressed => store::OutboxState::Suppressed,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let is_ingest = matches!(cli.command, Command::Ingest { .. });
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ticketgate: {e}");
            return ExitCode::from(if is_ingest { EX_TEMPFAIL } else { EX_CONFIG });
        }
    };
    init_logging(&cfg);
    // lettre's SMTP pool spawns tasks when it is built and dropped: the runtime must exist
    // for the whole command, not only while the daemon runs.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ticketgate: cannot start the async runtime: {e}");
            return ExitCode::from(if is_ingest { EX_TEMPFAIL } else { 1 });
        }
    };
    let _guard = rt.enter();
    match dispatch(cli.command, cfg, &rt) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ticketgate: {e:#}");
            ExitCode::from(if is_ingest { EX_TEMPFAIL } else { 1 })
        }
    }
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_target(false).init(),
    }
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

fn dispatch(
    command: Command,
    cfg: Config,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Announce(c) => cli::announce::run(c, cfg, clock(), rt),
        Command::Run { once } => {
            let embedded = cfg.source == ConfigSource::EmbeddedDefault;
            let inbox_is_new = !cfg.inbound.maildir.exists();
            let app = App::open(cfg, clock())?;
            if embedded && inbox_is_new {
                let md = Maildir::open(&app.cfg.inbound.maildir)?;
                let n = ticketgate::samples::seed(&md)?;
                println!(
                    "embedded default: created {} with {n} sample mails",
                    md.root().display()
                );
            }
            // The daemon's tasks are spawned on a multi-thread runtime: a mailbox, the
            // Maildir/timer loop and delivery never wait for each other.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("ticketgate")
                .build()?;
            let summary = rt.block_on(app.run(once, shutdown_signal()))?;
            let r = summary.inbound;
            let d = summary.delivery;
            let dest = match &app.cfg.outbound.transport {
                ticketgate::config::TransportConfig::File { dir } => {
                    format!("written to {}", dir.display())
                }
                ticketgate::config::TransportConfig::Smtp(s) => {
                    format!("sent to {}:{}", s.host, s.port)
                }
            };
            println!(
                "processed {} mails: {} tickets created, {} follow-ups added, {} quarantined, {} duplicates{}",
                r.mails(),
                r.created,
                r.appended,
                r.quarantined,
                r.duplicates,
                if r.reports > 0 {
                    format!(", {} report requests answered", r.reports)
                } else {
                    String::new()
                }
            );
            if summary.timers > 0 {
                println!(
                    "timers: {} fired (reminders, warnings, closes, escalations)",
                    summary.timers
                );
            }
            println!(
                "outbound: {} mails {dest}, {} waiting to retry, {} failed{}",
                d.sent,
                d.retried,
                d.failed,
                if r.suppressed > 0 {
                    format!(", {} suppressed by the auto-reply cap", r.suppressed)
                } else {
                    String::new()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { file } => {
            let mut bytes = Vec::new();
            match &file {
                Some(p) => {
                    bytes = std::fs::read(p)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?
                }
                None => {
                    std::io::stdin().read_to_end(&mut bytes)?;
                }
            }
            let source = file.map_or("stdin".to_string(), |p| format!("file:{}", p.display()));
            let app = App::open_for_ingest(cfg, clock())?;
            match rt.block_on(services::intake::ingest(&app, RawMail { source, bytes })) {
                Ok(outcome) => {
                    println!("{}", serde_json::to_string(&outcome)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("ticketgate: could not store the message, retry later: {e}");
                    Ok(ExitCode::from(EX_TEMPFAIL))
                }
            }
        }
        Command::Maintenance { command } => {
            cli::maintenance::run(&App::open(cfg, clock())?, rt, command)
        }
        Command::Tickets { command } => {
            let app = App::open(cfg, clock())?;
            match command {
                TicketsCommand::List { json, limit } => {
                    let tickets = rt.block_on(services::tickets::list(&app, limit))?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&tickets)?);
                    } else {
                        for t in tickets {
                            println!(
                                "{}  {:<20} sev {}  {:<12} {}",
                                t.reference, t.status, t.severity, t.customer, t.subject
                            );
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                TicketsCommand::Show { reference, json } => {
                    let d = rt.block_on(services::tickets::show(&app, &reference))?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&d)?);
                    } else {
                        let t = &d.ticket;
                        println!(
                            "{}  [{}] sev {}  {}  {}",
                            t.reference, t.status, t.severity, t.customer, t.subject
                        );
                        if !d.watchers.is_empty() {
                            let w: Vec<&str> =
                                d.watchers.iter().map(|w| w.address.as_str()).collect();
                            println!("watchers: {}", w.join(", "));
                        }
                        for o in &d.outages {
                            println!(
                                "outage: {} [{}] {}",
                                o.reference,
                                o.state,
                                o.services.join(", ")
                            );
                        }
                        for a in &d.articles {
                            println!(
                                "\n--- {} {} {}",
                                a.created_at.to_rfc3339(),
                                a.kind,
                                a.author,
                            );
                            if let Some(v) = &a.authentication {
                                println!(
                                    "    authentication: {}{} ({})",
                                    v.result.as_str(),
                                    v.method
                                        .map(|m| format!(" by {}", m.as_str()))
                                        .unwrap_or_default(),
                                    v.detail
                                );
                            }
                            println!("{}", a.body);
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Outbox {
            command: OutboxCommand::List { state, json, limit },
        } => {
            let app = App::open(cfg, clock())?;
            let rows = rt.block_on(services::outbox::list(
                &app,
                state.map(OutboxState::to_store),
                limit,
            ))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for o in rows {
                    println!(
                        "{:>6}  {:<10} {:<20} {:<32} {}",
                        o.id, o.state, o.kind, o.to, o.subject
                    );
                    if let ("failed" | "dead" | "retry", Some(e)) =
                        (o.state.as_str(), o.last_error.as_deref())
                    {
                        println!("        attempts {}: {e}", o.attempts);
                    }
                    if let Some(f) = &o.flag {
                        println!("        flagged: {f}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Suppressions {
            command: SuppressionsCommand::List { json },
        } => {
            let app = App::open(cfg, clock())?;
            let rows = rt.block_on(services::suppressions::list(&app))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for s in rows {
                    println!(
                        "{:<40} {:<5} {}  {}",
                        s.address,
                        s.kind,
                        s.created_at.format("%Y-%m-%d %H:%M"),
                        s.reason
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Suppressions {
            command: SuppressionsCommand::Remove { address },
        } => {
            let app = App::open(cfg, clock())?;
            rt.block_on(services::suppressions::remove(&app, &address))?;
            println!("{address}: removed; automatic mail goes to it again");
            Ok(ExitCode::SUCCESS)
        }
        Command::Outbox {
            command: OutboxCommand::Retry { ids },
        } => {
            let app = App::open(cfg, clock())?;
            match rt.block_on(services::outbox::retry(&app, &ids)) {
                Ok(done) => {
                    for (id, was) in done {
                        println!("outbox {id}: {was} -> pending");
                    }
                    println!("the daemon (or `ticketgate run --once`) sends them now");
                    Ok(ExitCode::SUCCESS)
                }
                Err(ServiceError::Rejected(problems)) => {
                    for p in &problems {
                        eprintln!("ticketgate: {p}");
                    }
                    eprintln!("ticketgate: nothing was retried");
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Quarantine {
            command: QuarantineCommand::Replay { id },
        } => {
            let app = App::open(cfg, clock())?;
            let outcome = rt.block_on(services::quarantine::replay(&app, id))?;
            rt.block_on(app.deliver())?;
            println!("{}", serde_json::to_string(&outcome)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine {
            command: QuarantineCommand::List { json, limit },
        } => {
            let app = App::open(cfg, clock())?;
            let rows = rt.block_on(services::quarantine::list(&app, limit))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for q in rows {
                    println!(
                        "{:>6}  {:<22} {:<32} {}",
                        q.id,
                        q.reason_code,
                        q.from.as_deref().unwrap_or("-"),
                        q.reason
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ticket {
            reference,
            author,
            action,
        } => {
            let app = App::open(cfg, clock())?;
            let mut files = Vec::new();
            let action = match action {
                TicketAction::Watchers {
                    command: WatchersCommand::List { json },
                } => {
                    let list = rt.block_on(services::tickets::watchers(&app, &reference))?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&list)?);
                    } else {
                        for w in list {
                            println!("{}  (added by {}, {})", w.address, w.added_by, w.added_at);
                        }
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                TicketAction::Watchers {
                    command: WatchersCommand::Add { address },
                } => AgentAction::CcAdd(address),
                TicketAction::Watchers {
                    command: WatchersCommand::Remove { address },
                } => AgentAction::CcRemove(address),
                TicketAction::Status { status } => AgentAction::Status(status),
                TicketAction::Severity { severity } => AgentAction::Severity(severity),
                TicketAction::Reply { text, attach } => {
                    files = services::tickets::read_attachments(&attach)?;
                    AgentAction::Reply(text)
                }
                TicketAction::Note { text } => AgentAction::Note(text),
                TicketAction::Resolve { reason, text } => AgentAction::Resolve { reason, text },
                TicketAction::Close { reason, text } => AgentAction::Close { reason, text },
            };
            match rt.block_on(services::tickets::act_with(
                &app, &reference, &author, &action, files,
            )) {
                Ok(done) => {
                    for o in &done.omitted {
                        eprintln!("ticketgate: not sent to the customer: {o}");
                    }
                    let d = rt.block_on(app.deliver())?;
                    println!(
                        "{}: {} (severity {}); {} mail(s) delivered",
                        done.reference, done.status, done.severity, d.sent
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(ServiceError::Rejected(errors)) => {
                    for e in errors {
                        eprintln!("ticketgate: {e}");
                    }
                    eprintln!("ticketgate: nothing was applied");
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Sla { reference, json } => {
            let app = App::open(cfg, clock())?;
            let r = rt.block_on(services::tickets::sla(&app, &reference))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let view = &r.view;
                let local = |at: Option<chrono::DateTime<chrono::Utc>>| {
                    at.map_or("-".to_string(), |a| r.plan.calendar.local_text(a))
                };
                println!(
                    "{}  severity {}  calendar {}",
                    r.reference, r.severity, r.calendar
                );
                println!(
                    "  target:    {}",
                    match (r.target_written.as_deref(), view.target.as_deref()) {
                        (Some(w), Some(h)) if w != h => format!("{w} ({h} of working time)"),
                        (_, Some(h)) => h.to_string(),
                        (_, None) => "none (as soon as possible)".to_string(),
                    }
                );
                println!("  state:     {}", view.state);
                println!("  started:   {}", local(view.started_at));
                println!("  elapsed:   {} of business time", view.elapsed);
                println!("  due at:    {}", local(view.due_at));
                println!("  responded: {}", local(view.responded_at));
                println!(
                    "  breached:  {}",
                    if view.breached {
                        local(view.breached_at.or(view.due_at))
                    } else {
                        "no".into()
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tick { at, dry_run, json } => {
            let app = App::open(cfg, clock())?;
            let now = services::timers::instant(&app, at.as_deref())
                .map_err(|e| anyhow::anyhow!("--at {e}"))?;
            let fired = rt.block_on(services::timers::tick(&app, now, dry_run))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&fired)?);
            } else {
                for f in &fired {
                    println!(
                        "{}  {:<9} due {}  {}",
                        f.ticket,
                        f.timer,
                        f.due_at.to_rfc3339(),
                        f.action
                    );
                }
                println!(
                    "{} timer(s) {}",
                    fired.len(),
                    if dry_run {
                        "would fire (dry run: nothing changed or sent)"
                    } else {
                        "fired"
                    }
                );
            }
            if !dry_run {
                rt.block_on(app.deliver())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            customer,
            from,
            to,
            json,
            csv,
            lang,
        } => {
            let app = App::open(cfg, clock())?;
            let r = rt.block_on(services::reports::report(&app, &customer, from, to))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else if csv {
                print!("{}", r.to_csv());
            } else {
                let code = match lang {
                    Some(l) => l,
                    None => app
                        .pipeline
                        .registry()
                        .customer(&customer)
                        .map_or_else(|| "en".to_string(), |c| c.plan.language.clone()),
                };
                let lang = ticketgate::lang::Lang::parse(&code)
                    .ok_or_else(|| anyhow::anyhow!("--lang {code}: use en or fr"))?;
                print!("{}", r.to_text(lang));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            store::open(&cfg.database_url)?;
            println!("database {} is up to date", cfg.database_url);
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => {
            let reg = ticketgate::registry::RegistryFile::open(&cfg.registry_path)?;
            ticketgate::notify::Templates::load(cfg.templates_dir.as_deref())?.check()?;
            ticketgate::outbox::Transport::from_config(&cfg.outbound)
                .map_err(anyhow::Error::msg)?;
            let source = match &cfg.source {
                ConfigSource::File(p) => p.display().to_string(),
                ConfigSource::EmbeddedDefault => "embedded default".to_string(),
            };
            println!(
                "configuration OK ({source}); {} customers in {}",
                reg.current().customer_count(),
                cfg.registry_path.display()
            );
            if let Some(s) = &cfg.outbound.dkim {
                println!(
                    "outbound DKIM: {} as d={} s={} (public key expected at {}._domainkey.{})",
                    s.algorithm, s.domain, s.selector, s.selector, s.domain
                );
            }
            if cfg.inbound.reply_key.is_none() {
                println!(
                    "note: inbound.reply_key is not set: no reply tokens, so unauthenticated customer mail never changes a ticket's status"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck { addr } => {
            let Some(addr) = addr.or(cfg.http.listen) else {
                eprintln!("ticketgate: http.listen is empty: the daemon has no web server to ask");
                return Ok(ExitCode::FAILURE);
            };
            match rt.block_on(ticketgate::http::healthcheck(addr)) {
                Ok((ready, body)) => {
                    println!("{}", body.trim());
                    Ok(if ready {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    })
                }
                Err(e) => {
                    eprintln!("ticketgate: the daemon at {addr} did not answer: {e:#}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::ApiToken { command } => {
            let app = App::open(cfg, clock())?;
            match command {
                ApiTokenCommand::Create { name, scope } => {
                    let scope = store::Scope::parse(&scope)
                        .ok_or_else(|| anyhow::anyhow!("--scope: read, agent or admin"))?;
                    let token = rt.block_on(services::web::create_token(&app, &name, scope))?;
                    eprintln!("token `{name}` ({scope}) created; it is shown only now:");
                    println!("{token}");
                }
                ApiTokenCommand::List { json } => {
                    let rows = rt.block_on(services::web::list_tokens(&app))?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&rows)?);
                    } else {
                        for t in rows {
                            println!(
                                "{:<24} {:<6} created {}{}",
                                t.name,
                                t.scope,
                                t.created_at.to_rfc3339(),
                                t.revoked_at
                                    .map(|r| format!("  REVOKED {}", r.to_rfc3339()))
                                    .unwrap_or_default()
                            );
                        }
                    }
                }
                ApiTokenCommand::Revoke { name } => {
                    rt.block_on(services::web::revoke_token(&app, &name))?;
                    println!("token `{name}` revoked");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
