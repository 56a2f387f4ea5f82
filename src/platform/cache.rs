//! The users read with the paged list, kept until their rows come up.
//!
//! Each record is kept as compact JSON text and parsed again when a row names it: a Control
//! Room user costs ~0.8 KB that way and ~5 KB as a parsed `serde_json` map, and parsing one
//! record is cheaper than cloning the map twice, which the first version did for every row.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Map, Value};

use super::UserKey;
use crate::engine::{Outcome, Status};
use crate::rules;

/// A listed user's record, and when its page was read.
pub type Listed = (Map<String, Value>, Instant);

#[derive(Default)]
pub struct UserCache {
    records: Vec<Box<str>>,
    /// When each record's page was read: a copy too old is read again before it is written.
    read_at: Vec<Instant>,
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
        let now = Instant::now();
        for record in &page {
            let at = self.records.len() as u32;
            self.records
                .push(serde_json::to_string(record).unwrap_or_default().into());
            self.read_at.push(now);
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

    /// The record a row's key names, freshly parsed (so the caller may change it), with when
    /// it was read; an error when more than one record answers to it.
    pub fn get(&self, key: &UserKey) -> Result<Option<Listed>, String> {
        let wanted = key.normalized();
        if let Some(spelled) = self.twins.get(&wanted) {
            return Err(twins_error(key.field, spelled));
        }
        let Some(&at) = self.index.get(&wanted) else {
            return Ok(None);
        };
        match serde_json::from_str(&self.records[at as usize]) {
            Ok(Value::Object(m)) => Ok(Some((m, self.read_at[at as usize]))),
            _ => Ok(None),
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Every listed user, freshly parsed: the server's side of a roster comparison.
    pub fn users(&self) -> impl Iterator<Item = Map<String, Value>> + '_ {
        self.records
            .iter()
            .filter_map(|r| match serde_json::from_str(r) {
                Ok(Value::Object(m)) => Some(m),
                _ => None,
            })
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

/// A loose search's pages read to their end can still be endless on a server that keeps
/// answering full pages; past this many, the look-up fails rather than run forever.
const MAX_SEARCH_PAGES: usize = 1000;

/// A user's record when there is one, the requests it took to find out, and the HTTP status
/// of the last of them (what a `not-found` row reports).
pub type Found = (Option<Map<String, Value>>, u32, u16);

/// One page of a vendor's loose search: its users, whether more pages follow, and the
/// requests it took.
pub type SearchPage = (Vec<Value>, bool, u32);

/// The user whose `field` is `value` (compared as keys are: trimmed, any case), found by
/// reading a vendor's loose search page by page (`page` numbered from 0) to its end. Only an
/// exact match is the row's user; the pages after the first match are read too, since a
/// second account spelled the same but for case may be on any of them, and two such accounts
/// make the row fail naming both rather than an arbitrary pick.
pub fn search_exact(
    field: &str,
    value: &str,
    mut page: impl FnMut(usize) -> Result<SearchPage, Outcome>,
) -> Result<Found, Outcome> {
    let wanted = rules::normalize_key(value);
    let mut found: Vec<Map<String, Value>> = Vec::new();
    let mut attempts = 0;
    for number in 0..MAX_SEARCH_PAGES {
        let (users, more, n) = page(number).map_err(|mut o| {
            o.attempts += attempts;
            o
        })?;
        attempts += n;
        let empty = users.is_empty();
        found.extend(users.into_iter().filter_map(|u| {
            match u {
                Value::Object(u)
                    if u.get(field)
                        .and_then(Value::as_str)
                        .is_some_and(|v| rules::normalize_key(v) == wanted) =>
                {
                    Some(u)
                }
                _ => None,
            }
        }));
        if !more || empty {
            if found.len() > 1 {
                let spelled: Vec<String> = found
                    .iter()
                    .map(|u| u[field].as_str().unwrap_or("").to_string())
                    .collect();
                return Err(
                    Outcome::with_error(Status::Failed, twins_error(field, &spelled))
                        .http(200, attempts),
                );
            }
            return Ok((found.pop(), attempts, 200));
        }
    }
    Err(Outcome::with_error(
        Status::Failed,
        format!("the server's search for this {field} did not end after {MAX_SEARCH_PAGES} pages"),
    )
    .http(200, attempts))
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
        assert_eq!(by_name.unwrap().unwrap().0["roles"], json!([{"id": 2}]));
        let by_id = cache.get(&UserKey {
            field: "id",
            value: "8".into(),
        });
        assert_eq!(by_id.unwrap().unwrap().0["username"], "grace");
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
