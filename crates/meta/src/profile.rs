//! Business profiles (`/{phone_number_id}/whatsapp_business_profile`): Meta's limits on an
//! update.

use serde_json::{Map, Value};

/// Verticals Meta accepts on a business profile.
pub const VERTICALS: [&str; 24] = [
    "UNDEFINED",
    "OTHER",
    "AUTO",
    "BEAUTY",
    "APPAREL",
    "EDU",
    "ENTERTAIN",
    "EVENT_PLAN",
    "FINANCE",
    "GROCERY",
    "GOVT",
    "HOTEL",
    "HEALTH",
    "NONPROFIT",
    "PROF_SERVICES",
    "RETAIL",
    "TRAVEL",
    "RESTAURANT",
    "NOT_A_BIZ",
    "ALCOHOL",
    "ONLINE_GAMBLING",
    "PHYSICAL_GAMBLING",
    "OTC_DRUGS",
    "MATRIMONY_SERVICE",
];

/// Checks an update's fields (without `messaging_product`); the error is Meta's details.
pub fn check(request: &Map<String, Value>) -> Result<(), String> {
    let text = |key: &str, min: usize, max: usize| -> Result<(), String> {
        match request.get(key) {
            None => Ok(()),
            Some(Value::String(s)) if (min..=max).contains(&s.chars().count()) => Ok(()),
            Some(_) => Err(format!(
                "{key} must be a string of {min} to {max} characters."
            )),
        }
    };
    text("about", 1, 139)?;
    text("address", 0, 256)?;
    text("description", 0, 512)?;
    text("email", 0, 128)?;
    if let Some(Value::String(email)) = request.get("email")
        && !email.is_empty()
        && !(email.contains('@') && email.rsplit('@').next().is_some_and(|d| d.contains('.')))
    {
        return Err("email must be a valid email address.".into());
    }
    match request.get("websites") {
        None => {}
        Some(Value::Array(sites)) if sites.len() <= 2 => {
            for site in sites {
                let ok = site.as_str().is_some_and(|s| {
                    (s.starts_with("http://") || s.starts_with("https://")) && s.len() <= 256
                });
                if !ok {
                    return Err("websites must be http(s) URLs of at most 256 characters.".into());
                }
            }
        }
        Some(_) => return Err("websites must be an array of at most 2 URLs.".into()),
    }
    match request.get("vertical") {
        None => {}
        Some(Value::String(v)) if v.is_empty() || VERTICALS.contains(&v.as_str()) => {}
        Some(other) => return Err(format!("vertical {other} is not one of {VERTICALS:?}.")),
    }
    Ok(())
}
