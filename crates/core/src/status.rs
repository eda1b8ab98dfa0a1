//! Message and conversation states and their rules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Who sent a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the customer to the business.
    Inbound,
    /// From the business to the customer.
    Outbound,
}

impl Direction {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

impl FromStr for Direction {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inbound" => Ok(Direction::Inbound),
            "outbound" => Ok(Direction::Outbound),
            other => Err(UnknownValue(other.to_string())),
        }
    }
}

/// A value outside an enumeration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value '{0}'")]
pub struct UnknownValue(pub String);

/// The delivery state of a message. Statuses only move forward (design invariant 8):
/// each has a rank and an update applies only when it raises the rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Outbound, stored but not yet accepted by Meta.
    Pending,
    /// Inbound, stored.
    Received,
    /// Accepted by WhatsApp's servers.
    Sent,
    /// Delivered to the customer's phone.
    Delivered,
    /// Read by the customer.
    Read,
    /// A voice note was played.
    Played,
    /// Could not be delivered; terminal.
    Failed,
}

impl MessageStatus {
    /// All statuses, in rank order.
    pub const ALL: [MessageStatus; 7] = [
        MessageStatus::Pending,
        MessageStatus::Received,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Played,
        MessageStatus::Failed,
    ];

    /// Position in the forward-only order; a status replaces another only with a higher rank.
    /// `failed` ranks highest: it is terminal.
    pub fn rank(self) -> i64 {
        match self {
            MessageStatus::Pending => 0,
            MessageStatus::Received => 1,
            MessageStatus::Sent => 2,
            MessageStatus::Delivered => 3,
            MessageStatus::Read => 4,
            MessageStatus::Played => 5,
            MessageStatus::Failed => 6,
        }
    }

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Received => "received",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Played => "played",
            MessageStatus::Failed => "failed",
        }
    }

    /// Whether a message in `self` may move to `next`.
    pub fn can_become(self, next: MessageStatus) -> bool {
        next.rank() > self.rank()
    }
}

impl FromStr for MessageStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownValue(s.to_string()))
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A conversation is active until it is ended (by API, or after 24 h without messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    /// Open; new messages with the contact join it.
    Active,
    /// Closed; a later message opens a new conversation.
    Ended,
}

impl ConversationStatus {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Active => "active",
            ConversationStatus::Ended => "ended",
        }
    }
}

impl FromStr for ConversationStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(ConversationStatus::Active),
            "ended" => Ok(ConversationStatus::Ended),
            other => Err(UnknownValue(other.to_string())),
        }
    }
}

/// How long a conversation stays active without messages.
pub const CONVERSATION_IDLE_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// Meta's customer-service window: free-form messages may be sent for 24 hours after the
/// customer's last message; outside it only templates.
pub const CUSTOMER_SERVICE_WINDOW_MILLIS: i64 = 24 * 60 * 60 * 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward_and_failed_is_terminal() {
        use MessageStatus::*;
        assert!(Sent.can_become(Delivered));
        assert!(Delivered.can_become(Read));
        assert!(Sent.can_become(Read), "delivered may be skipped");
        assert!(!Read.can_become(Delivered));
        assert!(!Read.can_become(Sent));
        assert!(Sent.can_become(Failed));
        for s in MessageStatus::ALL {
            assert!(!Failed.can_become(s));
        }
    }

    #[test]
    fn names_round_trip() {
        for s in MessageStatus::ALL {
            assert_eq!(s.as_str().parse::<MessageStatus>().unwrap(), s);
        }
        assert!("bogus".parse::<MessageStatus>().is_err());
        assert_eq!(
            "ended".parse::<ConversationStatus>().unwrap(),
            ConversationStatus::Ended
        );
    }
}

/// How a phone number reaches WhatsApp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberKind {
    /// A real number on Meta's Cloud API (or whatever `--graph-base-url` points at).
    Cloud,
    /// A number served by the built-in sandbox.
    Sandbox,
}

impl NumberKind {
    /// The stored and rendered name.
    pub fn as_str(self) -> &'static str {
        match self {
            NumberKind::Cloud => "cloud",
            NumberKind::Sandbox => "sandbox",
        }
    }
}

impl FromStr for NumberKind {
    type Err = UnknownValue;

    /// Accepts Kapso's `production` as an alias of `cloud`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cloud" | "production" => Ok(NumberKind::Cloud),
            "sandbox" => Ok(NumberKind::Sandbox),
            other => Err(UnknownValue(other.to_owned())),
        }
    }
}

impl fmt::Display for NumberKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
