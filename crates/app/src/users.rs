//! Dashboard users: accounts with Argon2id passwords, a role in each project, login sessions
//! carrying a CSRF token, and a per-address brake on password guessing.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chasqui_core::ids::{new_id, random_bytes};
use chasqui_store::projects::is_unique_violation;
use chasqui_store::users::{self, Member, Session, User};
use sha2::{Digest, Sha256};

use crate::{App, AppError};

/// How long a session lasts after login.
pub const SESSION_TTL_MILLIS: i64 = 14 * 24 * 3_600_000;
/// Failed logins for one address within [`THROTTLE_WINDOW_MILLIS`] before it is refused.
const THROTTLE_FAILURES: u32 = 10;
const THROTTLE_WINDOW_MILLIS: i64 = 15 * 60_000;

/// A member's role in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including managing owners.
    Owner,
    /// Manages members (not owners) and the project's resources.
    Admin,
    /// Works in the inbox.
    Member,
}

impl Role {
    /// Parses `owner`, `admin` or `member`.
    pub fn parse(text: &str) -> Result<Self, AppError> {
        match text {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            other => Err(AppError::invalid(format!(
                "role must be owner, admin or member, not {other:?}"
            ))),
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Whether this role may give (or take away) `other`.
    pub fn may_manage(self, other: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => other != Role::Owner,
            Role::Member => false,
        }
    }
}

/// Failed logins per address on this node.
#[derive(Debug, Default)]
pub struct LoginThrottle(Mutex<HashMap<String, (u32, i64)>>);

impl LoginThrottle {
    /// Seconds to wait when `email` has failed too often, else `None`.
    fn blocked_for(&self, email: &str, now: i64) -> Option<u64> {
        let map = self.0.lock().ok()?;
        let (failures, since) = map.get(email)?;
        let until = since + THROTTLE_WINDOW_MILLIS;
        (*failures >= THROTTLE_FAILURES && until > now)
            .then(|| u64::try_from((until - now + 999) / 1000).unwrap_or(1))
    }

    fn failed(&self, email: &str, now: i64) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() > 100_000 {
                map.retain(|_, (_, since)| *since + THROTTLE_WINDOW_MILLIS > now);
            }
            let entry = map.entry(email.to_owned()).or_insert((0, now));
            if entry.1 + THROTTLE_WINDOW_MILLIS <= now {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
    }

    fn succeeded(&self, email: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(email);
        }
    }
}

/// A normalised, plausible email address.
pub fn normalize_email(email: &str) -> Result<String, AppError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            }
            None => false,
        };
    if valid {
        Ok(email)
    } else {
        Err(AppError::invalid(format!(
            "email {email:?} is not a valid address"
        )))
    }
}

fn check_password(password: &str) -> Result<(), AppError> {
    let chars = password.chars().count();
    if !(8..=128).contains(&chars) {
        return Err(AppError::invalid("password must be 8 to 128 characters"));
    }
    Ok(())
}

/// A password for a user created without one: 24 hex characters (96 random bits).
fn generate_password() -> String {
    hex::encode(random_bytes::<12>())
}

/// The password to set: the given one once checked, or a generated one (also returned, to
/// show once).
fn chosen_password(given: Option<String>) -> Result<(String, Option<String>), AppError> {
    match given {
        Some(p) => {
            check_password(&p)?;
            Ok((p, None))
        }
        None => {
            let p = generate_password();
            Ok((p.clone(), Some(p)))
        }
    }
}

async fn hash_password(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::Internal(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| AppError::Internal(format!("password hashing task: {e}")))?
}

async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, verified against when the address is unknown, so an
/// unknown address takes as long to refuse as a wrong password.
async fn decoy_hash() -> String {
    static DECOY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DECOY.get() {
        return h.clone();
    }
    let h = hash_password(generate_password()).await.unwrap_or_default();
    DECOY.get_or_init(|| h).clone()
}

/// Who to add to a project.
#[derive(Debug, Clone)]
pub struct NewMember {
    /// Email (an existing user with it joins the project).
    pub email: String,
    /// Display name (for a new user; defaults to the part before `@`).
    pub name: Option<String>,
    /// Role in the project.
    pub role: Role,
    /// Password of a new user; generated when absent.
    pub password: Option<String>,
}

