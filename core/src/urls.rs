//! URLs in configs and messages: parsing an endpoint URL, and masking credentials.
//! A leaf module, so errors, configs and discovery can all use it.

/// Parses an absolute http(s) URL, with a reason suitable for a config error.
pub(crate) fn parse_http_url(raw: &str) -> std::result::Result<url::Url, String> {
    let url =
        url::Url::parse(raw).map_err(|e| format!("not a URL ({e}): {:?}", redact_url(raw)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme must be http or https, got {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("an endpoint URL takes no query or fragment".to_owned());
    }
    Ok(url)
}

/// Returns `raw` with its credentials replaced by `***`, for messages, logs and spans.
///
/// A password is masked and the user name kept (`amqp://guest:***@h`); a user part
/// without a password is masked whole (`http://***@h`), because that is where bearer
/// tokens and API keys go (`https://TOKEN@host`). Text that does not parse as a URL has
/// everything between `://` and `@` masked, so a malformed URL that still holds a
/// secret does not leak it either.
pub fn redact_url(raw: &str) -> String {
    if let Ok(mut url) = url::Url::parse(raw) {
        // Neither setter can fail here: a URL with a user part has a host.
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        } else if !url.username().is_empty() {
            let _ = url.set_username("***");
        }
        return url.to_string();
    }
    match (raw.find("://"), raw.rfind('@')) {
        (Some(start), Some(at)) if at > start => format!("{}://***{}", &raw[..start], &raw[at..]),
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_masks_passwords() {
        assert_eq!(
            redact_url("amqp://guest:secret@h:5672/%2f"),
            "amqp://guest:***@h:5672/%2f"
        );
        assert_eq!(redact_url("amqp://h:5672"), "amqp://h:5672");
        assert_eq!(redact_url("amqp://u:p@[x/"), "amqp://***@[x/");
    }

    #[test]
    fn redact_url_masks_a_user_part_without_password_as_a_token() {
        let token = "ghp_0123456789abcdefTOKEN";
        let redacted = redact_url(&format!("https://{token}@api.example.com/v1"));
        assert_eq!(redacted, "https://***@api.example.com/v1");
        assert!(!redact_url(&format!("http://{token}@h:8080")).contains(token));
        assert!(!redact_url(&format!("http://{token}@[bad")).contains(token));
    }
}
