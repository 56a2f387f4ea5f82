//! The users read with the paged list, kept until their rows come up.
//!
//! Each record is kept as compact JSON text and parsed again when a row names it: a Control
//! Room user costs ~0.8 KB that way and ~5 KB as a parsed `serde_json` map, and parsing one
//! record is cheaper than cloning the map twice, which the first version did for every row.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::UserKey;
use crate::rules;

#[derive(Default)]
pub struct UserCache {
    records: Vec<Box<str>>,
    /// `UserKey::normalized()` of every key a record can be found by → its index.
    index: HashMap<String, u32>,
    /// Keys that more than one record answers to (spellings differing only in case): each
    /// with every spelling, so that a row naming one fails rather than picks.
    twins: HashMap<String, Vec<String>>,
}

impl UserCache {
    /// Keeps every record of a list page (the objects [`take_objects`] gave), each findable
    /// by the `(key field, value)` pairs `keys` names for it: an id, an e-mail, a name.
    pub fn add_page(
        &mut self,
        page: Vec<Value>,
        keys: impl Fn(&Value) -> Vec<(&'static str, Option<String>)>,
    ) {
        for record in &page {
            let at = self.records.len() as u32;
            self.records
                .push(serde_json::to_string(record).unwrap_or_default().into());
            for (field, value) in keys(record) {
                if let Some(v) = value {
                    let key = normalized(field, &v);
                    if let Some(&other) = self.index.get(&key) {
                        if other != at {
                            let spelled = self.twins.entry(key).or_default();
                            if spelled.is_empty() {
                                spelled.push(spelling(&self.records[other as usize], field));
                            }
                            spelled.push(v);
                        }
                        continue;
                    }
                    self.index.insert(key, at);
                }
            }
        }
    }

    /// The record a row's key names, freshly parsed (so the caller may change it); an error
    /// when more than one record answers to it.
    pub fn get(&self, key: &UserKey) -> Result<Option<Map<String, Value>>, String> {
        let wanted = key.normalized();
        if let Some(spelled) = self.twins.get(&wanted) {
            return Err(twins_error(key.field, spelled));
        }
        let Some(&at) = self.index.get(&wanted) else {
            return Ok(None);
        };
        match serde_json::from_str(&self.records[at as usize]) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            _ => Ok(None),
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// A record's `field` as the server spells it.
fn spelling(record: &str, field: &str) -> String {
    serde_json::from_str::<Value>(record)
        .ok()
        .and_then(|r| match &r[field] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The error of a row whose key more than one server account answers to.
fn twins_error(field: &str, spelled: &[String]) -> String {
    let names: Vec<String> = spelled.iter().map(|s| format!("'{s}'")).collect();
    format!(
        "{} server accounts match this {field}, differing only in case ({}): nothing is sent \
         to either; make them distinct on the server",
        spelled.len(),
        names.join(" and ")
    )
}

/// As `UserKey::normalized` spells it.
fn normalized(field: &str, value: &str) -> String {
    format!("{field}\u{0}{}", rules::normalize_key(value))
}

/// The user among a search's results whose `field` is `value` (compared as keys are:
/// trimmed, any case). Vendor searches match loosely; only an exact match is the row's user.
/// Two accounts that match (spellings differing only in case) are an error naming both.
pub fn exact_match(
    users: Vec<Value>,
    field: &str,
    value: &str,
) -> Result<Option<Map<String, Value>>, String> {
    let wanted = rules::normalize_key(value);
    let mut found: Vec<Map<String, Value>> = users
        .into_iter()
        .filter_map(|u| match u {
            Value::Object(u)
                if u.get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|v| rules::normalize_key(v) == wanted) =>
            {
                Some(u)
            }
            _ => None,
        })
        .collect();
    if found.len() > 1 {
        let spelled: Vec<String> = found
            .iter()
            .map(|u| u[field].as_str().unwrap_or("").to_string())
            .collect();
        return Err(twins_error(field, &spelled));
    }
    Ok(found.pop())
}

/// Moves the objects out of a JSON array (a list page), or `None` when there is no array: an
/// answer whose shape is not understood is not an empty list.
pub fn take_list(v: &mut Value) -> Option<Vec<Value>> {
    match v.take() {
        Value::Array(items) => Some(items.into_iter().filter(Value::is_object).collect()),
        _ => None,
    }
}

/// Moves the objects out of a JSON array (a list page), leaving `Null` behind.
pub fn take_objects(v: &mut Value) -> Vec<Value> {
    match v.take() {
        Value::Array(items) => items.into_iter().filter(Value::is_object).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_a_record_by_any_of_its_keys_case_insensitively() {
        let mut cache = UserCache::default();
        cache.add_page(
            vec![
                json!({"id": 7, "username": "Ada.L", "roles": [{"id": 2}]}),
                json!({"id": 8, "username": "grace"}),
            ],
            |u| {
                vec![
                    ("id", u["id"].as_i64().map(|i| i.to_string())),
                    ("username", u["username"].as_str().map(str::to_string)),
                ]
            },
        );
        let by_name = cache.get(&UserKey {
            field: "username",
            value: " ada.l ".into(),
        });
        assert_eq!(by_name.unwrap().unwrap()["roles"], json!([{"id": 2}]));
        let by_id = cache.get(&UserKey {
            field: "id",
            value: "8".into(),
        });
        assert_eq!(by_id.unwrap().unwrap()["username"], "grace");
        // A value of one key field does not find a record under another.
        assert!(cache
            .get(&UserKey {
                field: "id",
                value: "grace".into()
            })
            .unwrap()
            .is_none());
        assert_eq!(cache.len(), 2);
    }
}
