//! Command-line interface.

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::config::ConfigArgs;
use crate::{bench, node};

/// Chasqui: a self-hostable WhatsApp Business platform.
#[derive(Debug, Parser)]
#[command(name = "chasqui", version, about)]
pub struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    /// Log format: text or json.
    #[arg(
        long,
        env = "CHASQUI_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (API, workers and the embedded sandbox).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage projects.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage dashboard users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Run the Cloud API emulator on its own.
    Sandbox {
        #[command(subcommand)]
        command: SandboxCommand,
    },
    /// Load generators.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    /// Create a project and print its id and first API key as JSON.
    Create {
        /// Project name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create an API key for a project (printed once).
    Create {
        /// Project id.
        #[arg(long)]
        project: String,
        /// Label of the key.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List a project's keys (never the keys themselves).
    List {
        /// Project id.
        #[arg(long)]
        project: String,
    },
    /// Revoke a key by id.
    Revoke {
        /// Project id.
        #[arg(long)]
        project: String,
        /// Key id.
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user to a project (creating the account when the email is new) and print it as
    /// JSON, with the generated password when none was given.
    Create {
        /// Email address (the login).
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Project id (default: the only project of the instance).
        #[arg(long)]
        project: Option<String>,
        /// Role in the project: owner, admin or member (`--role` names the node's role).
        #[arg(long, default_value = "owner")]
        project_role: String,
        /// Password (8 to 128 characters) for a new account; generated when absent.
        #[arg(long, env = "CHASQUI_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// List a project's members.
    List {
        /// Project id (default: the only project of the instance).
        #[arg(long)]
        project: Option<String>,
    },
    /// Set a new password (generated and printed when none is given); ends the user's
    /// sessions.
    Password {
        /// Email address.
        #[arg(long)]
        email: String,
        /// The new password; generated when absent.
        #[arg(long, env = "CHASQUI_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum SandboxCommand {
    /// Serve the emulator: Graph API at the root, control API under /v1
    /// (listens on --listen, default 127.0.0.1:9090).
    Serve {
        /// Where to deliver webhooks (e.g. http://127.0.0.1:8080/webhooks/meta).
        #[arg(long)]
        webhook_url: String,
        /// App secret that signs the webhooks.
        #[arg(long, env = "CHASQUI_SANDBOX_APP_SECRET", hide_env_values = true)]
        app_secret: String,
    },
}

impl Cli {
    /// Sets up logging (`RUST_LOG` filters, default `info`).
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn")
        });
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        if self.log_format == "json" {
            builder.json().init();
        } else {
            builder.init();
        }
    }

    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve => serve(&self.config).await,
            Command::Migrate => {
                let config = self.config.resolve()?;
                node::open_db(&config).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Project {
                command: ProjectCommand::Create { name },
            } => {
                let app = node::app_for_cli(&self.config.resolve()?).await?;
                let created = chasqui_app::projects::create(&app, &name)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                println!(
                    "{}",
                    json!({ "project_id": created.project.id, "api_key": created.api_key })
                );
                Ok(())
            }
            Command::Key { command } => key(&self.config, command).await,
            Command::User { command } => user(&self.config, command).await,
            Command::Sandbox {
                command:
                    SandboxCommand::Serve {
                        webhook_url,
                        app_secret,
                    },
            } => {
                let listen = listen_or(&self.config, "127.0.0.1:9090")?;
                sandbox_serve(listen, &webhook_url, &app_secret).await
            }
            Command::Bench { command } => {
                let listen = listen_or(&self.config, "127.0.0.1:8099")?;
                bench::run(command, listen).await
            }
        }
    }
}

/// The `--listen` address for commands whose default differs from `serve`'s.
fn listen_or(config: &ConfigArgs, default: &str) -> anyhow::Result<std::net::SocketAddr> {
    let text = config.listen.clone().unwrap_or_else(|| default.to_owned());
    text.parse().map_err(|e| {
        anyhow::anyhow!("invalid configuration: listen = {text:?}: expected HOST:PORT ({e})")
    })
}

async fn key(config: &ConfigArgs, command: KeyCommand) -> anyhow::Result<()> {
    let app = node::app_for_cli(&config.resolve()?).await?;
    match command {
        KeyCommand::Create { project, name } => {
            let (key, plaintext) = chasqui_app::projects::create_key(&app, &project, &name)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{}",
                json!({ "id": key.id, "project_id": key.project_id, "name": key.name, "api_key": plaintext })
            );
        }
        KeyCommand::List { project } => {
            for k in chasqui_store::projects::list_keys(app.db(), &project).await? {
                println!(
                    "{}",
                    json!({
                        "id": k.id, "name": k.name, "prefix": k.prefix,
                        "created_at": chasqui_core::Timestamp(k.created_at).to_rfc3339(),
                        "revoked_at": k.revoked_at.map(|t| chasqui_core::Timestamp(t).to_rfc3339()),
                    })
                );
            }
        }
        KeyCommand::Revoke { project, key_id } => {
            if !chasqui_store::projects::revoke_key(app.db(), &project, &key_id, app.now()).await? {
                anyhow::bail!("no active key {key_id} in project {project}");
            }
            println!("{}", json!({ "revoked": key_id }));
        }
    }
    Ok(())
}

