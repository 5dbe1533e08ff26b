//! A set of field names that most other names are told apart from without reading them: by their
//! first byte (ASCII case ignored) and their length. Stages that look for a few names among a
//! record's keys ask it first, and compare text only for a key it may hold.

pub struct NameMarks(Box<[u64; 256]>);

/// Where a name's mark lives: its first byte in lower case (0 when empty), and one bit for its
/// length (lengths from 63 on share the last bit).
fn mark(name: &str) -> (usize, u64) {
    let first = name.as_bytes().first().map_or(0, u8::to_ascii_lowercase);
    (usize::from(first), 1 << name.len().min(63))
}

impl NameMarks {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> NameMarks {
        let mut marks = Box::new([0u64; 256]);
        for name in names {
            let (at, bit) = mark(name);
            marks[at] |= bit;
        }
        NameMarks(marks)
    }

    /// False when `name` is none of the names, in any ASCII case; true when it may be one.
    pub fn may_hold(&self, name: &str) -> bool {
        let (at, bit) = mark(name);
        self.0[at] & bit != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_its_names_in_any_case_and_rules_out_others() {
        let long = "a_name_beyond_sixty_three_characters_of_text_that_shares_a_bit_ok";
        let m = NameMarks::new(["level", "msg", "", long]);
        for name in ["level", "LEVEL", "msg", "Msg", "", long, "lives", "mxg"] {
            assert!(m.may_hold(name), "{name}");
        }
        for name in ["levels", "severity", "ms", "x", "b_name_beyond_sixty_three_characters_of_text"] {
            assert!(!m.may_hold(name), "{name}");
        }
    }
}
