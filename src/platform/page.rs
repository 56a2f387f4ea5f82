//! A page of a user list read without building a JSON tree of every user on it: the envelope
//! (page counts, totals) is parsed, the users are kept as the text they came in, and a user
//! is read only as far as the keys it is found by until a row asks for it. Read as trees
//! (parsed, written back as text, dropped), the 20,000 users of a Control Room cost a third
//! of a second of CPU before the first row could be sent; as text they are a scan.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::engine::{Auth, Http, Outcome, Request};

/// The users of a list page: the answer's text, kept whole and shared, and where each user
/// object lies in it (copying twenty thousand users out one by one cost as much as reading
/// them).
#[derive(Clone, Default)]
pub struct Users {
    text: Arc<String>,
    at: Vec<Range<usize>>,
}

impl Users {
    /// Users from their texts, each a JSON object.
    pub fn from_texts<S: AsRef<str>>(texts: impl IntoIterator<Item = S>) -> Users {
        let mut text = String::new();
        let mut at = Vec::new();
        for t in texts {
            let start = text.len();
            text.push_str(t.as_ref());
            at.push(start..text.len());
        }
        Users {
            text: Arc::new(text),
            at,
        }
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Each user's text, in page order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.at.iter().map(|r| &self.text[r.clone()])
    }

    /// The page's text and each user's place in it, for a cache to keep as they are.
    pub fn into_parts(self) -> (Arc<String>, Vec<Range<usize>>) {
        (self.text, self.at)
    }
}

/// Sends a list read and splits its JSON answer: every member but the user list, as a tree,
/// and the user objects of the array at `path` (member names, outermost first) as text. A
/// refusal, an answer that is not the API's JSON object (a web page, an empty body), or one
/// without that array becomes a `failed` outcome saying what was read: never an empty list.
pub fn read_page(
    http: &Http,
    req: &Request,
    auth: &dyn Auth,
    what: &str,
    path: &[&str],
) -> Result<(Value, Users, u32), Outcome> {
    let reply = super::send_read(http, req, auth, what)?;
    match split(&reply.body, path) {
        Ok(Split_ {
            envelope,
            users: Some(at),
        }) => {
            let users = Users {
                text: Arc::new(reply.body),
                at,
            };
            Ok((envelope, users, reply.attempts))
        }
        Ok(_) => Err(super::unknown_shape(what, reply.attempts)),
        Err(_) => Err(super::not_the_api_outcome(&reply, what)),
    }
}

/// A list page's JSON answer as [`read_page`] splits it, when it is a JSON object with the
/// user array at `path`.
pub fn split_page(body: &str, path: &[&str]) -> Option<(Value, Users)> {
    match split(body, path) {
        Ok(Split_ {
            envelope,
            users: Some(at),
        }) => Some((
            envelope,
            Users {
                text: Arc::new(body.to_string()),
                at,
            },
        )),
        _ => None,
    }
}

fn split(body: &str, path: &[&str]) -> Result<Split_, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(body);
    let base = body.as_ptr() as usize;
    Split { path, base }
        .deserialize(&mut de)
        .and_then(|split| de.end().map(|()| split))
}

/// What [`Split`] gives: the envelope, and where the users are when the array was where it
/// should be.
struct Split_ {
    envelope: Value,
    users: Option<Vec<Range<usize>>>,
}

/// Walks an object down `path` to the user array. `base`: the address of the whole answer's
/// text, which every part of it is read from, to tell where a user lies in it.
struct Split<'p> {
    path: &'p [&'p str],
    base: usize,
}