/// A member added to a project.
#[derive(Debug, Clone)]
pub struct AddedMember {
    /// The membership.
    pub member: Member,
    /// The generated password of a newly created user (shown once).
    pub generated_password: Option<String>,
}

/// Adds someone to a project: creates the user when the address is new, else makes the
/// existing user a member. A user already in the project is a 409.
pub async fn add_member(
    app: &App,
    project_id: &str,
    input: NewMember,
) -> Result<AddedMember, AppError> {
    let email = normalize_email(&input.email)?;
    if chasqui_store::projects::find(app.db(), project_id)
        .await?
        .is_none()
    {
        return Err(AppError::NotFound("project"));
    }
    let now = app.now();
    let membership_id = new_id();
    let conflict = || AppError::Conflict(format!("{email} is already a member of this project"));
    let generated_password = match users::by_email(app.db(), &email).await? {
        Some((user, _)) => {
            if input.password.is_some() {
                return Err(AppError::invalid(
                    "a user with this email exists; its password is not changed here",
                ));
            }
            users::add_membership(
                app.db(),
                &membership_id,
                project_id,
                &user.id,
                input.role.as_str(),
                now,
            )
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    conflict()
                } else {
                    e.into()
                }
            })?;
            None
        }
        None => {
            let name = input
                .name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
            if name.chars().count() > 200 {
                return Err(AppError::invalid("name must be at most 200 characters"));
            }
            let (password, generated) = chosen_password(input.password)?;
            let user = User {
                id: new_id(),
                email: email.clone(),
                name,
                created_at: now,
            };
            let hash = hash_password(password).await?;
            users::create_with_membership(
                app.db(),
                &user,
                &hash,
                &membership_id,
                project_id,
                input.role.as_str(),
            )
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    AppError::Conflict(format!("{email} was created concurrently; retry"))
                } else {
                    e.into()
                }
            })?;
            generated
        }
    };
    let member = users::membership(app.db(), project_id, &membership_id)
        .await?
        .ok_or_else(conflict)?;
    Ok(AddedMember {
        member,
        generated_password,
    })
}

/// Sets a user's password (a generated one when `password` is `None`, returned) and ends
/// every session of the user.
pub async fn reset_password(
    app: &App,
    email: &str,
    password: Option<String>,
) -> Result<Option<String>, AppError> {
    let email = normalize_email(email)?;
    let (user, _) = users::by_email(app.db(), &email)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let (password, generated) = chosen_password(password)?;
    let hash = hash_password(password).await?;
    users::set_password(app.db(), &user.id, &hash, app.now()).await?;
    Ok(generated)
}

/// A new session: the cookie value (shown once) and what is stored.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The session cookie's value.
    pub token: String,
    /// The session.
    pub session: Session,
    /// Who logged in.
    pub user: User,
}

/// The stored form of a session cookie.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks an email and password and opens a session. Wrong address and wrong password get
/// the same answer in the same time; an address with ten failures in 15 minutes is refused
/// for the rest of the window (429).
pub async fn login(app: &App, email: &str, password: &str) -> Result<LoggedIn, AppError> {
    let refused = || AppError::Unauthorized("invalid email or password".into());
    let Ok(email) = normalize_email(email) else {
        return Err(refused());
    };
    let now = app.now();
    if let Some(secs) = app.login_throttle().blocked_for(&email, now) {
        return Err(AppError::RateLimited(
            "too many failed logins for this address; try again later".into(),
            secs,
        ));
    }
    if password.len() > 1024 {
        return Err(refused());
    }
    let found = users::by_email(app.db(), &email).await?;
    let (user, hash, known) = match found {
        Some((user, hash)) => (Some(user), hash, true),
        None => (None, decoy_hash().await, false),
    };
    let ok = verify_password(password.to_owned(), hash).await && known;
    let Some(user) = user.filter(|_| ok) else {
        app.login_throttle().failed(&email, now);
        return Err(refused());
    };
    app.login_throttle().succeeded(&email);
    let token = format!("chs_{}", hex::encode(random_bytes::<32>()));
    let session = Session {
        user_id: user.id.clone(),
        csrf_token: hex::encode(random_bytes::<24>()),
        expires_at: now + SESSION_TTL_MILLIS,
    };
    users::insert_session(app.db(), &token_hash(&token), &session, now).await?;
    Ok(LoggedIn {
        token,
        session,
        user,
    })
}

