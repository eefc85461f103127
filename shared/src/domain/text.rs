//! The rule every id's text follows, whatever else its type asks ("ids are what they look like"):
//! no character a reader cannot see or that changes how the rest reads, and one encoding per look.

use unicode_normalization::is_nfc;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Why a text cannot be an id. Its Display completes a sentence whose subject is the id
/// ("identity contains ..."), and names the character by its code point only: echoing an
/// invisible or bidirectional character into a message would hide it again, or reorder the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdTextProblem {
    /// General category Cc.
    #[error("contains a control character (U+{:04X})", u32::from(*.0))]
    Control(char),
    /// Cf: zero-width spaces and joiners, bidirectional controls, soft hyphens, tags, BOMs...
    #[error("contains an invisible formatting character (U+{:04X})", u32::from(*.0))]
    Format(char),
    /// Zl (U+2028) and Zp (U+2029).
    #[error("contains a line or paragraph separator (U+{:04X})", u32::from(*.0))]
    Separator(char),
    /// Co: characters whose meaning only some private agreement gives.
    #[error("contains a private-use character (U+{:04X})", u32::from(*.0))]
    PrivateUse(char),
    /// Two texts that look the same must be the same id: `e` + U+0301 is refused, U+00E9 taken.
    #[error("is not in Unicode NFC (normalize it to NFC before sending it)")]
    NotNfc,
}

/// The first reason `text` cannot be an id, or `None` when it can. Categories are those of the
/// Unicode version `unicode-properties` carries (18.0 at 0.1.5); the length and shape an id type
/// asks for are that type's own checks.
pub fn id_text_problem(text: &str) -> Option<IdTextProblem> {
    text.chars()
        .find_map(|c| match c.general_category() {
            GeneralCategory::Control => Some(IdTextProblem::Control(c)),
            GeneralCategory::Format => Some(IdTextProblem::Format(c)),
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => Some(IdTextProblem::Separator(c)),
            GeneralCategory::PrivateUse => Some(IdTextProblem::PrivateUse(c)),
            _ => None,
        })
        .or_else(|| (!is_nfc(text)).then_some(IdTextProblem::NotNfc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_of_any_script_is_fine() {
        for ok in [
            "alice",
            "u-123",
            "alice@example.com",
            "Zo\u{eb}",
            "\u{e9}",
            "日本",
            "Ελένη",
            "محمد",
            "🙂",
            "🙂\u{fe0f}",
            "👍🏽",
            "a b",
            "doc#G#U#x/../y",
        ] {
            assert_eq!(id_text_problem(ok), None, "{ok:?}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        for c in ['\u{0}', '\t', '\n', '\r', '\u{1f}', '\u{7f}', '\u{80}', '\u{85}', '\u{9f}'] {
            assert_eq!(id_text_problem(&format!("a{c}b")), Some(IdTextProblem::Control(c)), "{c:?}");
        }
    }

    #[test]
    fn invisible_formatting_characters_are_refused() {
        let format = [
            '\u{ad}',    // soft hyphen
            '\u{600}',   // Arabic number sign
            '\u{61c}',   // Arabic letter mark
            '\u{180e}',  // Mongolian vowel separator
            '\u{200b}',  // zero width space
            '\u{200c}',  // zero width non-joiner
            '\u{200d}',  // zero width joiner
            '\u{200e}',  // left-to-right mark
            '\u{200f}',  // right-to-left mark
            '\u{202a}',  // left-to-right embedding
            '\u{202e}',  // right-to-left override
            '\u{2060}',  // word joiner
            '\u{2064}',  // invisible plus
            '\u{2066}',  // left-to-right isolate
            '\u{2069}',  // pop directional isolate
            '\u{206f}',  // nominal digit shapes
            '\u{feff}',  // zero width no-break space, the BOM
            '\u{fff9}',  // interlinear annotation anchor
            '\u{fffb}',  // interlinear annotation terminator
            '\u{110bd}', // Kaithi number sign
            '\u{13430}', // Egyptian hieroglyph vertical joiner
            '\u{1bca0}', // shorthand format letter overlap
            '\u{1d173}', // musical symbol begin beam
            '\u{e0001}', // language tag
            '\u{e0020}', // tag space
            '\u{e0067}', // tag latin small letter g
            '\u{e007f}', // cancel tag
        ];
        for c in format {
            assert_eq!(id_text_problem(&format!("a{c}b")), Some(IdTextProblem::Format(c)), "U+{:04X}", u32::from(c));
            assert_eq!(id_text_problem(&format!("{c}x")), Some(IdTextProblem::Format(c)), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn separators_and_private_use_characters_are_refused() {
        assert_eq!(id_text_problem("a\u{2028}"), Some(IdTextProblem::Separator('\u{2028}')));
        assert_eq!(id_text_problem("a\u{2029}b"), Some(IdTextProblem::Separator('\u{2029}')));
        for c in ['\u{e000}', '\u{f8ff}', '\u{f0000}', '\u{ffffd}', '\u{100000}', '\u{10fffd}'] {
            assert_eq!(id_text_problem(&c.to_string()), Some(IdTextProblem::PrivateUse(c)), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn neighbours_of_refused_characters_are_fine() {
        // Visible characters and ordinary spaces next to the refused ranges.
        let neighbours = [
            '\u{ac}',    // not sign, before the soft hyphen
            '\u{ae}',    // registered sign, after it
            '\u{a0}',    // no-break space
            '\u{2002}',  // en space
            '\u{200a}',  // hair space, before the zero width space
            '\u{2010}',  // hyphen, after the right-to-left mark
            '\u{2027}',  // hyphenation point, before the line separator
            '\u{202f}',  // narrow no-break space, after the right-to-left override
            '\u{205f}',  // medium mathematical space, before the word joiner
            '\u{d7fb}',  // the last character before the surrogates and the private-use area
            '\u{fefc}',  // Arabic ligature, before the BOM
            '\u{fffc}',  // object replacement character, after the annotation characters
            '\u{fffd}',  // replacement character
            '\u{e0100}', // variation selector 17, after the tags
        ];
        for c in neighbours {
            assert_eq!(id_text_problem(&format!("a{c}b")), None, "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn text_not_in_nfc_is_refused() {
        assert_eq!(id_text_problem("e\u{301}"), Some(IdTextProblem::NotNfc));
        assert_eq!(id_text_problem("Zoe\u{308}"), Some(IdTextProblem::NotNfc));
        assert_eq!(id_text_problem("\u{212b}"), Some(IdTextProblem::NotNfc)); // ANGSTROM SIGN, NFC is U+00C5
        assert_eq!(id_text_problem("\u{1100}\u{1161}"), Some(IdTextProblem::NotNfc)); // Hangul jamo, NFC is U+AC00
        assert_eq!(id_text_problem("\u{c5}\u{ac00}"), None);
    }

    #[test]
    fn the_first_refused_character_is_named_by_its_code_point() {
        assert_eq!(
            id_text_problem("e\u{301}\u{200b}").map(|p| p.to_string()),
            Some("contains an invisible formatting character (U+200B)".to_owned())
        );
        assert_eq!(IdTextProblem::PrivateUse('\u{10fffd}').to_string(), "contains a private-use character (U+10FFFD)");
        assert_eq!(IdTextProblem::Control('\n').to_string(), "contains a control character (U+000A)");
        assert_eq!(IdTextProblem::Separator('\u{2028}').to_string(), "contains a line or paragraph separator (U+2028)");
        assert_eq!(IdTextProblem::NotNfc.to_string(), "is not in Unicode NFC (normalize it to NFC before sending it)");
    }
}
