//! Which built-in patterns can match a text at all, found in one pass from words that every
//! match of theirs contains (ASCII case ignored). Most log lines hold none of the words and leave
//! after that pass; a line that holds some is searched only by the patterns they belong to.

use aho_corasick::{packed, AhoCorasick, AhoCorasickBuilder, MatchKind, Span};

pub(super) struct Needles {
    /// The words, ASCII case ignored: for one text at a time.
    finder: AhoCorasick,
    /// The words for a whole column, lowered first: a SIMD search (Teddy) that skips the text
    /// between words at a fraction of an instruction a byte, where an automaton ignoring case
    /// takes several. `None` on a CPU without one.
    packed: Option<packed::Searcher>,
    /// For each word, the bit of its pattern and those of the words it begins with: where words
    /// start at one place, the packed search reports only the longest.
    bits: Vec<u64>,
}

impl Needles {
    /// `words[i]` are the words of pattern `i`. `None` when a pattern has none (a custom regex),
    /// when there are more patterns than bits, or when masking could make a word appear: inside
    /// the replacement, or across its edges (so its first and last characters must be in no word).
    pub(super) fn new(words: &[Option<&[&str]>], replacement: &str) -> Option<Needles> {
        if words.len() > 64 {
            return None;
        }
        let (mut all, mut owner) = (Vec::new(), Vec::<u64>::new());
        for (i, w) in words.iter().enumerate() {
            for word in (*w)? {
                all.push(word.to_ascii_lowercase());
                owner.push(1 << i);
            }
        }
        let bits = all
            .iter()
            .map(|w| all.iter().zip(&owner).filter(|(p, _)| w.starts_with(p.as_str())).fold(0, |b, (_, o)| b | o))
            .collect();
        let finder =
            AhoCorasickBuilder::new().ascii_case_insensitive(true).match_kind(MatchKind::Standard).build(&all).ok()?;
        let in_a_word = |c: Option<char>| c.is_none_or(|c| all.iter().any(|w| w.contains(c.to_ascii_lowercase())));
        if finder.is_match(replacement)
            || in_a_word(replacement.chars().next())
            || in_a_word(replacement.chars().next_back())
        {
            return None;
        }
        let packed =
            packed::Config::new().match_kind(packed::MatchKind::LeftmostLongest).builder().extend(&all).build();
        Some(Needles { finder, packed, bits })
    }

    /// [`Needles::candidates`] of each text laid end to end in `buffer` at `offsets` (Arrow's
    /// layout: text `r` is `offsets[r]..offsets[r + 1]`), in one pass over their text lowered
    /// (ASCII letters only, as the words ignore case). The search starts again one byte past each
    /// word it finds, so it finds every place where a word starts. A word that runs across two
    /// texts marks the one it starts in: a search there that finds nothing, never a match missed.
    pub(super) fn candidates_by_row(&self, buffer: &[u8], offsets: &[i32]) -> Vec<Option<u64>> {
        let rows = offsets.len().saturating_sub(1);
        let span = |r: usize| &buffer[offsets[r] as usize..offsets[r + 1] as usize];
        let (Some(packed), Some(&first), Some(&end)) = (&self.packed, offsets.first(), offsets.last()) else {
            return (0..rows).map(|r| self.candidates(span(r))).collect();
        };
        let lowered = buffer[first as usize..end as usize].to_ascii_lowercase();
        let mut bits = vec![0u64; rows];
        let (mut at, mut row) = (0, 0);
        while let Some(m) = packed.find_in(&lowered, Span::from(at..lowered.len())) {
            let start = first as usize + m.start();
            while offsets[row + 1] as usize <= start {
                row += 1;
            }
            bits[row] |= self.bits[m.pattern().as_usize()];
            at = m.start() + 1;
        }
        let ascii = lowered.is_ascii();
        bits.into_iter().enumerate().map(|(r, bits)| (ascii || span(r).is_ascii()).then_some(bits)).collect()
    }

    /// Bit `i` set: pattern `i` may match `text`. `None` for text that is not ASCII, where `(?i)`
    /// also matches letters such as 'ſ' for 's' and 'K' (Kelvin) for 'k', which the words miss.
    pub(super) fn candidates(&self, text: impl AsRef<[u8]>) -> Option<u64> {
        let text = text.as_ref();
        let found = |bits, m: aho_corasick::Match| bits | self.bits[m.pattern().as_usize()];
        text.is_ascii().then(|| self.finder.find_overlapping_iter(text).fold(0, found))
    }
}

