//! Which built-in patterns can match a text at all, found in one pass from words that every
//! match of theirs contains (ASCII case ignored). Most log lines hold none of the words and leave
//! after that pass; a line that holds some is searched only by the patterns they belong to.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

pub(super) struct Needles {
    finder: AhoCorasick,
    /// For each word, the index of the pattern it belongs to.
    owner: Vec<usize>,
}

impl Needles {
    /// `words[i]` are the words of pattern `i`. `None` when a pattern has none (a custom regex),
    /// when there are more patterns than bits, or when masking could make a word appear: inside
    /// the replacement, or across its edges (so its first and last characters must be in no word).
    pub(super) fn new(words: &[Option<&[&str]>], replacement: &str) -> Option<Needles> {
        if words.len() > 64 {
            return None;
        }
        let (mut all, mut owner) = (Vec::new(), Vec::new());
        for (i, w) in words.iter().enumerate() {
            for word in (*w)? {
                all.push(word.to_ascii_lowercase());
                owner.push(i);
            }
        }
        let finder =
            AhoCorasickBuilder::new().ascii_case_insensitive(true).match_kind(MatchKind::Standard).build(&all).ok()?;
        let in_a_word = |c: Option<char>| c.is_none_or(|c| all.iter().any(|w| w.contains(c.to_ascii_lowercase())));
        if finder.is_match(replacement)
            || in_a_word(replacement.chars().next())
            || in_a_word(replacement.chars().next_back())
        {
            return None;
        }
        Some(Needles { finder, owner })
    }

    /// Bit `i` set: pattern `i` may match `text`. `None` for text that is not ASCII, where `(?i)`
    /// also matches letters such as 'ſ' for 's' and 'K' (Kelvin) for 'k', which the words miss.
    pub(super) fn candidates(&self, text: &str) -> Option<u64> {
        if !text.is_ascii() {
            return None;
        }
        Some(self.finder.find_overlapping_iter(text).fold(0, |bits, m| bits | 1 << self.owner[m.pattern().as_usize()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_patterns_whose_words_occur() {
        let words: [&[&str]; 3] = [&["bearer"], &["password", "pwd"], &["api", "secret"]];
        let n = Needles::new(&words.map(Some), "[REDACTED]").unwrap();
        assert_eq!(n.candidates("nothing here"), Some(0));
        assert_eq!(n.candidates("PassWord=x and Bearer y"), Some(0b011));
        assert_eq!(n.candidates("client_secret and pwd"), Some(0b110));
        assert_eq!(n.candidates("paſſword"), None);
    }

    #[test]
    fn refuses_what_could_hide_a_secret() {
        let words: [&[&str]; 1] = [&["api", "key"]];
        assert!(Needles::new(&words.map(Some), "***").is_some());
        for replacement in ["", "API", "k***", "***e", "a key"] {
            assert!(Needles::new(&words.map(Some), replacement).is_none(), "{replacement}");
        }
        assert!(Needles::new(&[Some(&["api"][..]), None], "***").is_none());
    }
}
