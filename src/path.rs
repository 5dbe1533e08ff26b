//! Dotted field paths (`http.status`) into JSON records.

use serde_json::{Map, Value};

/// A parsed dotted path. Segments never contain dots; an empty path is rejected at config time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    segments: Vec<String>,
    text: String,
}

impl FieldPath {
    /// Parse `a.b.c`; fails on empty segments so config errors are caught early.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("field path is empty".into());
        }
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!("field path '{text}' has an empty segment"));
        }
        Ok(FieldPath { segments, text: text.to_owned() })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The top-level key the path starts at.
    pub fn root(&self) -> &str {
        &self.segments[0]
    }

    /// The value at this path, if every step exists.
    pub fn get<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        self.segments.iter().try_fold(record, |v, seg| v.as_object()?.get(seg))
    }

    /// [`FieldPath::get`] on a record held as its map (no `Value` made to hold it).
    pub fn get_in<'a>(&self, record: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.segments.split_first()?;
        rest.iter().try_fold(record.get(first)?, |v, seg| v.as_object()?.get(seg))
    }

    /// The value at this path, given `root`, the value at its first segment (a column's cell):
    /// `root` itself for a one-segment path, else what lies inside it.
    pub fn within(&self, root: Value) -> Option<Value> {
        match self.segments[1..] {
            [] => Some(root),
            ref rest => rest.iter().try_fold(&root, |v, seg| v.as_object()?.get(seg)).cloned(),
        }
    }

    pub fn get_mut<'a>(&self, record: &'a mut Value) -> Option<&'a mut Value> {
        self.segments.iter().try_fold(record, |v, seg| v.as_object_mut()?.get_mut(seg))
    }

    /// Remove and return the value at this path.
    pub fn remove(&self, record: &mut Value) -> Option<Value> {
        let (last, parents) = self.segments.split_last()?;
        let parent = parents.iter().try_fold(record, |v, seg| v.as_object_mut()?.get_mut(seg))?;
        parent.as_object_mut()?.remove(last)
    }

    /// Set the value at this path, creating intermediate objects.
    /// Fails when a step exists but is not an object, rather than overwriting it.
    pub fn set(&self, record: &mut Value, value: Value) -> Result<(), String> {
        let (last, parents) = self.segments.split_last().expect("path is never empty");
        let mut cur = record;
        for seg in parents {
            let obj =
                cur.as_object_mut().ok_or_else(|| format!("cannot set '{}': a parent is not an object", self.text))?;
            cur = obj.entry(seg.clone()).or_insert_with(|| Value::Object(Map::new()));
        }
        let obj =
            cur.as_object_mut().ok_or_else(|| format!("cannot set '{}': a parent is not an object", self.text))?;
        obj.insert(last.clone(), value);
        Ok(())
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn get_set_remove_nested() {
        let p = FieldPath::parse("http.status").unwrap();
        let mut r = json!({"msg": "x"});
        assert_eq!(p.get(&r), None);
        p.set(&mut r, json!(200)).unwrap();
        assert_eq!(p.get(&r), Some(&json!(200)));
        assert_eq!(p.get_in(r.as_object().unwrap()), Some(&json!(200)));
        assert_eq!(FieldPath::parse("msg.x").unwrap().get_in(r.as_object().unwrap()), None, "msg is no object");
        assert_eq!(p.remove(&mut r), Some(json!(200)));
        assert_eq!(r, json!({"msg": "x", "http": {}}));
    }

    /// `within` reads what `get` reads, given the value at the path's root.
    #[test]
    fn within_a_root_value_is_get_on_its_record() {
        let r = json!({"http": {"status": 200, "h": {"a": "b"}}, "msg": "x"});
        for path in ["http", "http.status", "http.h.a", "http.none", "msg", "msg.x"] {
            let p = FieldPath::parse(path).unwrap();
            assert_eq!(p.within(r[p.root()].clone()), p.get(&r).cloned(), "{path}");
        }
    }

    #[test]
    fn set_refuses_to_overwrite_a_scalar_parent() {
        let p = FieldPath::parse("msg.inner").unwrap();
        let mut r = json!({"msg": "x"});
        assert!(p.set(&mut r, json!(1)).is_err());
    }

    #[test]
    fn rejects_empty_segments() {
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse("a..b").is_err());
    }
}
