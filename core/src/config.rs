//! Loading configuration: every binding hands courier a plain dict/object, a JSON or
//! TOML file, or the environment; all of them go through one path here (a
//! `serde_json::Value`, then a path-tracking deserializer, then [`Validate::validate`]),
//! so a mistake is reported the same way in every language, naming the field path and
//! the reason: `services.orders.deadline_ms: must be at least 1, got 0`.
//!
//! The config types live beside the code they configure ([`crate::ClientConfig`] in
//! `http`, [`crate::BusConfig`] in `messaging`, TLS, balancing and resilience in theirs);
//! each implements [`Validate`]. Unknown fields are errors rather than silently ignored:
//! a misspelt `dedline_ms` that fell back to the default would be a production
//! incident, not a typo.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Semantic checks that serde cannot express, run after every load.
pub trait Validate: DeserializeOwned {
    /// Environment variable read by [`Validate::from_env`].
    const ENV_VAR: &'static str;

    /// Checks the values; the error names the field path.
    ///
    /// # Errors
    /// [`Error::Config`] for the first invalid value.
    fn validate(&self) -> Result<()>;

    /// Loads from a JSON value (what the bindings build from a dict or object).
    ///
    /// # Errors
    /// [`Error::Config`] naming the field path for a wrong shape or an invalid value.
    fn from_value(value: serde_json::Value) -> Result<Self> {
        crate::limits::check_config_depth(&value)?;
        let cfg: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "config".to_owned()
            } else {
                path
            };
            Error::config(field, e.into_inner().to_string())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Loads from JSON text.
    ///
    /// # Errors
    /// [`Error::Config`] for malformed JSON or an invalid value.
    fn from_json(text: &str) -> Result<Self> {
        crate::limits::check_config_bytes(text.len())?;
        let value = serde_json::from_str(text)
            .map_err(|e| Error::config("config", format!("invalid JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Loads from TOML text.
    ///
    /// # Errors
    /// [`Error::Config`] for malformed TOML or an invalid value.
    fn from_toml(text: &str) -> Result<Self> {
        crate::limits::check_config_bytes(text.len())?;
        let value: serde_json::Value = toml::from_str(text)
            .map_err(|e| Error::config("config", format!("invalid TOML: {}", e.message())))?;
        Self::from_value(value)
    }

    /// Loads a `.toml` file as TOML and anything else as JSON.
    ///
    /// # Errors
    /// [`Error::Config`] when the file cannot be read or holds an invalid config.
    fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let cannot = |e: std::io::Error| {
            Error::config("config", format!("cannot read {}: {e}", path.display()))
        };
        // Checked before reading, so pointing the loader at a huge file costs nothing.
        crate::limits::check_config_bytes(
            usize::try_from(std::fs::metadata(path).map_err(cannot)?.len()).unwrap_or(usize::MAX),
        )?;
        let text = std::fs::read_to_string(path).map_err(cannot)?;
        if path.extension().is_some_and(|ext| ext == "toml") {
            Self::from_toml(&text)
        } else {
            Self::from_json(&text)
        }
    }

    /// Loads from [`Validate::ENV_VAR`]: inline JSON when it starts with `{`, else a file path.
    ///
    /// # Errors
    /// [`Error::Config`] when the variable is unset or its config is invalid.
    fn from_env() -> Result<Self> {
        let raw =
            std::env::var(Self::ENV_VAR).map_err(|_| Error::config(Self::ENV_VAR, "is not set"))?;
        if raw.trim_start().starts_with('{') {
            Self::from_json(&raw)
        } else {
            Self::from_file(raw.trim())
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{ClientConfig, Validate};

    #[test]
    fn toml_and_json_load_the_same_config() {
        let toml = "[services.a]\nendpoints = [\"http://h:1\"]\ndeadline_ms = 500\n";
        let json = r#"{"services": {"a": {"endpoints": ["http://h:1"], "deadline_ms": 500}}}"#;
        assert_eq!(
            ClientConfig::from_toml(toml).unwrap(),
            ClientConfig::from_json(json).unwrap()
        );
    }
}