impl<'de> DeserializeSeed<'de> for Split<'_> {
    type Value = Split_;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Split_, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Split<'_> {
    type Value = Split_;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Split_, A::Error> {
        let mut envelope = Map::new();
        let mut users = None;
        let (wanted, deeper) = match self.path.split_first() {
            Some((first, rest)) => (Some(*first), rest),
            None => (None, &[][..]),
        };
        while let Some(key) = map.next_key::<String>()? {
            if Some(key.as_str()) != wanted {
                envelope.insert(key, map.next_value::<Value>()?);
            } else if deeper.is_empty() {
                users = map.next_value_seed(Objects { base: self.base })?;
            } else {
                // A member on the way that is not an object has no user list in it.
                let raw: &RawValue = map.next_value()?;
                let mut de = serde_json::Deserializer::from_str(raw.get());
                let inner = Split {
                    path: deeper,
                    base: self.base,
                };
                if let Ok(inner) = inner.deserialize(&mut de) {
                    users = inner.users;
                    envelope.insert(key, inner.envelope);
                }
            }
        }
        Ok(Split_ {
            envelope: Value::Object(envelope),
            users,
        })
    }
}

/// Where the objects of a JSON array lie, read in one pass; anything else in it is left
/// out, as no user. `None` when the value is not an array.
struct Objects {
    base: usize,
}

type Places = Option<Vec<Range<usize>>>;

impl<'de> DeserializeSeed<'de> for Objects {
    type Value = Places;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Places, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Objects {
    type Value = Places;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Places, A::Error> {
        let mut at = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<&RawValue>()? {
            let text = item.get();
            if text.starts_with('{') {
                // Borrowed from the answer's text: its place is its distance from the start.
                let start = text.as_ptr() as usize - self.base;
                at.push(start..start + text.len());
            }
        }
        Ok(Some(at))
    }

    // Anything but an array is no list.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Places, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Places, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Places, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Places, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Places, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Places, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Places, E> {
        Ok(None)
    }
}

/// The values of members `keys` of a user object's text, in the order asked (`None` for one
/// it does not have), skipping over every other member without building it.
pub fn pick(text: &str, keys: &[&str]) -> Vec<Option<Value>> {
    let mut de = serde_json::Deserializer::from_str(text);
    (Pick { keys })
        .deserialize(&mut de)
        .and_then(|found| de.end().map(|()| found))
        .unwrap_or_else(|_| vec![None; keys.len()])
}

struct Pick<'k> {
    keys: &'k [&'k str],
}

