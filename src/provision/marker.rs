//! How `otp-harness users` knows a user is one it created: the custom attribute `custom:otp_harness`
//! when the pool's schema declares it, otherwise the tag `otp-harness` in the address's local part
//! (e.g. `loadtest+otp-harness-{n}@mail.example.test`). `users delete` refuses any user without it.

use std::collections::HashMap;

/// The custom attribute that marks a user `users create` made (declare it in the pool's schema as a
/// String attribute named `otp_harness`).
pub const MARKER_ATTRIBUTE: &str = "custom:otp_harness";
/// The marker attribute's value.
pub const MARKER_VALUE: &str = "created-by-otp-harness";
/// Without the attribute, every address the tool creates must carry this in its local part.
pub const ADDRESS_TAG: &str = "otp-harness";

/// Which marker a pool allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// The pool declares `custom:otp_harness`: created users carry it.
    Attribute,
    /// No such attribute: only tagged addresses are created, and deleted.
    AddressTag,
}

impl Marker {
    /// The marker a pool with these schema attribute names allows.
    pub fn for_schema<'a>(attribute_names: impl IntoIterator<Item = &'a str>) -> Self {
        if attribute_names.into_iter().any(|name| name == MARKER_ATTRIBUTE) {
            Marker::Attribute
        } else {
            Marker::AddressTag
        }
    }

    /// As the tool's output says it.
    pub fn describe(self) -> String {
        match self {
            Marker::Attribute => format!("attribute {MARKER_ATTRIBUTE} = {MARKER_VALUE}"),
            Marker::AddressTag => format!("address tag \"{ADDRESS_TAG}\" (the pool has no {MARKER_ATTRIBUTE})"),
        }
    }

    /// True if a user with this address and these attributes carries the marker.
    pub fn is_marked(self, address: &str, attributes: &HashMap<String, String>) -> bool {
        match self {
            Marker::Attribute => attributes.get(MARKER_ATTRIBUTE).is_some_and(|v| v == MARKER_VALUE),
            Marker::AddressTag => has_address_tag(address),
        }
    }
}

/// True if the address's local part carries the tag (case-insensitive).
pub fn has_address_tag(address: &str) -> bool {
    let local = address.rsplit_once('@').map_or(address, |(local, _)| local);
    local.to_ascii_lowercase().contains(ADDRESS_TAG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attribute_marker_needs_the_attribute_with_its_value() {
        let marker = Marker::for_schema(["sub", "email", MARKER_ATTRIBUTE]);
        assert_eq!(marker, Marker::Attribute);
        let mut attributes = HashMap::new();
        assert!(!marker.is_marked("a+otp-harness-1@x.test", &attributes), "a tag does not replace the attribute");
        attributes.insert(MARKER_ATTRIBUTE.to_string(), "someone-else".to_string());
        assert!(!marker.is_marked("a@x.test", &attributes));
        attributes.insert(MARKER_ATTRIBUTE.to_string(), MARKER_VALUE.to_string());
        assert!(marker.is_marked("a@x.test", &attributes));
    }

    #[test]
    fn the_address_tag_is_looked_for_in_the_local_part_only() {
        let marker = Marker::for_schema(["sub", "email"]);
        assert_eq!(marker, Marker::AddressTag);
        assert!(marker.is_marked("LoadTest+OTP-Harness-7@mail.test", &HashMap::new()));
        assert!(!marker.is_marked("loadtest+7@otp-harness.test", &HashMap::new()));
        assert!(!marker.is_marked("loadtest+7@mail.test", &HashMap::new()));
    }
}
