//! `${VAR}` and `${VAR:-default}` in config text, resolved from the environment before parsing.
//! `$$` writes a literal `$`. A variable that is unset and has no default is an error naming it.
//! Whole-line comments are left alone, so they can show the syntax.

/// Replace every `${...}` in `text`, looking variables up with `lookup`.
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            interpolate_line(line, &lookup, &mut out).map_err(|e| format!("line {}: {e}", i + 1))?;
        }
    }
    Ok(out)
}

fn interpolate_line(text: &str, lookup: &impl Fn(&str) -> Option<String>, out: &mut String) -> Result<(), String> {
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| "'${' is never closed".to_string())?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "'${{{expr}}}' is not a valid variable reference; expected ${{NAME}} or ${{NAME:-default}}"
                ));
            }
            match lookup(name).filter(|v| !v.is_empty()).or(default.map(str::to_owned)) {
                Some(v) => out.push_str(&v),
                None => {
                    return Err(format!(
                        "environment variable {name} is not set and has no default (write ${{{name}:-default}})"
                    ))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME_DIR" => Some("/home/x".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        assert_eq!(interpolate("a: ${HOME_DIR}/lake", env).unwrap(), "a: /home/x/lake");
        assert_eq!(interpolate("a: ${NOPE:-7}", env).unwrap(), "a: 7");
        assert_eq!(interpolate("a: ${EMPTY:-d}", env).unwrap(), "a: d");
        assert_eq!(interpolate("price: $$5 and $x", env).unwrap(), "price: $5 and $x");
        assert_eq!(interpolate("# use ${NOPE}\na: 1", env).unwrap(), "# use ${NOPE}\na: 1");
    }

    #[test]
    fn reports_missing_and_malformed_references_with_line() {
        assert_eq!(
            interpolate("a: 1\nb: ${NOPE}", env).unwrap_err(),
            "line 2: environment variable NOPE is not set and has no default (write ${NOPE:-default})"
        );
        assert!(interpolate("a: ${bad name}", env).unwrap_err().contains("not a valid variable reference"));
        assert!(interpolate("a: ${OPEN", env).unwrap_err().contains("never closed"));
    }
}
