//! The routing cache: which project owns a `phone_number_id` or WABA id, and the app
//! secrets that sign its webhooks (decrypted once, kept in memory as [`Secret`]s).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chasqui_core::{InstanceKey, Secret};
use chasqui_store::{Db, numbers};
use tokio::sync::RwLock;

/// How long a loaded directory is trusted before it is reloaded (other nodes may change it).
const TTL: Duration = Duration::from_secs(30);
/// Minimum spacing of reloads triggered by unknown ids or failed signatures.
const MISS_RELOAD: Duration = Duration::from_millis(500);

/// A number as the inbound path sees it.
#[derive(Debug, Clone)]
pub struct Route {
    /// Owning project.
    pub project_id: String,
    /// Meta's phone number id.
    pub phone_number_id: String,
    /// WABA id.
    pub business_account_id: String,
    /// How it reaches WhatsApp.
    pub kind: chasqui_core::NumberKind,
    /// App secret that signs this number's webhooks.
    pub app_secret: Secret<String>,
}

#[derive(Debug, Default)]
struct Snapshot {
    by_number: HashMap<String, Arc<Route>>,
    by_waba: HashMap<String, Vec<Arc<Route>>>,
    loaded_at: Option<Instant>,
}

/// The cache itself.
#[derive(Debug)]
pub struct Directory {
    db: Db,
    key: InstanceKey,
    snapshot: RwLock<Snapshot>,
}

impl Directory {
    /// An empty directory; the first lookup loads it.
    pub fn new(db: Db, key: InstanceKey) -> Self {
        Self {
            db,
            key,
            snapshot: RwLock::new(Snapshot::default()),
        }
    }

    /// Marks the cache stale (after a number was created, changed or deleted).
    pub async fn invalidate(&self) {
        self.snapshot.write().await.loaded_at = None;
    }

    async fn reload(&self, min_age: Duration) -> chasqui_store::Result<()> {
        let mut snap = self.snapshot.write().await;
        if snap.loaded_at.is_some_and(|t| t.elapsed() < min_age) {
            return Ok(());
        }
        let mut fresh = Snapshot {
            loaded_at: Some(Instant::now()),
            ..Snapshot::default()
        };
        for n in numbers::all(&self.db).await? {
            let secret = match self.key.decrypt(&n.app_secret_enc) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(phone_number_id = %n.phone_number_id, error = %e, "cannot decrypt app secret");
                    continue;
                }
            };
            let route = Arc::new(Route {
                project_id: n.project_id,
                phone_number_id: n.phone_number_id.clone(),
                business_account_id: n.business_account_id.clone(),
                kind: n.kind,
                app_secret: Secret::new(secret),
            });
            fresh
                .by_waba
                .entry(n.business_account_id)
                .or_default()
                .push(route.clone());
            fresh.by_number.insert(n.phone_number_id, route);
        }
        *snap = fresh;
        Ok(())
    }

    async fn fresh(&self) -> chasqui_store::Result<()> {
        let stale = self
            .snapshot
            .read()
            .await
            .loaded_at
            .is_none_or(|t| t.elapsed() > TTL);
        if stale {
            self.reload(TTL).await?;
        }
        Ok(())
    }

    /// Routes for the numbers and WABAs a payload names; reloads once on a miss.
    pub async fn routes(
        &self,
        numbers: &[String],
        wabas: &[String],
        force_reload: bool,
    ) -> chasqui_store::Result<(Vec<Arc<Route>>, Vec<Arc<Route>>)> {
        self.fresh().await?;
        if force_reload {
            self.reload(MISS_RELOAD).await?;
        }
        let lookup = |snap: &Snapshot| {
            let by_number: Vec<_> = numbers
                .iter()
                .filter_map(|n| snap.by_number.get(n).cloned())
                .collect();
            let by_waba: Vec<_> = wabas
                .iter()
                .flat_map(|w| snap.by_waba.get(w).cloned().unwrap_or_default())
                .collect();
            (by_number, by_waba)
        };
        let found = lookup(&*self.snapshot.read().await);
        if found.0.len() < numbers.len() || (numbers.is_empty() && found.1.is_empty()) {
            self.reload(MISS_RELOAD).await?;
            return Ok(lookup(&*self.snapshot.read().await));
        }
        Ok(found)
    }

    /// The route of one number.
    pub async fn number(&self, phone_number_id: &str) -> chasqui_store::Result<Option<Arc<Route>>> {
        let (found, _) = self
            .routes(&[phone_number_id.to_owned()], &[], false)
            .await?;
        Ok(found.into_iter().next())
    }
}
