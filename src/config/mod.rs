//! Configuration: YAML files -> structs (unknown keys refused) -> checked, typed config.
pub mod units;

/// Parse YAML text into `T`, reporting the dotted path of the field that failed.
///
/// YAML is read into a JSON value first so enums are written as one-key maps (`- parse_json: {}`),
/// then deserialized with the path tracked. Returns `(field, message)` on failure.
pub fn from_yaml_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, (String, String)> {
    let value: serde_json::Value =
        serde_yaml_ng::from_str(text).map_err(|e| (String::new(), format!("invalid YAML: {e}")))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        (field, e.into_inner().to_string())
    })
}
