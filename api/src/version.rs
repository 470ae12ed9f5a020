//! The version number a bump needs, as Cargo reads semver.
//!
//! Cargo's rule (<https://doc.rust-lang.org/cargo/reference/semver.html>, and its caret
//! requirements): the left-most non-zero component is the "major" one.
//!
//! - `x.y.z` with `x ≥ 1`: a breaking change needs `(x+1).0.0`, an addition `x.(y+1).0`,
//!   anything else `x.y.(z+1)`.
//! - `0.y.z` with `y ≥ 1`: `y` is the major component. A breaking change needs
//!   `0.(y+1).0`; an addition only `0.y.(z+1)`, since `^0.y.z` already accepts it.
//! - `0.0.z`: every release is incompatible with the others (`^0.0.z` is `=0.0.z`), so
//!   any change needs `0.0.(z+1)`.
//!
//! A release always needs a newer version than the last one, so [`Bump::None`] asks for
//! the same as [`Bump::Patch`]. Pre-release and build metadata are dropped from the
//! version a bump needs.

use semver::{BuildMetadata, Prerelease, Version};

use crate::diff::Bump;

/// The smallest version after `old` that the changes `needed` allow.
pub fn required_version(old: &Version, needed: Bump) -> Version {
    let (x, y, z) = (old.major, old.minor, old.patch);
    let (x, y, z) = match (x, y, needed) {
        (0, 0, _) => (0, 0, z + 1),
        (0, _, Bump::Major) => (0, y + 1, 0),
        (0, _, _) => (0, y, z + 1),
        (_, _, Bump::Major) => (x + 1, 0, 0),
        (_, _, Bump::Minor) => (x, y + 1, 0),
        (_, _, Bump::Patch | Bump::None) => (x, y, z + 1),
    };
    Version {
        major: x,
        minor: y,
        patch: z,
        pre: Prerelease::EMPTY,
        build: BuildMetadata::EMPTY,
    }
}

/// Whether `new` is a large enough step from `old` for the changes `needed`: newer than
/// `old`, and at least [`required_version`] (a pre-release of the required version, such
/// as `0.3.0-alpha.1` after `0.2.0`, counts: Cargo does not take it for a compatible
/// update of `0.2.0`).
pub fn is_enough(old: &Version, new: &Version, needed: Bump) -> bool {
    if new <= old {
        return false;
    }
    let required = required_version(old, needed);
    let base = Version::new(new.major, new.minor, new.patch);
    base >= required
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn required_versions_follow_cargo() {
        let cases = [
            ("0.2.0", Bump::Major, "0.3.0"),
            ("0.2.0", Bump::Minor, "0.2.1"),
            ("0.2.0", Bump::Patch, "0.2.1"),
            ("0.2.0", Bump::None, "0.2.1"),
            ("0.2.7", Bump::Major, "0.3.0"),
            ("0.0.3", Bump::Major, "0.0.4"),
            ("0.0.3", Bump::Minor, "0.0.4"),
            ("1.2.3", Bump::Major, "2.0.0"),
            ("1.2.3", Bump::Minor, "1.3.0"),
            ("1.2.3", Bump::Patch, "1.2.4"),
            ("1.2.3-rc.1", Bump::Minor, "1.3.0"),
        ];
        for (old, bump, want) in cases {
            assert_eq!(required_version(&v(old), bump), v(want), "{old} + {bump}");
        }
    }

    #[test]
    fn enough_means_at_least_the_required_version() {
        assert!(is_enough(&v("0.2.0"), &v("0.3.0"), Bump::Major));
        assert!(is_enough(&v("0.2.0"), &v("1.0.0"), Bump::Major));
        assert!(is_enough(&v("0.2.0"), &v("0.3.0-alpha.1"), Bump::Major));
        assert!(!is_enough(&v("0.2.0"), &v("0.2.5"), Bump::Major));
        assert!(is_enough(&v("0.2.0"), &v("0.2.1"), Bump::Minor));
        assert!(!is_enough(&v("1.2.3"), &v("1.2.4"), Bump::Minor));
        assert!(is_enough(&v("1.2.3"), &v("1.3.0"), Bump::Minor));
        assert!(!is_enough(&v("1.2.3"), &v("1.2.3"), Bump::None));
        assert!(!is_enough(&v("1.2.3"), &v("1.2.2"), Bump::None));
        assert!(is_enough(&v("1.2.3"), &v("1.2.4"), Bump::None));
    }
}
