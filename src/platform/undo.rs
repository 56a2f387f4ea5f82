//! What puts a user back as a run found them: the cells of an input sheet that, applied,
//! undo one report line. Built from the line's status and its `changes` (the values before
//! and after, in the form `apply` reads them), so a resumed run's earlier lines are undone too.

use serde_json::Value;

use super::{Changes, Field, Kind, CLEAR};
use crate::engine::{FieldChange, Status};

/// One line's way back: `(field name, cell)` pairs, and how many of its changes cannot be put
/// back (a password, which no read shows; a non-text field that was empty, which no cell can
/// empty again).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Undo {
    pub cells: Vec<(&'static str, String)>,
    pub lost: Vec<String>,
}

/// The undo of one line, for a platform whose fields are `fields` and whose deactivation
/// sets `deactivation`: a created user is deactivated; an updated or deactivated one gets
/// every field back as it was read. Lines that changed nothing have none.
pub fn undo(
    fields: &'static [Field],
    deactivation: &Changes,
    status: Status,
    changes: &[FieldChange],
) -> Undo {
    let mut out = Undo::default();
    match status {
        Status::Created => {
            out.cells = deactivation
                .iter()
                .filter_map(|(name, value)| Some((name, cell(value)?)))
                .collect();
        }
        Status::Updated | Status::Deactivated => {
            for change in changes {
                let Some(field) = fields.iter().find(|f| f.name == change.field) else {
                    out.lost.push(change.field.clone());
                    continue;
                };
                if change.hidden {
                    out.lost.push(change.field.clone());
                } else if !change.before.is_empty() {
                    out.cells.push((field.name, change.before.clone()));
                } else if matches!(field.kind, Kind::Text(_)) {
                    out.cells.push((field.name, CLEAR.to_string()));
                } else {
                    out.lost.push(change.field.clone());
                }
            }
        }
        _ => {}
    }
    out
}

/// A value as a sheet's cell: what the vendor's deactivation sets is a yes/no or a number.
fn cell(value: &Value) -> Option<String> {
    match value {
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{by_name, Options};

    fn change(field: &str, before: &str, after: &str) -> FieldChange {
        FieldChange {
            field: field.into(),
            before: before.into(),
            after: after.into(),
            hidden: false,
        }
    }

    #[test]
    fn a_text_that_was_empty_is_cleared_and_a_yes_no_that_was_absent_cannot_come_back() {
        let cr = by_name("control-room", &Options::default()).unwrap();
        let undo = cr.undo(
            Status::Updated,
            &[
                change("description", "", "Night shift"),
                change("firstName", "Ana", "Anna"),
                change("disabled", "", "true"),
            ],
        );
        assert_eq!(
            undo.cells,
            [
                ("description", "#clear".to_string()),
                ("firstName", "Ana".to_string())
            ]
        );
        assert_eq!(undo.lost, ["disabled"]);
    }

    #[test]
    fn a_created_user_is_deactivated_and_a_password_is_never_put_back() {
        let hub = by_name("hub", &Options::default()).unwrap();
        let undo = hub.undo(Status::Created, &[change("user_first_name", "", "Nia")]);
        assert_eq!(
            undo.cells,
            [
                ("user_is_active", "0".to_string()),
                ("user_invite_status", "1".to_string())
            ]
        );
        let identity = by_name("identity", &Options::default()).unwrap();
        let password = FieldChange {
            hidden: true,
            ..change("password", "", "")
        };
        let undo = identity.undo(Status::Updated, &[password]);
        assert!(undo.cells.is_empty());
        assert_eq!(undo.lost, ["password"]);
    }

    #[test]
    fn identity_groups_added_are_removed_and_removed_ones_added() {
        let identity = by_name("identity", &Options::default()).unwrap();
        let undo = identity.undo(
            Status::Updated,
            &[
                change("groupIDsToAdd", "", "g1; g2"),
                change("groupIDsToRemove", "", "g3"),
            ],
        );
        assert_eq!(
            undo.cells,
            [
                ("groupIDsToRemove", "g1; g2".to_string()),
                ("groupIDsToAdd", "g3".to_string())
            ]
        );
    }

    #[test]
    fn lines_that_wrote_nothing_have_no_undo() {
        let hub = by_name("hub", &Options::default()).unwrap();
        for status in [
            Status::Unchanged,
            Status::WouldUpdate,
            Status::Failed,
            Status::NotFound,
        ] {
            assert_eq!(
                hub.undo(status, &[change("user_department", "A", "B")]),
                Undo::default()
            );
        }
    }
}
