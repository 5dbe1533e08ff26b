//! YAML config text to typed values: read strictly (a repeated key is an error) into a JSON
//! value, then deserialized with the path of a failing field tracked.

/// Parse YAML text into `T`, reporting the dotted path of the field that failed.
///
/// YAML is read into a JSON value first (a repeated key is an error) so enums are written as
/// one-key maps (`- parse_json: {}`), then deserialized with the path tracked. Returns `(field, message)` on failure.
pub fn from_yaml_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, (String, String)> {
    check_flow_depth(text).map_err(|m| (String::new(), format!("invalid YAML: {m}")))?;
    // Strictly: serde_json's own Value would keep the last of two equal keys without a word.
    let value = super::deserialize(serde_yaml_ng::Deserializer::from_str(text))
        .map_err(|e| (String::new(), format!("invalid YAML: {e}")))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        (field, e.into_inner().to_string())
    })
}

/// Deepest nesting of `[` / `{` accepted; serde_yaml_ng refuses more than 128 levels anyway.
const MAX_FLOW_DEPTH: usize = 128;

/// Refuse deeply nested flow collections before the YAML parser sees them: libyaml scans every
/// open level for each token, so 100,000 `[` take minutes to be refused (quadratic). Brackets are
/// counted outside comments only; quoted ones count too, which no real file notices.
fn check_flow_depth(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for (i, line) in text.lines().enumerate() {
        let mut prev = ' ';
        for c in line.chars() {
            match c {
                '#' if prev.is_whitespace() => break,
                '[' | '{' => depth += 1,
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_FLOW_DEPTH {
                return Err(format!("line {}: '[' and '{{' nested more than {MAX_FLOW_DEPTH} deep", i + 1));
            }
            prev = c;
        }
    }
    Ok(())
}
