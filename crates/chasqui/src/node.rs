//! Starting and stopping a node: database, instance key, listener, workers, sandbox, and a
//! graceful shutdown that drains requests, the ingest writer and the workers.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use chasqui_app::ingest::IngestQueue;
use chasqui_app::{App, Settings};
use chasqui_core::{Clock, InstanceKey, SystemClock};
use chasqui_sandbox::Sandbox;
use chasqui_server::AppState;
use chasqui_store::{Db, numbers, projects};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Environment variable that carries the instance key (base64 of 32 bytes).
pub const INSTANCE_KEY_ENV: &str = "CHASQUI_INSTANCE_KEY";

/// Opens the database and applies migrations.
pub async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect_with(&config.database_url, config.sqlite_writer_cpu)
        .await
        .context("opening the database")?;
    db.migrate().await.context("applying migrations")?;
    Ok(db)
}

/// Loads the instance key from `CHASQUI_INSTANCE_KEY`, else `<data-dir>/instance.key`
/// (created with mode 0600 on first start), and checks it matches the database.
pub async fn instance_key(
    config: &Config,
    db: &Db,
    clock: &dyn Clock,
) -> anyhow::Result<InstanceKey> {
    let key = match std::env::var(INSTANCE_KEY_ENV)
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(text) => InstanceKey::from_base64(text.trim()).map_err(|e| {
            anyhow::anyhow!("invalid configuration: {INSTANCE_KEY_ENV} (value hidden): {e}")
        })?,
        None => load_or_create_key_file(&config.data_dir.join("instance.key"))?,
    };
    let check = key.digest("instance-key-check", b"chasqui");
    if !projects::check_instance_key(db, &check, clock.now().millis()).await? {
        bail!(
            "the instance key does not match this database: stored secrets could not be decrypted. \
             Use the key this database was created with ({INSTANCE_KEY_ENV} or <data-dir>/instance.key)"
        );
    }
    Ok(key)
}

fn load_or_create_key_file(path: &Path) -> anyhow::Result<InstanceKey> {
    if path.exists() {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return InstanceKey::from_base64(text.trim())
            .map_err(|e| anyhow::anyhow!("invalid instance key file {}: {e}", path.display()));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let key = InstanceKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, key.to_base64().as_bytes())?;
    file.sync_all()?;
    Ok(key)
}

/// Builds the use-case layer for CLI commands (no listener).
pub async fn app_for_cli(config: &Config) -> anyhow::Result<App> {
    let db = open_db(config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let key = instance_key(config, &db, clock.as_ref()).await?;
    Ok(App::new(db, key, clock, settings(config)))
}

fn settings(config: &Config) -> Settings {
    Settings {
        data_dir: config.data_dir.clone(),
        graph_base_url: config.graph_base_url.clone(),
        media_url_ttl_secs: config.media_url_ttl,
        webhook_allow_private: config.webhook_allow_private,
        webhook_retry_schedule: config.webhook_retry_schedule.clone(),
        workflow_step_lease_ms: config.workflow_step_lease * 1000,
        smtp: config.smtp.clone(),
        inbound_retention_ms: config.inbound_retention_days.map(|d| d * 86_400_000),
        webhook_retention_ms: config.webhook_retention_days.map(|d| d * 86_400_000),
    }
}

/// What a first start created, to print.
#[derive(Debug, Clone)]
pub struct FirstRun {
    /// Default project id.
    pub project_id: String,
    /// Its API key.
    pub api_key: String,
    /// Its sandbox number.
    pub phone_number_id: String,
    /// The first owner's email, to log in to the dashboard.
    pub owner_email: String,
    /// The first owner's generated password.
    pub owner_password: String,
}

/// The email of the owner the first start creates.
pub const FIRST_OWNER_EMAIL: &str = "owner@chasqui.local";

/// A running node.
#[derive(Debug)]
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The use-cases (for tests and the CLI).
    pub app: App,
    /// Set when the database was empty and a default project was created.
    pub first_run: Option<FirstRun>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Asks the node to stop.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the node has stopped (after [`Running::stop`] or a signal).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")?
    }

    /// A token that stops the node when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Starts a node with the system clock.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// Starts a node: migrations, instance key, listener, workers; returns once it accepts requests.
