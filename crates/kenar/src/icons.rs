//! Divar's button icon names (the OpenAPI enum `DivarIconsIconName`).

use std::{collections::HashSet, sync::LazyLock};

const ICONS_TXT: &str = include_str!("icons.txt");

static ICONS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    ICONS_TXT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// Whether Divar lists `name` as an icon, to check a button's [`crate::message::Button::icon`].
pub fn is_known(name: &str) -> bool {
    ICONS.contains(name)
}

/// Every icon name, in the order Divar lists them.
pub fn all() -> impl Iterator<Item = &'static str> {
    ICONS_TXT.lines().map(str::trim).filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn knows_the_documented_icons_only() {
        assert_eq!(super::all().count(), 822);
        assert!(super::is_known("REAL_ESTATE"));
        assert!(super::is_known("CAR_INSPECTED"));
        // The current docs' example uses this, but it is not in the enum.
        assert!(!super::is_known("REAL_STATE"));
    }
}
