//! The `chatgate` binary: the local development server and operator commands.

mod demo;
mod dev;
mod ops;
mod reconcile_ops;
mod session;
mod twilio_ops;

use std::process::ExitCode;

use chatgate::domain::{Tenant, TenantId};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "chatgate", version, about = "Twilio Conversations tokens and document permissions for SaaS SPAs")]
struct Cli {
    /// In a tenant deployment (TENANT_CLAIM), the organisation whose ids a command names: its
    /// users, assets, groups and rooms, as its own back end names them. Required there, refused
    /// elsewhere.
    #[arg(long, global = true, value_parser = tenant_id)]
    tenant: Option<TenantId>,
    #[command(subcommand)]
    command: Command,
}

fn tenant_id(raw: &str) -> Result<TenantId, String> {
    TenantId::try_from(raw).map_err(|e| e.to_string())
}

/// Whose ids a command names: `--tenant`'s in a tenant deployment (`TENANT_CLAIM` set), where it
/// is required; nobody's in particular otherwise, where it is refused (it would write ids no
/// session ever names).
fn tenant(given: Option<TenantId>) -> Result<Tenant, Box<dyn std::error::Error>> {
    match (chatgate::config::tenants(&chatgate::config::Settings::from_env())?, given) {
        (true, Some(tenant)) => Ok(Tenant::Of(tenant)),
        (false, None) => Ok(Tenant::Single),
        (true, None) => {
            Err("this is a tenant deployment (TENANT_CLAIM is set): name the organisation with --tenant".into())
        }
        (false, Some(_)) => Err("--tenant is for a tenant deployment: TENANT_CLAIM is not set".into()),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve every route on one port, on embedded defaults unless configured (see README).
    Dev(dev::DevArgs),
    /// Print a session token signed with JWT_HS256_SECRET, for trying the local server as another user.
    Session(session::SessionArgs),
    /// The ACL table itself (TABLE_NAME).
    #[command(subcommand)]
    Table(ops::TableCommand),
    /// Assets in the ACL table.
    #[command(subcommand)]
    Assets(ops::AssetsCommand),
    /// Group memberships in the ACL table.
    #[command(subcommand)]
    Groups(ops::GroupsCommand),
    /// Grants on assets in the ACL table.
    #[command(subcommand)]
    Grants(ops::GrantsCommand),
    /// Rooms: public conversations users join by name.
    #[command(subcommand)]
    Rooms(twilio_ops::RoomsCommand),
    /// The one-time Twilio set-up.
    #[command(subcommand)]
    Twilio(twilio_ops::TwilioCommand),
    /// Apply the access rule now: whoever can no longer read an asset leaves its conversation.
    #[command(subcommand)]
    Reconcile(reconcile_ops::ReconcileCommand),
}

/// Human-readable lines on stderr, `RUST_LOG` to tune.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let given = cli.tenant;
    let names_ids = match &cli.command {
        Command::Dev(_) | Command::Table(_) | Command::Twilio(_) => false,
        // A failure-queue message or the legacy renaming names no id: every tenant's at once.
        Command::Reconcile(command) => matches!(
            command,
            reconcile_ops::ReconcileCommand::Asset { .. } | reconcile_ops::ReconcileCommand::User { .. }
        ),
        Command::Session(_) | Command::Assets(_) | Command::Groups(_) | Command::Grants(_) | Command::Rooms(_) => true,
    };
    if !names_ids && given.is_some() {
        eprintln!("chatgate: --tenant names whose ids a command takes; this one takes none");
        return ExitCode::FAILURE;
    }
    let which = || if names_ids { tenant(given.clone()) } else { Ok(Tenant::Single) };
    let result = match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Session(args) => which().and_then(|t| session::run(&args, &t)),
        Command::Table(command) => ops::table(command).await,
        Command::Assets(command) => async { ops::assets(command, &which()?).await }.await,
        Command::Groups(command) => async { ops::groups(command, &which()?).await }.await,
        Command::Grants(command) => async { ops::grants(command, &which()?).await }.await,
        Command::Rooms(command) => async { twilio_ops::rooms(command, &which()?).await }.await,
        Command::Twilio(command) => twilio_ops::twilio(command).await,
        Command::Reconcile(command) => async { reconcile_ops::reconcile(command, &which()?).await }.await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatgate: {e}");
            ExitCode::FAILURE
        }
    }
}
