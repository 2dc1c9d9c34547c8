//! `ticketgate lists`, `subscribers`, `subscribe`, `unsubscribe`, `outage …`, `announce …`
//! (issue 10): thin wrappers over `services::{lists, announce}`.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use ticketgate::app::App;
use ticketgate::clock::SharedClock;
use ticketgate::config::Config;
use ticketgate::services::{ServiceError, announce, lists};

#[derive(Subcommand)]
pub enum Commands {
    /// Distribution lists of the registry, with their confirmed and pending subscribers.
    Lists {
        #[arg(long)]
        json: bool,
    },
    /// A list's subscribers (confirmed and pending).
    Subscribers {
        list: String,
        #[arg(long)]
        json: bool,
    },
    /// Subscribe an address to a list for a customer of the list's platform (confirmed at
    /// once: an operator's action).
    Subscribe {
        list: String,
        address: String,
        /// The customer's id in the registry.
        #[arg(long)]
        customer: String,
        /// A distribution address the customer maintains: unsubscribing it by mail or
        /// one-click needs a confirmation.
        #[arg(long)]
        shared: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove an address from a list (at once).
    Unsubscribe { list: String, address: String },
    /// Outages: declare, update, restore (mail to the platform's incident lists).
    Outage {
        #[command(subcommand)]
        command: OutageCommand,
    },
    /// Announce a release (`announce release …`) or send an informational announcement to
    /// one list (`announce --list LIST --subject S --body FILE`).
    Announce(AnnounceArgs),
}

#[derive(Subcommand)]
pub enum OutageCommand {
    /// Declare an outage: prints its id (OUT-000001); the notice goes out at once.
    Declare {
        #[arg(long)]
        platform: String,
        /// Comma-separated, e.g. "IMAP,Webmail".
        #[arg(long)]
        services: String,
        #[arg(long)]
        impact: String,
        /// Expected restoration, RFC 3339.
        #[arg(long)]
        restoration_eta: Option<String>,
        /// Between two updates, e.g. 1h, 30m (default `announcements.update_interval`).
        #[arg(long)]
        update_interval: Option<String>,
        /// Record it as a draft for an operator to confirm (`outage confirm ID`); no mail.
        #[arg(long)]
        draft: bool,
        #[arg(long)]
        json: bool,
    },
    /// The text of the next update (sent at its time), and/or a new estimate.
    Update {
        id: String,
        text: Option<String>,
        #[arg(long)]
        restoration_eta: Option<String>,
    },
    /// The outage is over: the restoration notice with its duration goes out.
    Restore { id: String, text: Option<String> },
    /// Declare a drafted outage (a probe's): its notice goes out now.
    Confirm { id: String },
    /// An outage (or any announcement) with the mails it sent.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AnnounceArgs {
    #[command(subcommand)]
    command: Option<AnnounceCommand>,
    /// The list an informational announcement goes to.
    #[arg(long)]
    list: Option<String>,
    #[arg(long)]
    subject: Option<String>,
    /// A file with the body (`-`: standard input).
    #[arg(long)]
    body: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum AnnounceCommand {
    /// A new release, to the platform's release lists (or its informational lists).
    Release {
        #[arg(long)]
        platform: String,
        #[arg(long = "version")]
        release: String,
        /// A file with the release notes (`-`: standard input).
        #[arg(long)]
        notes: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn read_text(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        return Ok(s);
    }
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

fn instant(flag: &str, text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| {
            anyhow::anyhow!("{flag} `{text}` is not an RFC 3339 instant (2026-12-03T13:00:00Z)")
        })
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Every problem of a rejected request on its own line; other errors as they are.
fn service<T>(r: Result<T, ServiceError>) -> anyhow::Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(ServiceError::Rejected(problems)) => {
            for p in &problems {
                eprintln!("ticketgate: {p}");
            }
            anyhow::bail!("nothing was changed")
        }
        Err(e) => Err(e.into()),
    }
}

pub fn run(
    cmd: Commands,
    cfg: Config,
    clock: SharedClock,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let app = App::open(cfg, clock)?;
    match cmd {
        Commands::Lists { json } => {
            let all = service(rt.block_on(lists::lists(&app)))?;
            if json {
                print_json(&all)?;
            } else {
                for l in all {
                    println!(
                        "{:<24} {:<13} {:<6} {:<40} {} confirmed, {} pending",
                        l.name, l.list_type, l.platform, l.address, l.confirmed, l.pending
                    );
                }
            }
        }
        Commands::Subscribers { list, json } => {
            let subs = service(rt.block_on(lists::subscribers(&app, &list)))?;
            if json {
                print_json(&subs)?;
            } else {
                for s in subs {
                    println!(
                        "{:<40} {:<16} {:<9}{}",
                        s.address,
                        s.customer,
                        s.state,
                        if s.shared { " shared" } else { "" }
                    );
                }
            }
        }
        Commands::Subscribe {
            list,
            address,
            customer,
            shared,
            json,
        } => {
            let s =
                service(rt.block_on(lists::subscribe(&app, &list, &address, &customer, shared)))?;
            if json {
                print_json(&s)?;
            } else {
                println!("{} subscribed to {} ({})", s.address, s.list, s.state);
            }
        }
        Commands::Unsubscribe { list, address } => {
            let s = service(rt.block_on(lists::unsubscribe(&app, &list, &address)))?;
            println!("{} unsubscribed from {}", s.address, s.list);
        }
        Commands::Outage { command } => outage(&app, command, rt)?,
        Commands::Announce(args) => match args.command {
            Some(AnnounceCommand::Release {
                platform,
                release,
                notes,
                json,
            }) => {
                let notes = read_text(&notes)?;
                let a = service(rt.block_on(announce::announce_release(
                    &app, &platform, &release, &notes,
                )))?;
                if json {
                    print_json(&a)?;
                } else {
                    println!("{} ({} mails)", a.reference, a.recipients);
                }
            }
            None => {
                let (Some(list), Some(subject), Some(body)) = (args.list, args.subject, args.body)
                else {
                    anyhow::bail!(
                        "write `announce release --platform P --version V --notes FILE` or \
                         `announce --list LIST --subject S --body FILE`"
                    );
                };
                let body = read_text(&body)?;
                let a = service(
                    rt.block_on(announce::announce_information(&app, &list, &subject, &body)),
                )?;
                if args.json {
                    print_json(&a)?;
                } else {
                    println!("{} ({} mails)", a.reference, a.recipients);
                }
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn outage(app: &App, command: OutageCommand, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    match command {
        OutageCommand::Declare {
            platform,
            services,
            impact,
            restoration_eta,
            update_interval,
            draft,
            json,
        } => {
            let restoration_eta = restoration_eta
                .map(|t| instant("--restoration-eta", &t))
                .transpose()?;
            let update_interval = update_interval
                .map(|t| {
                    ticketgate::config::duration("--update-interval", &t)
                        .map_err(anyhow::Error::from)
                        .and_then(|d| Ok(chrono::Duration::from_std(d)?))
                })
                .transpose()?;
            let d = service(rt.block_on(announce::declare_outage(
                app,
                announce::OutageDeclaration {
                    platform,
                    services: vec![services],
                    impact,
                    restoration_eta,
                    update_interval,
                    draft,
                    source: "operator".into(),
                },
            )))?;
            if json {
                print_json(&d)?;
            } else {
                println!("{}", d.reference);
            }
        }
        OutageCommand::Update {
            id,
            text,
            restoration_eta,
        } => {
            let eta = restoration_eta
                .map(|t| instant("--restoration-eta", &t))
                .transpose()?;
            let a = service(rt.block_on(announce::update_outage(
                app,
                &id,
                text.as_deref().unwrap_or(""),
                eta,
            )))?;
            match a.next_due_at {
                Some(t) => println!(
                    "{}: sent with the next update, {}",
                    a.reference(),
                    t.to_rfc3339()
                ),
                None => println!("{}: noted", a.reference()),
            }
        }
        OutageCommand::Restore { id, text } => {
            let a = service(rt.block_on(announce::restore_outage(app, &id, text.as_deref())))?;
            println!("{} restored ({} mails)", a.reference, a.recipients);
        }
        OutageCommand::Confirm { id } => {
            let a = service(rt.block_on(announce::confirm_draft(app, &id)))?;
            println!("{} declared ({} mails)", a.reference, a.recipients);
        }
        OutageCommand::Show { id, json } => {
            let v = service(rt.block_on(announce::announcement(app, &id)))?;
            if json {
                print_json(&v)?;
            } else {
                let a = &v.announcement;
                println!(
                    "{} {} {} [{}] {}",
                    v.reference, a.kind, a.state, a.platform, a.title
                );
                println!("  impact: {}", a.impact);
                if let Some(t) = a.restoration_eta {
                    println!("  restoration eta: {}", t.to_rfc3339());
                }
                if let Some(t) = a.next_due_at {
                    println!("  next update: {}", t.to_rfc3339());
                }
                for u in &v.updates {
                    println!(
                        "  {} {:<9} {} mails {}",
                        u.at.to_rfc3339(),
                        u.kind,
                        u.recipients,
                        u.text
                    );
                }
            }
        }
    }
    Ok(())
}
