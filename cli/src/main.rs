//! The `chatgate` binary: the local development server and operator commands.

mod dev;
mod session;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "chatgate", version, about = "Twilio Conversations tokens and document permissions for SaaS SPAs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve every route on one port, on embedded defaults unless configured (see README).
    Dev(dev::DevArgs),
    /// Print a session token signed with JWT_HS256_SECRET, for trying the local server as another user.
    Session(session::SessionArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    chatgate::telemetry::init_cli();
    let result = match Cli::parse().command {
        Command::Dev(args) => dev::run(args).await,
        Command::Session(args) => session::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatgate: {e}");
            ExitCode::FAILURE
        }
    }
}
