//! The `serve` distribution: the production eggs that ship with `serve` (`egg:serve#NAME`).
//! Their keys are documented in `docs/eggs.md`.

pub mod accesslog;
pub mod auth;
pub mod debug;
pub mod files;
pub mod headers;
pub mod limits;
pub mod proxy;

use super::Eggs;

/// Registers every `serve#...` egg.
pub fn register(eggs: &mut Eggs) {
    accesslog::register(eggs);
    auth::register(eggs);
    debug::register(eggs);
    files::register(eggs);
    headers::register(eggs);
    limits::register(eggs);
    proxy::register(eggs);
}

/// A size in bytes: a number with an optional `k`, `m` or `g` suffix (powers of 1024).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, factor) = match text.char_indices().last()? {
        (i, 'k' | 'K') => (&text[..i], 1024),
        (i, 'm' | 'M') => (&text[..i], 1024 * 1024),
        (i, 'g' | 'G') => (&text[..i], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("100"), Some(100));
        assert_eq!(super::parse_size("10k"), Some(10 * 1024));
        assert_eq!(super::parse_size(" 2M "), Some(2 * 1024 * 1024));
        assert_eq!(super::parse_size("1g"), Some(1 << 30));
        assert_eq!(super::parse_size("x"), None);
        assert_eq!(super::parse_size(""), None);
    }
}