/// The live session of a cookie value, with its user.
pub async fn session(app: &App, token: &str) -> Result<Option<(Session, User)>, AppError> {
    if token.len() > 200 {
        return Ok(None);
    }
    let Some(session) = users::session(app.db(), &token_hash(token), app.now()).await? else {
        return Ok(None);
    };
    Ok(users::find(app.db(), &session.user_id)
        .await?
        .map(|user| (session, user)))
}

/// Ends the session of a cookie value.
pub async fn logout(app: &App, token: &str) -> Result<(), AppError> {
    users::delete_session(app.db(), &token_hash(token)).await?;
    Ok(())
}

/// The project a session acts for: `wanted` when the user belongs to it, else the user's
/// first project. Returns the membership.
pub async fn acting_membership(
    app: &App,
    user_id: &str,
    wanted: Option<&str>,
) -> Result<Member, AppError> {
    let memberships = users::memberships_of(app.db(), user_id).await?;
    let chosen = match wanted {
        Some(p) => memberships.into_iter().find(|m| m.project_id == p),
        None => memberships.into_iter().next(),
    };
    chosen.ok_or_else(|| AppError::Forbidden("you are not a member of this project".into()))
}

/// Changes a member's role, as `actor` (`None`: an API key, with an owner's rights). A
/// project keeps at least one owner.
pub async fn set_role(
    app: &App,
    project_id: &str,
    membership_id: &str,
    role: Role,
    actor: Option<Role>,
) -> Result<Member, AppError> {
    let current = users::membership(app.db(), project_id, membership_id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let current_role = Role::parse(&current.role)?;
    let actor = actor.unwrap_or(Role::Owner);
    if !actor.may_manage(current_role) || !actor.may_manage(role) {
        return Err(AppError::Forbidden(format!(
            "a {} cannot make a {} a {}",
            actor.as_str(),
            current_role.as_str(),
            role.as_str()
        )));
    }
    if current_role == Role::Owner && role != Role::Owner {
        keep_an_owner(app, project_id).await?;
    }
    users::set_role(app.db(), project_id, membership_id, role.as_str()).await?;
    users::membership(app.db(), project_id, membership_id)
        .await?
        .ok_or(AppError::NotFound("user"))
}

/// Removes a member from a project (its active assignments end), as `actor`.
pub async fn remove_member(
    app: &App,
    project_id: &str,
    membership_id: &str,
    actor: Option<Role>,
) -> Result<(), AppError> {
    let current = users::membership(app.db(), project_id, membership_id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let current_role = Role::parse(&current.role)?;
    if !actor.unwrap_or(Role::Owner).may_manage(current_role) {
        return Err(AppError::Forbidden(format!(
            "you cannot remove a {}",
            current_role.as_str()
        )));
    }
    if current_role == Role::Owner {
        keep_an_owner(app, project_id).await?;
    }
    users::remove_membership(app.db(), project_id, membership_id, app.now()).await?;
    Ok(())
}

async fn keep_an_owner(app: &App, project_id: &str) -> Result<(), AppError> {
    if users::owner_count(app.db(), project_id).await? <= 1 {
        return Err(AppError::Conflict(
            "a project keeps at least one owner".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_manage_only_below_or_equal_rank() {
        assert!(Role::Owner.may_manage(Role::Owner));
        assert!(Role::Admin.may_manage(Role::Member));
        assert!(Role::Admin.may_manage(Role::Admin));
        assert!(!Role::Admin.may_manage(Role::Owner));
        assert!(!Role::Member.may_manage(Role::Member));
        assert!(Role::parse("root").is_err());
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("  Ana@Example.COM ").ok().as_deref(),
            Some("ana@example.com")
        );
        for bad in ["", "ana", "@x", "ana@", "a b@x.y", "a@b@c"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn throttle_blocks_after_ten_failures_for_the_window() {
        let t = LoginThrottle::default();
        for _ in 0..9 {
            t.failed("a@x", 0);
        }
        assert_eq!(t.blocked_for("a@x", 1), None);
        t.failed("a@x", 1);
        assert!(t.blocked_for("a@x", 2).is_some());
        assert_eq!(t.blocked_for("b@x", 2), None);
        assert_eq!(t.blocked_for("a@x", THROTTLE_WINDOW_MILLIS), None);
        t.succeeded("a@x");
        assert_eq!(t.blocked_for("a@x", 3), None);
    }
}