/// The project a command names, or the instance's only one.
async fn project_or_only(
    app: &chasqui_app::App,
    project: Option<String>,
) -> anyhow::Result<String> {
    if let Some(p) = project {
        return Ok(p);
    }
    let all = chasqui_store::projects::list(app.db()).await?;
    match all.as_slice() {
        [only] => Ok(only.id.clone()),
        [] => anyhow::bail!(
            "no project exists yet: start the server once or run `chasqui project create`"
        ),
        _ => anyhow::bail!(
            "this instance has {} projects: choose one with --project",
            all.len()
        ),
    }
}

async fn user(config: &ConfigArgs, command: UserCommand) -> anyhow::Result<()> {
    let app = node::app_for_cli(&config.resolve()?).await?;
    match command {
        UserCommand::Create {
            email,
            name,
            project,
            project_role,
            password,
        } => {
            let project_id = project_or_only(&app, project).await?;
            let role = chasqui_app::users::Role::parse(&project_role).map_err(app_error)?;
            let added = chasqui_app::users::add_member(
                &app,
                &project_id,
                chasqui_app::users::NewMember {
                    email,
                    name,
                    role,
                    password,
                },
            )
            .await
            .map_err(app_error)?;
            let m = &added.member;
            println!(
                "{}",
                json!({
                    "id": m.id, "user_id": m.user_id, "project_id": m.project_id,
                    "email": m.email, "name": m.name, "role": m.role,
                    "password": added.generated_password,
                })
            );
        }
        UserCommand::List { project } => {
            let project_id = project_or_only(&app, project).await?;
            let (members, _) =
                chasqui_store::users::members(app.db(), &project_id, i64::MAX, 0).await?;
            for m in members {
                println!(
                    "{}",
                    json!({ "id": m.id, "user_id": m.user_id, "email": m.email, "name": m.name, "role": m.role })
                );
            }
        }
        UserCommand::Password { email, password } => {
            let generated = chasqui_app::users::reset_password(&app, &email, password)
                .await
                .map_err(app_error)?;
            println!(
                "{}",
                json!({ "email": email.trim().to_lowercase(), "password": generated })
            );
        }
    }
    Ok(())
}

/// A use-case error for the terminal, with a 422's messages spelled out.
fn app_error(e: chasqui_app::AppError) -> anyhow::Error {
    match e {
        chasqui_app::AppError::Invalid(errors) => anyhow::anyhow!("{}", errors.join("; ")),
        other => anyhow::anyhow!("{other}"),
    }
}

async fn serve(args: &ConfigArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    tracing::info!(?config, "starting chasqui");
    let running = node::start(config).await?;
    let base = running.app.public_url().to_owned();
    println!(
        "Chasqui is listening on http://{} (public URL {base})",
        running.addr
    );
    if let Some(first) = &running.first_run {
        print_first_run(&base, first);
    }
    let token = running.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        token.cancel();
    });
    running.wait().await
}

fn print_first_run(base: &str, first: &node::FirstRun) {
    let body = r#"{"from": "15551234567", "profile_name": "Ana", "message": {"type": "text", "text": {"body": "Hola! Is the shop open today?"}}}"#;
    println!(
        "\nFirst start: created a default project with a sandbox phone number.\n\
         \n  project_id:      {}\n  phone_number_id: {}\n  API key:         {}   (shown only now; store it)\n\
         \nSend a first message as a simulated customer:\n\
         \n  curl -s -X POST {base}/sandbox/v1/phone_numbers/{}/inbound \\\n    -H 'X-API-Key: {}' -H 'Content-Type: application/json' \\\n    -d '{body}'\n\
         \nThe demo workflow Welcome answers with buttons; see what the customer received:\n\
         \n  curl -s {base}/sandbox/v1/phone_numbers/{}/outbox -H 'X-API-Key: {}'\n\
         \nThen read the conversation:\n\
         \n  curl -s {base}/platform/v1/whatsapp/conversations -H 'X-API-Key: {}'\n\
         \nDashboard login (owner; shown only now, reset with `chasqui user password`):\n\
         \n  email:    {}\n  password: {}\n",
        first.project_id,
        first.phone_number_id,
        first.api_key,
        first.phone_number_id,
        first.api_key,
        first.phone_number_id,
        first.api_key,
        first.api_key,
        first.owner_email,
        first.owner_password
    );
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

async fn sandbox_serve(
    listen: std::net::SocketAddr,
    webhook_url: &str,
    app_secret: &str,
) -> anyhow::Result<()> {
    if app_secret.is_empty() {
        anyhow::bail!("invalid configuration: app_secret must not be empty");
    }
    if !(webhook_url.starts_with("http://") || webhook_url.starts_with("https://")) {
        anyhow::bail!(
            "invalid configuration: webhook_url = {webhook_url:?}: must start with http:// or https://"
        );
    }
    let sandbox =
        chasqui_sandbox::Sandbox::standalone(reqwest::Client::new(), webhook_url, app_secret);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    sandbox.set_base_url(&format!("http://{addr}"));
    println!("Chasqui sandbox listening on http://{addr}; webhooks go to {webhook_url}");
    axum::serve(listener, chasqui_sandbox::standalone_router(sandbox))
        .with_graceful_shutdown(wait_for_signal())
        .await
        .context("sandbox server failed")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
