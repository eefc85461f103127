//! The asset reference a chat message may carry in its attributes:
//! `{"assetRef": "a-1", "assetType": "document", "permissions": "inherited"}`. Other keys are the
//! SPA's and pass untouched.

use serde_json::Value;

use super::asset::{AssetId, AssetType};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetReference {
    pub asset: AssetId,
    pub kind: AssetType,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("assetRef must be a non-empty id of at most 256 bytes without control characters")]
    AssetRef,
    #[error("assetType must be document, image or video")]
    AssetType,
    #[error("permissions, when present, must be `inherited`")]
    Permissions,
}

const KEYS: [&str; 3] = ["assetRef", "assetType", "permissions"];

impl AssetReference {
    /// The reference in a message's attributes: `Ok(None)` when the attributes carry none (absent,
    /// not a JSON object, or an object without any of the reference's keys), an error when they
    /// carry one that is malformed.
    pub fn from_attributes(attributes: Option<&str>) -> Result<Option<Self>, ReferenceError> {
        let Some(Ok(Value::Object(map))) = attributes.map(serde_json::from_str::<Value>) else { return Ok(None) };
        if !KEYS.iter().any(|k| map.contains_key(*k)) {
            return Ok(None);
        }
        let asset = map
            .get("assetRef")
            .and_then(Value::as_str)
            .and_then(|id| AssetId::try_from(id).ok())
            .ok_or(ReferenceError::AssetRef)?;
        let kind =
            map.get("assetType").and_then(Value::as_str).and_then(AssetType::parse).ok_or(ReferenceError::AssetType)?;
        match map.get("permissions") {
            None => {}
            Some(Value::String(p)) if p == "inherited" => {}
            Some(_) => return Err(ReferenceError::Permissions),
        }
        Ok(Some(Self { asset, kind }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<AssetReference>, ReferenceError> {
        AssetReference::from_attributes(Some(s))
    }

    #[test]
    fn no_reference_passes() {
        for attrs in ["", "{}", r#"{"mood": "happy"}"#, "[1,2]", "\"assetRef\"", "not json", "null"] {
            assert_eq!(parse(attrs), Ok(None), "{attrs}");
        }
        assert_eq!(AssetReference::from_attributes(None), Ok(None));
    }

    #[test]
    fn a_well_formed_reference_is_typed() {
        let want = Ok(Some(AssetReference { asset: AssetId::try_from("a-1").expect("id"), kind: AssetType::Document }));
        assert_eq!(parse(r#"{"assetRef": "a-1", "assetType": "document", "permissions": "inherited"}"#), want);
        assert_eq!(parse(r#"{"assetRef": "a-1", "assetType": "document", "mood": 1}"#), want);
    }

    #[test]
    fn malformed_references_are_errors() {
        for (attrs, err) in [
            (r#"{"assetRef": "", "assetType": "document"}"#, ReferenceError::AssetRef),
            (r#"{"assetRef": 7, "assetType": "document"}"#, ReferenceError::AssetRef),
            (r#"{"assetType": "document"}"#, ReferenceError::AssetRef),
            (&format!(r#"{{"assetRef": "{}", "assetType": "document"}}"#, "x".repeat(257)), ReferenceError::AssetRef),
            (r#"{"assetRef": "a\u0000", "assetType": "document"}"#, ReferenceError::AssetRef),
            (r#"{"assetRef": "a-1"}"#, ReferenceError::AssetType),
            (r#"{"assetRef": "a-1", "assetType": "pdf"}"#, ReferenceError::AssetType),
            (r#"{"assetRef": "a-1", "assetType": "document", "permissions": "owner"}"#, ReferenceError::Permissions),
            (r#"{"assetRef": "a-1", "assetType": "document", "permissions": null}"#, ReferenceError::Permissions),
            (r#"{"permissions": "inherited"}"#, ReferenceError::AssetRef),
        ] {
            assert_eq!(parse(attrs), Err(err), "{attrs}");
        }
    }
}