/// A search for any of `words`, ASCII case ignored, as a lazy DFA: over a whole column's text it
/// runs at a byte or two an instruction, where an Aho-Corasick automaton ignoring case has no
/// prefilter and takes several per byte. `None` when the words make no regex.
pub(super) fn any_of(words: &[impl AsRef<str>]) -> Option<regex::bytes::Regex> {
    let escaped: Vec<String> = words.iter().map(|w| regex::escape(w.as_ref())).collect();
    regex::bytes::RegexBuilder::new(&escaped.join("|")).case_insensitive(true).unicode(false).build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over a column's buffer, each text gets at least its own candidates (and only words that
    /// start in it).
    #[test]
    fn candidates_by_row_cover_each_text() {
        let words: [&[&str]; 3] = [&["bearer"], &["password", "pwd"], &["api", "secret"]];
        let n = Needles::new(&words.map(Some), "[REDACTED]").unwrap();
        let texts = ["nothing", "Bearer x", "", "pass", "word pwd", "clie", "nt_secret", "ſecret"];
        let buffer: String = texts.concat();
        let mut offsets = vec![0i32];
        texts.iter().for_each(|t| offsets.push(offsets.last().unwrap() + t.len() as i32));
        let got = n.candidates_by_row(buffer.as_bytes(), &offsets);
        for (r, t) in texts.iter().enumerate() {
            match (n.candidates(t), got[r]) {
                (Some(own), Some(all)) => assert_eq!(own & all, own, "{t}"),
                (own, all) => assert_eq!(own, all, "{t}"),
            }
        }
        // "pass" + "word pwd": the word across them marks "pass", where a search finds nothing.
        assert_eq!(got[3], Some(0b010));
        assert_eq!(got[4], Some(0b010));

        // A column without any word is passed over whole; any case of a word, or text that is not
        // ASCII, is not.
        let by_row = |texts: &[&str]| {
            let mut offsets = vec![0i32];
            texts.iter().for_each(|t| offsets.push(offsets.last().unwrap() + t.len() as i32));
            n.candidates_by_row(texts.concat().as_bytes(), &offsets)
        };
        assert_eq!(by_row(&["order-router", "", "tuning"]), [Some(0); 3]);
        assert_eq!(by_row(&["order-router", "x BeArEr y"]), [Some(0), Some(0b001)]);
        assert_eq!(by_row(&["order-router", "ſecret"]), [Some(0), None]);
        // A slice of a column: its offsets start past 0, and the words around it are not its own.
        assert_eq!(n.candidates_by_row(b"bearer x pwd bearer", &[7, 9, 12]), [Some(0), Some(0b010)]);
        assert_eq!(n.candidates_by_row(b"", &[]), []);
        // Where words start at one place, each counts: "pass" begins "password".
        let nested = Needles::new(&[Some(&["password"][..]), Some(&["PASS"][..])], "***").unwrap();
        assert_eq!(nested.candidates_by_row(b"x Password", &[0, 10]), [Some(0b11)]);
        assert_eq!(nested.candidates("x Password"), Some(0b11));
        let pem = Needles::new(&[Some(&["-----BEGIN "][..])], "[REDACTED]").unwrap();
        assert_eq!(pem.candidates_by_row(b"a-----begin b", &[0, 13]), [Some(1)]);
    }

    proptest::proptest! {
        /// With the built-in patterns' words, in any case, cut across texts, beside text that is
        /// not ASCII, and in a slice of a column: each text gets at least its own candidates.
        #[test]
        fn a_column_pass_misses_no_word_of_a_text(
            // A piece: one of the 12 built-in words below 12, one of the 14 fillers from there.
            texts in proptest::collection::vec(proptest::collection::vec((0usize..26, proptest::bool::ANY), 0..6), 0..30),
            around in (0usize..26, 0usize..26),
        ) {
            let words: Vec<Option<&[&str]>> = super::super::BUILT_IN.iter().map(|(_, _, w, _)| Some(*w)).collect();
            let n = Needles::new(&words, "[REDACTED]").unwrap();
            let all: Vec<&str> = super::super::BUILT_IN.iter().flat_map(|(_, _, w, _)| w.iter().copied()).collect();
            // Words that overlap ("asia" and "aiza" in "asiaiza") and halves of words.
            let fillers = ["x", " ", "=", "ſ", "é", "asiaiza", "akiasia", "pass", "word", "bear", "er", "-----", "BEGIN ", "ey"];
            assert_eq!((all.len(), fillers.len()), (12, 14), "the strategies' range is 26 pieces");
            let piece = |(i, upper): (usize, bool)| {
                let p = if i < all.len() { all[i] } else { fillers[(i - all.len()) % fillers.len()] };
                if upper { p.to_ascii_uppercase() } else { p.to_string() }
            };
            let texts: Vec<String> = texts.into_iter().map(|t| t.into_iter().map(piece).collect()).collect();
            let (before, after) = (piece((around.0, false)), piece((around.1, true)));
            let buffer = format!("{before}{}{after}", texts.concat());
            let mut offsets = vec![before.len() as i32];
            texts.iter().for_each(|t| offsets.push(offsets.last().unwrap() + t.len() as i32));
            let got = n.candidates_by_row(buffer.as_bytes(), &offsets);
            proptest::prop_assert_eq!(got.len(), texts.len());
            for (t, got) in texts.iter().zip(got) {
                match (n.candidates(t), got) {
                    (Some(own), Some(all)) => proptest::prop_assert_eq!(own & all, own, "{}", t),
                    (own, all) => proptest::prop_assert_eq!(own, all, "{}", t),
                }
            }
        }
    }

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
