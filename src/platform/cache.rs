//! The users read with the paged list, kept until their rows come up.
//!
//! Each record is kept as compact JSON text and parsed again when a row names it: a Control
//! Room user costs ~0.8 KB that way and ~5 KB as a parsed `serde_json` map, and parsing one
//! record is cheaper than cloning the map twice, which the first version did for every row.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use std::time::Instant;

use serde_json::{Map, Value};

use super::page::{parse, pick_listed, Users};
use super::{normalized_key, UserKey};
use crate::engine::{Outcome, Status};
use crate::rules;

/// A listed user's record, and when its page was read.
pub type Listed = (Map<String, Value>, Instant);

/// A page of the user list made ready for the cache where it was read: each user's text, with
/// the keys it is found by, so that pages read at once are not gone through one after the
/// other once the last has come.
pub struct Page {
    /// The page's text, which the records are parts of.
    text: Arc<String>,
    /// Each record's place in the text, with the keys it answers to.
    records: Vec<(Range<usize>, Vec<Key>)>,
    read_at: Instant,
}

impl Page {
    /// `keys`: the fields a user is found by, each with the record member that holds it.
    pub fn new(users: Users, keys: &[(&'static str, &'static str)]) -> Self {
        let read_at = Instant::now();
        let members: Vec<&str> = keys.iter().map(|(_, member)| *member).collect();
        let (text, places) = users.into_parts();
        let records = places
            .into_iter()
            .map(|place| {
                let found = pick_listed(&text[place.clone()], &members)
                    .into_iter()
                    .zip(keys)
                    .filter_map(|(value, (field, member))| {
                        let normalized = match value.as_ref()? {
                            Value::String(s) => normalized_key(field, s),
                            other => normalized_key(field, &key_text(other)?),
                        };
                        Some(Key { normalized, member })
                    })
                    .collect();
                (place, found)
            })
            .collect();
        Page {
            text,
            records,
            read_at,
        }
    }
}

/// A key a record answers to. How the server spells it is read again from the record in the
/// rare case it is needed (two records answering to one key).
struct Key {
    /// As [`UserKey::normalized`] spells it.
    normalized: String,
    /// The record's member that holds it.
    member: &'static str,
}

/// A key as text: ids come as strings or as whole numbers.
pub fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => n.as_i64().map(|i| i.to_string()),
        _ => None,
    }
}

#[derive(Default)]
pub struct UserCache {
    /// The text of every page read, which the records are parts of.
    pages: Vec<Arc<String>>,
    /// Each record: its page and its place in it.
    records: Vec<(u32, Range<usize>)>,
    /// When each record's page was read: a copy too old is read again before it is written.
    read_at: Vec<Instant>,
    /// `UserKey::normalized()` of every key a record can be found by → its index. Hashed
    /// with Fx: tens of thousands of keys go in while the first row waits for the list.
    index: FxHashMap<String, u32>,
    /// Keys that more than one record answers to (spellings differing only in case): each
    /// with every spelling, so that a row naming one fails rather than picks.
    twins: HashMap<String, Vec<String>>,
    /// Records that repeat an earlier one word for word: one user on two pages, as when users
    /// come or go while the pages are read.
    listed_twice: usize,
}

impl UserCache {
    /// Room for about `users` users found by `keys` keys each.
    pub fn with_capacity(users: usize, keys: usize) -> Self {
        UserCache {
            pages: Vec::new(),
            records: Vec::with_capacity(users),
            read_at: Vec::with_capacity(users),
            index: FxHashMap::with_capacity_and_hasher(users * keys, Default::default()),
            twins: HashMap::new(),
            listed_twice: 0,
        }
    }

    /// Keeps the records of a page made ready with [`Page::new`], after those kept before.
    pub fn add(&mut self, page: Page) {
        let number = self.pages.len() as u32;
        self.pages.push(page.text);
        for (place, keys) in page.records {
            let at = self.records.len() as u32;
            self.records.push((number, place));
            self.read_at.push(page.read_at);
            let mut repeated = false;
            for key in keys {
                if let Some(&other) = self.index.get(&key.normalized) {
                    if other != at {
                        let first = (!self.twins.contains_key(&key.normalized))
                            .then(|| spelling(self.text(other), key.member));
                        let this = spelling(self.text(at), key.member);
                        // The same record again, not another account answering to the key.
                        repeated |= self.text(other) == self.text(at);
                        let spelled = self.twins.entry(key.normalized).or_default();
                        spelled.extend(first);
                        spelled.push(this);
                    }
                    continue;
                }
                self.index.insert(key.normalized, at);
            }
            self.listed_twice += usize::from(repeated);
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
        Ok(parse(self.text(at)).map(|m| (m, self.read_at[at as usize])))
    }

    /// The text of the record at `at`.
    fn text(&self, at: u32) -> &str {
        let (page, place) = &self.records[at as usize];
        &self.pages[*page as usize][place.clone()]
    }

    /// How many records repeat one listed before them, word for word.
    pub fn listed_twice(&self) -> usize {
        self.listed_twice
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Every listed user, freshly parsed: the server's side of a roster comparison.
    pub fn users(&self) -> impl Iterator<Item = Map<String, Value>> + '_ {
        (0..self.records.len() as u32).filter_map(|at| parse(self.text(at)))
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// A record's key in `member` as the server spells it.
fn spelling(record: &str, member: &str) -> String {
    pick_listed(record, &[member])
        .pop()
        .flatten()
        .and_then(|v| key_text(&v))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_listed_key_is_spelled_as_a_rows_key_is() {
        for value in [
            "Ada@X.org",
            "  ada@x.org ",
            "ÉMILE@Exemple.FR",
            "İstanbul",
            "",
            "42",
        ] {
            let row = UserKey {
                field: "email",
                value: value.into(),
            };
            assert_eq!(
                normalized_key("email", value),
                row.normalized(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn finds_a_record_by_any_of_its_keys_case_insensitively() {
        let mut cache = UserCache::default();
        let users = [
            json!({"id": 7, "username": "Ada.L", "roles": [{"id": 2}]}),
            json!({"id": 8, "username": "grace"}),
        ];
        let texts = Users::from_texts(users.iter().map(|u| u.to_string()));
        cache.add(Page::new(texts, &[("id", "id"), ("username", "username")]));
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

    #[test]
    fn a_record_on_two_pages_is_listed_twice_and_a_case_twin_or_a_namesake_is_not() {
        let keys = [("id", "id"), ("username", "username")];
        let page = |users: &[serde_json::Value]| {
            Page::new(
                Users::from_texts(users.iter().map(|u| u.to_string())),
                &keys,
            )
        };
        let ada = json!({"id": 7, "username": "ada"});
        let mut cache = UserCache::default();
        cache.add(page(&[ada.clone(), json!({"id": 8, "username": "bob"})]));
        // Another account whose name differs only in case, and a deleted namesake.
        cache.add(page(&[
            json!({"id": 9, "username": "ADA"}),
            json!({"id": 10, "username": "bob", "deleted": true}),
        ]));
        assert_eq!(cache.listed_twice(), 0);
        // Ada again, word for word (the list shifted between two pages): once, whatever the
        // number of keys she repeats.
        cache.add(page(&[ada]));
        assert_eq!(cache.listed_twice(), 1);
    }
}