impl<'de> DeserializeSeed<'de> for Pick<'_> {
    type Value = Vec<Option<Value>>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = Vec<Option<Value>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = vec![None; self.keys.len()];
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.keys.iter().position(|k| *k == key) {
                Some(i) => found[i] = Some(map.next_value::<Value>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// The values of members `keys` of a listed user's text, as [`pick`] gives them, for a text
/// [`read_page`] has already read whole as JSON: a scan that skips over the other members'
/// values without parsing them, since a page of users is picked through while the first row
/// waits. Anything the scan does not expect is left to [`pick`].
pub fn pick_listed(text: &str, keys: &[&str]) -> Vec<Option<Value>> {
    scan_members(text.as_bytes(), keys).unwrap_or_else(|| pick(text, keys))
}

fn scan_members(b: &[u8], keys: &[&str]) -> Option<Vec<Option<Value>>> {
    let mut found = vec![None; keys.len()];
    let mut i = skip_space(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_space(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (skip_space(b, i + 1) == b.len()).then_some(found);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i)?;
        let key = &b[i + 1..key_end - 1];
        if key.contains(&b'\\') {
            return None;
        }
        i = skip_space(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let value = skip_space(b, i + 1);
        let value_end = value_end(b, value)?;
        // The last of two members of one name counts, as it does when parsed.
        if let Some(k) = keys.iter().position(|k| k.as_bytes() == key) {
            found[k] = Some(serde_json::from_slice(&b[value..value_end]).ok()?);
        }
        i = skip_space(b, value_end);
        match b.get(i) {
            Some(b',') => i = skip_space(b, i + 1),
            Some(b'}') => return (skip_space(b, i + 1) == b.len()).then_some(found),
            _ => return None,
        }
    }
}

fn skip_space(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// Just past the string that opens at `start`.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[i] == b'\\' {
            i += 2;
        } else {
            return Some(i + 1);
        }
    }
}

/// Just past the value that starts at `start`.
fn value_end(b: &[u8], start: usize) -> Option<usize> {
    match *b.get(start)? {
        b'"' => string_end(b, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = string_end(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let len = b[start..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))?;
            (len > 0).then_some(start + len)
        }
    }
}

/// Users' texts as JSON objects: a search's few, which are compared as they are.
pub fn values(users: Users) -> Vec<Value> {
    users
        .iter()
        .filter_map(|u| parse(u).map(Value::Object))
        .collect()
}

/// A user's text as a JSON object (what a row merges into), when it is one.
pub fn parse(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_page_splits_into_its_envelope_and_its_users_as_written() {
        let body = r#"{"message":"Success","data":{"page":2,"totalPages":7,"users":[{"user_email":"a@x.com","user_roles":[{"role_id":8}]}, 5, {"user_email":"b@x.com"}]}}"#;
        let (envelope, users) = split_page(body, &["data", "users"]).unwrap();
        assert_eq!(envelope["data"]["totalPages"], 7);
        assert_eq!(envelope["message"], "Success");
        assert!(envelope["data"].get("users").is_none());
        // What is not an object is no user.
        assert_eq!(
            users.iter().collect::<Vec<_>>(),
            [
                r#"{"user_email":"a@x.com","user_roles":[{"role_id":8}]}"#,
                r#"{"user_email":"b@x.com"}"#
            ]
        );
        // No array where the users should be: no list, not an empty one.
        assert!(split_page(r#"{"data":{"users":null}}"#, &["data", "users"]).is_none());
        assert!(split_page(r#"{"data":[1]}"#, &["data", "users"]).is_none());
        assert!(split_page(r#"{"list":{}}"#, &["list"]).is_none());
        assert!(split_page(r#"[]"#, &["list"]).is_none());
    }

    #[test]
    fn picking_keys_reads_only_those_members() {
        let text = r#"{"id":7,"username":"Ada","roles":[{"id":1,"name":"x"}],"email":null}"#;
        assert_eq!(
            pick(text, &["username", "id", "missing", "email"]),
            [Some(json!("Ada")), Some(json!(7)), None, Some(Value::Null)]
        );
        assert_eq!(pick("not json", &["id"]), [None]);
        assert_eq!(pick(r#"{"id":7} and more"#, &["id"]), [None]);
    }

    #[test]
    fn a_listed_user_is_picked_as_it_is_parsed() {
        let keys = ["username", "id", "missing", "email", "a\"b"];
        for text in [
            r#"{"id":7,"username":"Ada","roles":[{"id":1,"name":"x}]"}],"email":null}"#,
            r#" { "id" : -7.5e3 , "username" : "A\"d\\a\u00e9" , "nested" : {"username":"no"} } "#,
            r#"{"username":"first","username":"last","email":"x@y"}"#,
            r#"{"a\"b":1,"id":"0042"}"#,
            r#"{}"#,
            r#"{"id":true,"email":[1,[2,{"3":"]"}]],"username":false}"#,
            "{\n\t\"id\": 3\r\n}",
        ] {
            assert_eq!(pick_listed(text, &keys), pick(text, &keys), "{text}");
            // The scan, not the parse it falls back to, read every one without an escaped name.
            assert_eq!(
                scan_members(text.as_bytes(), &keys).is_some(),
                !text.contains("a\\\"")
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn a_listed_user_of_any_shape_is_picked_as_it_is_parsed(
            user in proptest::collection::btree_map("[a-c\"\\\\é]{0,3}", json_value(), 0..8),
            pretty: bool,
        ) {
            let user = Value::Object(user.into_iter().collect());
            let text = if pretty {
                serde_json::to_string_pretty(&user).unwrap()
            } else {
                user.to_string()
            };
            let keys = ["a", "b", "ab", "c\"", "é", ""];
            proptest::prop_assert_eq!(pick_listed(&text, &keys), pick(&text, &keys));
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            "[ -~é\\n]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-c\"]{0,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
