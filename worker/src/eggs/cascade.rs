//! `egg:Paste#cascade`: tries apps in turn until one answers with a status not in `catch`
//! (spec §3.3). This module holds what the loader needs now: which apps a cascade names.

use deploy::converters::asint;
use deploy::plan::Conf;

/// The apps a cascade section loads, in sorted key order; every key but `catch` must start
/// with `app`, and `catch` must be a list of status codes.
pub fn children(local: &Conf, _global: &Conf) -> Result<Vec<String>, String> {
    if let Some(catch) = local.get("catch") {
        for code in catch.split_whitespace() {
            asint(code).map_err(|e| format!("catch: {e}"))?;
        }
    }
    let mut apps: Vec<(&String, &String)> = Vec::new();
    for (key, value) in local {
        if key == "catch" {
            continue;
        }
        if !key.starts_with("app") {
            return Err(format!(
                "Bad configuration key '{key}' (='{value}'); all configuration keys must start with 'app'"
            ));
        }
        apps.push((key, value));
    }
    apps.sort();
    Ok(apps.into_iter().map(|(_, v)| v.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(pairs: &[(&str, &str)]) -> Conf {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn apps_in_key_order() {
        let local = conf(&[("app2", "b"), ("app1", "a"), ("catch", "404 403")]);
        assert_eq!(children(&local, &Conf::new()).unwrap(), ["a", "b"]);
    }

    #[test]
    fn other_keys_and_bad_codes_are_errors() {
        assert!(children(&conf(&[("x", "a")]), &Conf::new()).is_err());
        assert!(children(&conf(&[("catch", "40x")]), &Conf::new()).is_err());
    }
}
