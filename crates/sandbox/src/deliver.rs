//! Signed webhook delivery, as Meta does it: Meta's exact bytes, `X-Hub-Signature-256`,
//! retried until the receiver answers 2xx.

use std::time::Duration;

use serde_json::{Value, json};

use crate::state::{NumberConfig, Sandbox, SandboxError};

/// Attempts of a webhook delivery: like Meta, the sandbox keeps trying for a while (about
/// half a minute), so a receiver that restarts still gets everything.
const ATTEMPTS: u32 = 20;

impl Sandbox {
    /// Wraps a change value in an envelope and delivers it (twice when the duplicate fault is armed).
    pub(crate) async fn deliver(
        &self,
        number: &NumberConfig,
        field: &str,
        value: Value,
    ) -> Result<(), SandboxError> {
        let envelope = json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": number.business_account_id, "changes": [{ "value": value, "field": field }] }],
        });
        let body = chasqui_meta::json::to_meta_bytes(&envelope);
        let copies = {
            let mut w = self.world();
            let faults = w.faults.entry(number.phone_number_id.clone()).or_default();
            if faults.duplicate_deliveries > 0 {
                faults.duplicate_deliveries -= 1;
                2
            } else {
                1
            }
        };
        for _ in 0..copies {
            self.post_signed(number, &body).await?;
        }
        Ok(())
    }

    /// Delivers an account-level change (templates, account updates): the envelope carries
    /// `entry.time` and no number metadata.
    pub(crate) async fn deliver_account(
        &self,
        receiver: &NumberConfig,
        field: &str,
        value: Value,
    ) -> Result<(), SandboxError> {
        let envelope = json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": receiver.business_account_id, "time": crate::state::now_secs(), "changes": [{ "value": value, "field": field }] }],
        });
        self.post_signed(receiver, &chasqui_meta::json::to_meta_bytes(&envelope))
            .await
    }

    async fn post_signed(&self, number: &NumberConfig, body: &[u8]) -> Result<(), SandboxError> {
        let signature = chasqui_meta::sign(number.app_secret.as_bytes(), body);
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                let backoff = (100 * u64::from(attempt * attempt)).min(2_000);
                tokio::time::sleep(Duration::from_millis(backoff)).await;
            }
            let result = self
                .inner
                .http
                .post(&number.webhook_url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", &signature)
                .timeout(Duration::from_secs(10))
                .body(body.to_vec())
                .send()
                .await;
            match result {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_client_error() => {
                    return Err(SandboxError::Delivery(format!(
                        "receiver answered {}",
                        r.status()
                    )));
                }
                Ok(r) => last = format!("receiver answered {}", r.status()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(SandboxError::Delivery(last))
    }
}
