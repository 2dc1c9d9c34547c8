//! `ticketgate maintenance …`: schedule a maintenance and mark it started, finished or
//! cancelled (issue 10). The operations are `services::maintenance`; this prints them.

use clap::Subcommand;
use std::process::ExitCode;
use ticketgate::app::App;
use ticketgate::services::maintenance::{self, Maintenance, ScheduleRequest};
use ticketgate::services::{Result as ServiceResult, ServiceError};

#[derive(Subcommand)]
pub enum MaintenanceCommand {
    /// Announce a maintenance to the platform's maintenance lists; prints its id
    /// (MNT-000001). Planned maintenance needs its start 3 business days ahead in each
    /// list's calendar; the refusal names the earliest allowed start.
    Schedule {
        /// The platform (e.g. eu): its lists of type maintenance receive the notice.
        #[arg(long)]
        platform: String,
        /// Planned start, RFC 3339 (e.g. 2026-12-09T22:00:00+01:00).
        #[arg(long)]
        start: String,
        /// Planned end, RFC 3339.
        #[arg(long)]
        end: String,
        /// What the customers will notice.
        #[arg(long)]
        impact: String,
        /// Emergency maintenance: no notice rule, announced at once.
        #[arg(long)]
        emergency: bool,
        #[arg(long)]
        json: bool,
    },
    /// It has started: the start mail to the subscribers.
    Start {
        /// MNT-000001.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// It is over: the end mail, saying whether it succeeded.
    Finish {
        id: String,
        #[arg(long, conflicts_with = "failed", required_unless_present = "failed")]
        success: bool,
        #[arg(long)]
        failed: bool,
        /// What to tell the subscribers.
        text: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// It will not take place: the cancellation mail.
    Cancel {
        id: String,
        text: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(
    app: &App,
    rt: &tokio::runtime::Runtime,
    command: MaintenanceCommand,
) -> anyhow::Result<ExitCode> {
    let (result, json, what) = match command {
        MaintenanceCommand::Schedule {
            platform,
            start,
            end,
            impact,
            emergency,
            json,
        } => (
            rt.block_on(maintenance::schedule(
                app,
                ScheduleRequest {
                    platform,
                    start,
                    end,
                    impact,
                    emergency,
                },
            )),
            json,
            "scheduled",
        ),
        MaintenanceCommand::Start { id, json } => {
            (rt.block_on(maintenance::start(app, &id)), json, "started")
        }
        MaintenanceCommand::Finish {
            id,
            success,
            failed: _,
            text,
            json,
        } => (
            rt.block_on(maintenance::finish(app, &id, success, text)),
            json,
            "finished",
        ),
        MaintenanceCommand::Cancel { id, text, json } => (
            rt.block_on(maintenance::cancel(app, &id, text)),
            json,
            "cancelled",
        ),
    };
    print(result, json, what)
}

fn print(result: ServiceResult<Maintenance>, json: bool, what: &str) -> anyhow::Result<ExitCode> {
    match result {
        Ok(m) if json => {
            println!("{}", serde_json::to_string_pretty(&m)?);
            Ok(ExitCode::SUCCESS)
        }
        Ok(m) => {
            println!("{}", m.reference);
            eprintln!(
                "{} {what} ({}{}): {} mail(s) queued to the subscribers of {}",
                m.reference,
                m.state,
                if m.emergency { ", emergency" } else { "" },
                m.recipients,
                m.lists.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ServiceError::Rejected(reasons)) => {
            for r in reasons {
                eprintln!("ticketgate: {r}");
            }
            eprintln!("ticketgate: nothing was scheduled");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}
