//! Chasqui's domain vocabulary: identifiers, time, message and conversation states,
//! secrets and the small pieces of cryptography every other crate shares. No I/O.

pub mod apikey;
pub mod clock;
pub mod ids;
pub mod interpolate;
pub mod secrets;
pub mod status;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use secrets::{InstanceKey, Secret};
pub use status::{ConversationStatus, Direction, MessageStatus, NumberKind};
