//! Property tests of the INI parser and interpolation: no input makes them panic, and any file
//! written from a model of sections and keys parses back to that model.

mod common;

use deploy::ini::{interpolate, parse};
use deploy::load::Loader;
use proptest::prelude::*;
use std::path::Path;

/// A section: its name and its keys with the lines of their values.
type Model = Vec<(String, Vec<(String, Vec<String>)>)>;

fn key() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_. -]{0,8}[A-Za-z0-9_]"
}

/// A value line: no line breaks; a continuation line must not look like a comment.
fn line() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.%()=:;#/ \\[\\]-]{0,12}"
}

fn model() -> impl Strategy<Value = Model> {
    let keys = prop::collection::vec((key(), prop::collection::vec(line(), 1..4)), 0..5);
    prop::collection::vec(("[A-Za-z][A-Za-z0-9:_ -]{0,10}", keys), 0..5).prop_map(|sections| {
        // Names and keys must be unique, as the parser is strict.
        let mut seen = std::collections::HashSet::new();
        sections
            .into_iter()
            .filter(|(name, _)| name != "DEFAULT" && seen.insert(name.clone()))
            .map(|(name, keys)| {
                let mut seen = std::collections::HashSet::new();
                let keys = keys
                    .into_iter()
                    .filter(|(k, _)| seen.insert(k.clone()))
                    .collect();
                (name, keys)
            })
            .collect()
    })
}

/// Writes a model the way people do: `key = first line`, continuations indented.
fn write(model: &Model, indent: &str, newline: &str) -> String {
    let mut out = String::new();
    for (name, keys) in model {
        out.push_str(&format!("[{name}]{newline}"));
        for (key, lines) in keys {
            out.push_str(&format!("{key} = {}{newline}", lines[0]));
            for line in &lines[1..] {
                if line.trim().is_empty() {
                    out.push_str(newline);
                } else {
                    out.push_str(&format!("{indent}{line}{newline}"));
                }
            }
        }
    }
    out
}

/// What Python's configparser makes of a written value.
fn expected(lines: &[String]) -> String {
    let mut kept: Vec<&str> = vec![lines[0].trim()];
    for line in &lines[1..] {
        let stripped = line.trim();
        if stripped.starts_with('#') || stripped.starts_with(';') {
            continue;
        }
        kept.push(stripped);
    }
    kept.join("\n").trim_end().to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_never_panics(text in "(?s).{0,400}") {
        let _ = parse(Path::new("p.ini"), &text);
    }

    #[test]
    fn parsing_ini_like_text_never_panics(text in "([\\[\\]=: \t#;%()a-z\n\r]|DEFAULT|\u{feff}){0,200}") {
        if let Ok(file) = parse(Path::new("p.ini"), &text) {
            let lines = text.split(['\n', '\r']).count() as u32;
            for section in file.sections.values() {
                prop_assert!(section.line >= 1 && section.line <= lines);
                for entry in section.entries.values() {
                    prop_assert!(entry.at.line >= section.line && entry.at.line <= lines);
                }
            }
        }
    }

    #[test]
    fn written_models_parse_back(model in model(), tabs in any::<bool>(), crlf in any::<bool>()) {
        let text = write(&model, if tabs { "\t" } else { "    " }, if crlf { "\r\n" } else { "\n" });
        let file = parse(Path::new("p.ini"), &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(file.sections.len(), model.len());
        for (name, keys) in &model {
            let section = &file.sections[name.as_str()];
            prop_assert_eq!(section.entries.len(), keys.len(), "{}", text);
            for (key, lines) in keys {
                let want = expected(lines);
                prop_assert_eq!(file.raw(name, key), Some(want.as_str()), "{}", text);
            }
        }
    }

    #[test]
    fn interpolation_never_panics(raw in "[%()sa-z]{0,30}", value in "[%()sa-z]{0,10}") {
        let _ = interpolate("k", "s", &raw, &|name| (name.len() % 2 == 0).then_some(value.as_str()));
    }

    #[test]
    fn loading_any_parsed_file_never_panics(text in "(\\[(app|filter|pipeline|composite|filter-app|server)(:(main|a|b))?\\]\n|(use|next|pipeline|filter-with|set a|get b|a|b|app\\.1) = (a|b|main|egg:ExpApp#(app|comp|filt|fa)|config:t.ini|%\\(a\\)s|call:x:y)\n){0,14}") {
        let dir = common::fixture(&[("t.ini", &text)]);
        let registry = common::test_registry();
        let mut loader = Loader::new(&registry);
        let _ = loader.load_app("config:t.ini", None, dir.path(), None);
        let _ = loader.load_server("config:t.ini", None, dir.path(), None);
        let _ = loader.load_filter("config:t.ini#a", None, dir.path(), None);
    }
}
