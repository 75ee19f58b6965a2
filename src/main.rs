// The library's lints (see `lib.rs`); this crate root has no test code to exempt.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::await_holding_lock
)]

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use rolegate::config::{Cli, Command, DatabaseUrl, OrgCommand};
use rolegate::store::{self, Store, StoreOptions};
use rolegate::{app, cli, secrets, state, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    rolegate::install_crypto_provider();
    telemetry::init(args.log_format);
    match run(args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The command's exit status; an error is printed by `main` as `error: …`, exit 1.
async fn run(args: Cli) -> Result<ExitCode, String> {
    if let Command::Mappings(command) = args.command {
        let printed = on_store(&args.database_url, false, |store| async move {
            cli::mappings(store.as_ref(), command).await
        })
        .await?;
        print!("{}", printed.stdout);
        eprint!("{}", printed.stderr);
        // A refusal was already said on stderr, in the command's own form.
        return Ok(if printed.success {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    run_json(args).await.map(|()| ExitCode::SUCCESS)
}

async fn run_json(args: Cli) -> Result<(), String> {
    let url = args.database_url.expose();
    match args.command {
        Command::Serve(mut serve) => {
            let options = StoreOptions {
                max_connections: serve.db_max_connections,
                migrate: !serve.no_migrate,
                // No statement needs longer than the request that runs it may take.
                statement_timeout: Some(serve.request_timeout()),
                create: true,
            };
            let store = store::connect(url, &options)
                .await
                .map_err(|e| e.to_string())?;
            let listener = tokio::net::TcpListener::bind(serve.bind)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", serve.bind))?;
            let local = listener.local_addr().map_err(|e| e.to_string())?;
            // The default public URL is the address actually bound (`--bind 127.0.0.1:0` picks a
            // port only now).
            serve.bind = local;
            let keyring = secrets::keyring(&args.keys)?;
            // Before serving anything: a service that cannot open its secrets says why now,
            // not at the first login.
            secrets::check_store(store.as_ref(), &keyring).await?;
            let state = state::AppState::new(store.clone(), serve)
                .map_err(|e| e.to_string())?
                .with_keyring(keyring);
            let config = &state.config;
            tracing::info!(
                addr = %local,
                public_url = %config.public_url(),
                database = %args.database_url.located(),
                backend = ?store.backend(),
                mail = %state.mailer.mode(),
                scim_rate_limit = config.scim_rate_limit,
                "listening"
            );
            app::serve(listener, state, app::shutdown_signal())
                .await
                .map_err(|e| e.to_string())?;
            store.close().await;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Migrate => {
            let applied = store::migrate(url).await.map_err(|e| e.to_string())?;
            println!("{}", cli::migrated(&args.database_url, &applied));
            Ok(())
        }
        Command::Org(command) => {
            // Creating a root org is how an operator starts: it may create the database.
            let create = matches!(command, OrgCommand::Create { .. });
            operator(&args.database_url, create, |store| async move {
                cli::org(store.as_ref(), command).await
            })
            .await
        }
        Command::Token(command) => {
            operator(&args.database_url, false, |store| async move {
                cli::token(store.as_ref(), command).await
            })
            .await
        }
        Command::Scim(command) => {
            operator(&args.database_url, false, |store| async move {
                cli::scim(store.as_ref(), command).await
            })
            .await
        }
        Command::Outbox(command) => {
            operator(&args.database_url, false, |store| async move {
                cli::outbox(store.as_ref(), command).await
            })
            .await
        }
        Command::Oidc(command) => {
            let keyring = secrets::keyring(&args.keys)?;
            operator(&args.database_url, false, |store| async move {
                secrets::check_store(store.as_ref(), &keyring)
                    .await
                    .map_err(cli::CliError::Connection)?;
                cli::oidc(store.as_ref(), &keyring, command).await
            })
            .await
        }
        Command::Keys(command) => {
            let keyring = secrets::keyring(&args.keys)?;
            operator(&args.database_url, false, |store| async move {
                cli::keys(store.as_ref(), &keyring, command).await
            })
            .await
        }
        Command::Console(command) => {
            operator(&args.database_url, false, |store| async move {
                cli::console(store.as_ref(), command).await
            })
            .await
        }
        // Handled by `run`: it prints documents, not one JSON value.
        Command::Mappings(_) => Err("mappings: not a JSON command".into()),
    }
}

/// Runs one operator command on the store and prints its JSON; the store is closed either way.
/// Only a command that may `create` the database makes one that is not there.
async fn operator<F, Fut>(database: &DatabaseUrl, create: bool, command: F) -> Result<(), String>
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = Result<serde_json::Value, cli::CliError>>,
{
    let out = on_store(database, create, command).await?;
    println!("{out}");
    Ok(())
}

/// Runs one operator command on the store, closed either way; its failure as the message to
/// print. Only a command that may `create` the database makes one that is not there.
async fn on_store<F, Fut, T>(database: &DatabaseUrl, create: bool, command: F) -> Result<T, String>
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = Result<T, cli::CliError>>,
{
    let options = StoreOptions {
        create,
        ..StoreOptions::default()
    };
    let store = store::connect(database.expose(), &options)
        .await
        .map_err(|e| e.to_string())?;
    let out = command(store.clone())
        .await
        .map_err(|e| cli::explain(e, database));
    store.close().await;
    out
}
