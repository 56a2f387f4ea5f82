//! A page of a user list read without building a JSON tree of every user on it: the envelope
//! (page counts, totals) is parsed, the users are kept as the text they came in, and a user
//! is read only as far as the keys it is found by until a row asks for it. Read as trees
//! (parsed, written back as text, dropped), the 20,000 users of a Control Room cost a third
//! of a second of CPU before the first row could be sent; as text they are a scan.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::engine::{Auth, Http, Outcome, Request};

/// The users of a list page, each a JSON object as the server wrote it.
pub type Users = Vec<Box<str>>;

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
    let reply = http
        .send(req, auth)
        .map_err(|e| Outcome::from_call_error(e, 0))?;
    if !reply.is_success() {
        return Err(Outcome::with_error(
            crate::engine::Status::Failed,
            format!("{what}: {}", super::server_message(&reply)),
        )
        .http(reply.status, reply.attempts));
    }
    let mut de = serde_json::Deserializer::from_str(&reply.body);
    let split = Split { path }
        .deserialize(&mut de)
        .and_then(|split| de.end().map(|()| split));
    match split {
        Ok(Split_ {
            envelope,
            users: Some(users),
        }) => Ok((envelope, users, reply.attempts)),
        Ok(_) => Err(super::unknown_shape(what, reply.attempts)),
        Err(_) => Err(super::not_the_api_outcome(&reply, what)),
    }
}

/// What [`Split`] gives: the envelope, and the users when the array was where it should be.
struct Split_ {
    envelope: Value,
    users: Option<Users>,
}

/// Walks an object down `path` to the user array.
struct Split<'p> {
    path: &'p [&'p str],
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
                let list: &RawValue = map.next_value()?;
                users = objects(list);
            } else {
                // A member on the way that is not an object has no user list in it.
                let raw: &RawValue = map.next_value()?;
                let mut de = serde_json::Deserializer::from_str(raw.get());
                if let Ok(inner) = (Split { path: deeper }).deserialize(&mut de) {
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

/// The objects of a JSON array as text; anything else in it is left out, as no user. `None`
/// when it is not an array.
fn objects(list: &RawValue) -> Option<Users> {
    let items: Vec<&RawValue> = serde_json::from_str(list.get()).ok()?;
    Some(
        items
            .into_iter()
            .map(RawValue::get)
            .filter(|text| text.starts_with('{'))
            .map(Box::from)
            .collect(),
    )
}

/// The values of members `keys` of a user object's text, in the order asked (`None` for one
/// it does not have), skipping over every other member without building it.
pub fn pick(text: &str, keys: &[&str]) -> Vec<Option<Value>> {
    let mut de = serde_json::Deserializer::from_str(text);
    (Pick { keys })
        .deserialize(&mut de)
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

    fn split(body: &str, path: &[&str]) -> Option<(Value, Users)> {
        let mut de = serde_json::Deserializer::from_str(body);
        let s = Split { path }.deserialize(&mut de).ok()?;
        Some((s.envelope, s.users?))
    }

    #[test]
    fn a_page_splits_into_its_envelope_and_its_users_as_written() {
        let body = r#"{"message":"Success","data":{"page":2,"totalPages":7,"users":[{"user_email":"a@x.com","user_roles":[{"role_id":8}]}, 5, {"user_email":"b@x.com"}]}}"#;
        let (envelope, users) = split(body, &["data", "users"]).unwrap();
        assert_eq!(envelope["data"]["totalPages"], 7);
        assert_eq!(envelope["message"], "Success");
        assert!(envelope["data"].get("users").is_none());
        // What is not an object is no user.
        assert_eq!(
            users.iter().map(|u| &**u).collect::<Vec<_>>(),
            [
                r#"{"user_email":"a@x.com","user_roles":[{"role_id":8}]}"#,
                r#"{"user_email":"b@x.com"}"#
            ]
        );
        // No array where the users should be: no list, not an empty one.
        assert!(split(r#"{"data":{"users":null}}"#, &["data", "users"]).is_none());
        assert!(split(r#"{"data":[1]}"#, &["data", "users"]).is_none());
        assert!(split(r#"{"list":{}}"#, &["list"]).is_none());
        assert!(split(r#"[]"#, &["list"]).is_none());
    }

    #[test]
    fn picking_keys_reads_only_those_members() {
        let text = r#"{"id":7,"username":"Ada","roles":[{"id":1,"name":"x"}],"email":null}"#;
        assert_eq!(
            pick(text, &["username", "id", "missing", "email"]),
            [Some(json!("Ada")), Some(json!(7)), None, Some(Value::Null)]
        );
        assert_eq!(pick("not json", &["id"]), [None]);
    }
}