pub async fn start_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    let db = open_db(&config).await?;
    let key = instance_key(&config, &db, clock.as_ref()).await?;
    let app = App::new(db.clone(), key, clock, settings(&config));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let local_host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let local_url = if addr.is_ipv6() && !addr.ip().is_unspecified() {
        format!("http://[{local_host}]:{}", addr.port())
    } else {
        format!("http://{local_host}:{}", addr.port())
    };
    app.set_local_url(&local_url);
    app.set_public_url(config.public_url.as_deref().unwrap_or(&local_url));

    let sandbox = Sandbox::new(app.http().clone());
    sandbox.set_base_url(&format!("{local_url}/sandbox/graph"));
    for number in numbers::all(&db).await? {
        chasqui_server::register_sandbox_number(&app, &sandbox, &number).map_err(|e| {
            anyhow::anyhow!("registering sandbox number {}: {e}", number.phone_number_id)
        })?;
    }

    let first_run = if config.role.serves_api() && projects::count(&db).await? == 0 {
        Some(create_default_project(&app, &sandbox).await?)
    } else {
        None
    };

    let shutdown = CancellationToken::new();
    // On PostgreSQL every node hears the changes of every node (for open inboxes).
    let _listener = app
        .notifier()
        .listen(&config.database_url, db.backend(), shutdown.clone());
    let (ingest, writer) = if config.role.serves_api() {
        let (queue, task) = IngestQueue::start(app.clone());
        (Some(queue), Some(task))
    } else {
        (None, None)
    };
    let draining = Arc::new(AtomicBool::new(false));
    let state = AppState {
        app: app.clone(),
        ingest,
        sandbox,
        draining: draining.clone(),
    };
    let router = chasqui_server::router(state);

    if db.backend() == chasqui_store::Backend::Sqlite {
        // One node owns an SQLite file: leases left by a killed process are stale.
        chasqui_store::events::release_all(&db).await?;
    }
    let workers = if config.role.runs_workers() {
        let (app, token) = (app.clone(), CancellationToken::new());
        Some((
            token.clone(),
            tokio::spawn(chasqui_app::worker::run(app, token)),
        ))
    } else {
        None
    };

    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let graceful = {
            let stop = stop.clone();
            let draining = draining.clone();
            async move {
                stop.cancelled().await;
                draining.store(true, Ordering::Relaxed);
                tracing::info!("shutting down: draining requests");
            }
        };
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(graceful)
            .await;
        // The router (and its ingest queue handle) is dropped: the writer commits what it holds.
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        if let Some((token, handle)) = workers {
            token.cancel();
            let _ = handle.await;
        }
        db.close().await;
        tracing::info!("stopped");
        served.context("HTTP server failed")
    });

    Ok(Running {
        addr,
        app,
        first_run,
        shutdown,
        task,
    })
}

async fn create_default_project(app: &App, sandbox: &Sandbox) -> anyhow::Result<FirstRun> {
    let created = chasqui_app::projects::create(app, "Default project")
        .await
        .map_err(|e| anyhow::anyhow!("creating the default project: {e}"))?;
    let input = chasqui_app::numbers::NumberInput {
        kind: Some("sandbox".into()),
        name: Some("Sandbox".into()),
        ..Default::default()
    };
    let number = chasqui_app::numbers::create(app, &created.project.id, input)
        .await
        .map_err(|e| anyhow::anyhow!("creating the sandbox number: {e}"))?;
    chasqui_server::register_sandbox_number(app, sandbox, &number)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chasqui_app::workflows::create_welcome(app, &created.project.id, &number.phone_number_id)
        .await
        .map_err(|e| anyhow::anyhow!("creating the demo workflow: {e}"))?;
    let owner = chasqui_app::users::add_member(
        app,
        &created.project.id,
        chasqui_app::users::NewMember {
            email: FIRST_OWNER_EMAIL.into(),
            name: Some("Owner".into()),
            role: chasqui_app::users::Role::Owner,
            password: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("creating the first owner: {e}"))?;
    Ok(FirstRun {
        project_id: created.project.id,
        api_key: created.api_key,
        phone_number_id: number.phone_number_id,
        owner_email: owner.member.email,
        owner_password: owner.generated_password.unwrap_or_default(),
    })
}
