//! The read-modify-write every vendor shares: find the user (in the list read up front, or by a
//! look-up), merge the row's changes into the record, compare, describe or write, read the
//! answer. A vendor supplies only its calls and how its answers read, through [`Vendor`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::cache::{key_text, Page, UserCache};
use super::dictionary::{Field, Place};
use super::{
    BeforeWrite, Changes, Edit, Leaver, Missing, Plan, Roster, Session, UserKey, MAX_CACHED_USERS,
};
use crate::engine::{CallError, FieldChange, Outcome, Reply, Status};
use crate::error::Error;
use crate::rules;

pub use super::cache::Found;

/// Which page of the whole user list to read: its number (from 0), how many users the pages
/// before it held, and how many a page holds. A vendor uses whichever its API counts in.
#[derive(Debug, Clone, Copy)]
pub struct PageAt {
    pub number: usize,
    pub offset: usize,
    pub size: usize,
}

/// How big the whole list is, as the vendor counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    Pages(usize),
    Users(usize),
}

/// One page of the user list: the user objects (as text, see [`super::page`]), and the size
/// of the whole list.
pub struct ListPage {
    pub users: super::page::Users,
    pub total: Total,
}

/// How a list is read after its first page: how many pages there are and how many users a
/// page holds.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub pages: usize,
    pub size: usize,
}

impl Shape {
    /// The shape the first page tells, asked for pages of `asked` users. A server that gives
    /// fewer users a page than asked sets the page size: offsets count in it.
    pub fn of(first: &ListPage, asked: usize) -> Shape {
        let size = match first.total {
            Total::Users(total) if first.users.len() < asked.min(total) => first.users.len().max(1),
            _ => asked,
        };
        let pages = match first.total {
            Total::Pages(pages) => pages.max(1),
            Total::Users(users) => users.div_ceil(size).max(1),
        };
        Shape { pages, size }
    }
}

/// The smallest page a list is asked for when the server refuses larger ones.
const SMALLEST_PAGE: usize = 100;

/// The list's first page, asked for in pages of `size` users, and the size it was read in.
/// No vendor publishes its largest page: a server that refuses the size with a 400 is asked
/// again for pages half as large, down to [`SMALLEST_PAGE`].
pub fn first_page(
    size: usize,
    read: impl Fn(&PageAt) -> Result<ListPage, Outcome>,
) -> Result<(ListPage, usize), Outcome> {
    let mut size = size;
    loop {
        let at = PageAt {
            number: 0,
            offset: 0,
            size,
        };
        match read(&at) {
            Err(o) if o.http_status == Some(400) && size / 2 >= SMALLEST_PAGE => size /= 2,
            read => return read.map(|page| (page, size)),
        }
    }
}

/// Reads pages 1 to the last of a list whose first page is in hand, `workers` at once: each
/// page goes to `each` (with its number) in the thread that read it, as it comes, and `first`
/// on the calling thread once the others are asked for. The first refusal stops the reading
/// and is returned; `stopped` stops it too (Ctrl-C).
pub fn read_pages(
    shape: Shape,
    workers: usize,
    first: ListPage,
    list_page: &(dyn Fn(&PageAt) -> Result<ListPage, Outcome> + Sync),
    each: &(dyn Fn(usize, ListPage) + Sync),
    stopped: &(dyn Fn() -> bool + Sync),
) -> Result<(), Outcome> {
    let next = AtomicUsize::new(1);
    let failed: Mutex<Option<Outcome>> = Mutex::new(None);
    let failed_yet = || failed.lock().unwrap_or_else(|e| e.into_inner()).is_some();
    let workers = workers.max(1).min(shape.pages.saturating_sub(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let number = next.fetch_add(1, Ordering::SeqCst);
                if number >= shape.pages || stopped() || failed_yet() {
                    return;
                }
                let at = PageAt {
                    number,
                    offset: number * shape.size,
                    size: shape.size,
                };
                match list_page(&at) {
                    Ok(page) => each(number, page),
                    Err(o) => {
                        failed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(o);
                        return;
                    }
                }
            });
        }
        // The first page is gone through while the others are on their way, not before
        // they are asked for.
        each(0, first);
    });
    match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(o) => Err(o),
        None => Ok(()),
    }
}

/// A row's changes merged into the user's record.
pub struct Change {
    /// The record's fields (the table's [`Place::InRecord`] ones) as read and as they would be
    /// after the write, normalised by the vendor so that order or spelling never make a change.
    pub before: Map<String, Value>,
    pub after: Map<String, Value>,
    /// The whole record as read, with the row's changes merged in.
    pub record: Map<String, Value>,
    /// The whole record as read: what the report's `changes` and an undo file put back.
    pub read: Map<String, Value>,
    /// Changes sent beside the record rather than in it (identity's group moves, a password).
    pub beside: Vec<(&'static str, Value)>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.before == self.after && self.beside.is_empty()
    }
}

/// What a vendor's answer to a write says.
pub enum Answer {
    Accepted,
    /// Someone changed the user since it was read: read it again and merge again, once.
    /// The reason is the row's error when that happens twice.
    Conflict(String),
    Refused(String),
}

/// What one vendor's API supplies to the read-modify-write.
pub trait Vendor: Send + Sync {
    /// Its field table: which fields name a user, and where each sits in the record.
    const FIELDS: &'static [Field];
    /// Users per page when the whole list is read.
    const PAGE: usize;
    /// Whether a write made from `record` carries the version it was read at, so that the
    /// server refuses one made from a stale copy (and the user is read again): then a copy
    /// read minutes ago is safe to start from. Without it a whole record written from an old
    /// copy would put back what others changed since.
    fn versioned(&self, _record: &Map<String, Value>) -> bool {
        false
    }

    /// Whether reading the whole list can serve these rows at all; an error stops the run.
    fn can_list(&self, _plan: &Plan) -> Result<bool, Error> {
        Ok(true)
    }
    /// One page of the whole user list.
    fn list_page(&self, at: &PageAt) -> Result<ListPage, Outcome>;
    /// The user a row's key names, looked up on the server.
    fn find(&self, key: &UserKey) -> Result<Found, Outcome>;
    /// The user again, by the id [`user_id`] gives, after a conflict.
    fn read(&self, id: &str) -> Result<Found, Outcome>;
    /// The `not-found` row's error.
    fn not_found(&self, key: &UserKey) -> String;
    /// Whether the record as read has the shape this client understands; a record it does
    /// not is never merged and written back (its unknown parts would be coerced or lost).
    fn understood(&self, _record: &Map<String, Value>) -> Result<(), String> {
        Ok(())
    }
    /// Makes the merged record one the vendor accepts as a whole (hub never pairs an
    /// inactive user with invite status 3).
    /// An error when the row cannot be carried out on this record (removing every role).
    fn settle(&self, _record: &mut Map<String, Value>, _edit: &Edit) -> Result<(), String> {
        Ok(())
    }
    /// The names of roles or groups known without a request (built-in ones, or a list already
    /// read): the `changes` column shows those by name.
    fn names_known(&self) -> Names {
        Names::new()
    }
    /// Names in the row the platform does not have (roles, groups): the row is `invalid`,
    /// saying which and the closest names, and nothing is sent for it. The platform's list is
    /// read once, when the first row needs it.
    fn unknown_names(&self, _edit: &Edit) -> Result<(), Outcome> {
        Ok(())
    }
    /// A change's value as the record holds it (control-room looks role names up).
    fn resolve(&self, _field: &str, value: &Value) -> Result<Value, String> {
        Ok(value.clone())
    }
    /// A record field's value in the form compared, so that order or spelling never make a
    /// change (roles as sorted sets, say).
    fn normalise(&self, _key: &str, value: Value) -> Value {
        value
    }
    /// The changes sent beside the record, worked out from the record as read.
    fn beside(&self, _current: &Map<String, Value>, _edit: &Edit) -> Vec<(&'static str, Value)> {
        Vec::new()
    }
    /// What a row changes (or would), field by field, as cells `apply` reads back.
    fn describe(&self, change: &Change) -> Vec<FieldChange>
    where
        Self: Sized,
    {
        field_changes(self, change)
    }
    /// Sends the change.
    fn write(&self, id: &str, change: &Change) -> Result<Reply, CallError>;
    /// Reads the answer to a write.
    fn interpret(&self, id: &str, reply: &Reply) -> Answer;

    /// `export`: the platform's own names for the ids its records hold (roles, groups).
    fn names(&self) -> Result<Names, Outcome> {
        Ok(Names::default())
    }
    /// `export`: whether a listed user is exported (Control Room lists deleted users too).
    fn exports(&self, _user: &Map<String, Value>) -> bool {
        true
    }
    /// `export`: a field's cell as `apply` reads it back, where the record's value as text
    /// will not do (roles and groups); `None` leaves it to that.
    fn exported(
        &self,
        _field: &Field,
        _user: &Map<String, Value>,
        _names: &Names,
    ) -> Option<String> {
        None
    }
    /// What creating the user a row names would lack or break (`--create`): each a short
    /// reason naming the field, checked before anything is sent for the row.
    fn cannot_create(&self, edit: &Edit) -> Vec<String>;
    /// The record of a new user before the row's values go in: the vendor's defaults (hub's
    /// Standard User role), so that a dry run shows what creation will set.
    fn new_record(&self) -> Map<String, Value> {
        Map::new()
    }
    /// Creates the user: `change.record` is the new record, `change.beside` what is sent
    /// beside it (a password, groups).
    fn create(&self, edit: &Edit, change: &Change) -> Result<Reply, CallError>;
    /// Reads the answer to a create: only an answer that proves the user was made is one.
    fn created(&self, edit: &Edit, reply: &Reply) -> Answer;

    /// Whether a listed user is active: only active users are deactivated as missing.
    fn is_active(&self, user: &Map<String, Value>) -> bool;
    /// The changes that deactivate a user, merged into the record like any row's.
    fn deactivation(&self) -> Changes;
    /// Every name a user is known by, for `--keep` and for the account the run authenticates
    /// as: its keys, and the vendor's other names for it (an e-mail, a user name).
    fn known_as(&self, user: &Map<String, Value>) -> Vec<String> {
        Self::FIELDS
            .iter()
            .filter(|f| f.names_user())
            .filter_map(|f| user.get(f.record_key()?).and_then(key_text))
            .collect()
    }
    /// A name of the account the run authenticates as, when the credentials tell it (a
    /// Control Room login does; a bare token may not): never deactivated as missing.
    fn caller(&self) -> Option<String> {
        None
    }
}

/// How old a copy from the list read up front may be when a whole record is written from it,
/// on a platform without a version check: older copies are read again first. A few seconds
/// keeps the list's saving for the rows sent right after it, and no admin's change of a
/// minute ago is put back by a copy read before it.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// Tests set a shorter window than waiting seconds for a copy to age would allow.
const FRESH_FOR_VARIABLE: &str = "BULKEDIT_TEST_FRESH_MS";

/// A vendor's calls as a [`Session`]: the one read-modify-write, and the list read up front.
pub struct ReadModifyWrite<V> {
    vendor: V,
    /// Named when the list read up front fails.
    url: url::Url,
    /// Every user by each key, when reading the whole list took fewer calls.
    cache: OnceLock<UserCache>,
    /// The age past which a listed copy is read again before a write ([`FRESH_FOR`]).
    fresh_for: Duration,
    /// Which row claimed each user (by id), when rows name users through different keys
    /// and two of them may turn out to be one user.
    claims: OnceLock<Mutex<HashMap<String, Claim>>>,
    /// `--create`: a row whose user does not exist creates it, set by [`Session::prepare`].
    create: OnceLock<bool>,
    /// The list's first page, when the read made at log-in was it ([`Connect::first_page`]).
    ///
    /// [`Connect::first_page`]: super::Connect::first_page
    first_page: Mutex<Option<ListPage>>,
    /// What the run should hear of how the users were read ([`Session::note`]).
    note: OnceLock<String>,
}

/// The row that a user was first resolved for, and what became of the claim since.
struct Claim {
    row: u64,
    key: UserKey,
    /// A later row found to name the same user before this one was sent: neither is sent.
    twin: Option<(u64, UserKey)>,
    /// This row's write has started: a twin found now cannot stop it.
    sending: bool,
}

impl<V: Vendor> ReadModifyWrite<V> {
    pub fn new(vendor: V, url: url::Url) -> Self {
        let fresh_for = std::env::var(FRESH_FOR_VARIABLE)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(FRESH_FOR);
        ReadModifyWrite {
            vendor,
            url,
            cache: OnceLock::new(),
            fresh_for,
            claims: OnceLock::new(),
            create: OnceLock::new(),
            first_page: Mutex::new(None),
            note: OnceLock::new(),
        }
    }

    /// Starts the list from `page`, the first page as read at log-in (when it was).
    pub fn with_first_page(self, page: Option<ListPage>) -> Self {
        *self.first_page.lock().unwrap_or_else(|e| e.into_inner()) = page;
        self
    }

    /// A page of the list: the first one as read at log-in, once, or from the server.
    fn list_page(&self, at: &PageAt) -> Result<ListPage, Outcome> {
        if at.number == 0 {
            let kept = self
                .first_page
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(page) = kept.filter(|p| p.users.len() <= at.size) {
                return Ok(page);
            }
        }
        self.vendor.list_page(at)
    }

    /// A row whose user does not exist, under `--create`: the user made from the row, or in a
    /// dry run what would be made. `attempts` are the requests the look-up took.
    fn create_user(
        &self,
        edit: &Edit,
        dry_run: bool,
        mut attempts: u32,
        before_write: BeforeWrite,
    ) -> Outcome {
        let problems = self.vendor.cannot_create(edit);
        if !problems.is_empty() {
            let mut o = Outcome::with_error(
                Status::Invalid,
                format!("to create this user (--create): {}", problems.join("; ")),
            );
            o.attempts = attempts;
            return o;
        }
        let change = match new_user(&self.vendor, edit) {
            Ok(change) => change,
            Err(m) => {
                let mut o = Outcome::with_error(Status::Invalid, m);
                o.attempts = attempts;
                return o;
            }
        };
        let described = self.vendor.describe(&change);
        if let Some(o) = drifted(edit, Status::WouldCreate, &described, attempts) {
            return o;
        }
        if dry_run {
            let mut o = Outcome::new(Status::WouldCreate);
            o.changes = described;
            o.attempts = attempts;
            return o;
        }
        if let Err(m) = before_write(Status::Created, &described) {
            return Outcome::with_error(Status::Failed, m).http(200, attempts);
        }
        let reply = match self.vendor.create(edit, &change) {
            Ok(reply) => reply,
            Err(CallError::Transport {
                message,
                attempts: n,
                maybe_applied: true,
            }) => return self.after_lost_create(edit, &described, message, attempts + n),
            Err(e) => return Outcome::from_call_error(e, attempts),
        };
        attempts += reply.attempts;
        match self.vendor.created(edit, &reply) {
            Answer::Accepted => {
                let mut o = Outcome::new(Status::Created).http(reply.status, attempts);
                o.changes = self.vendor.describe(&change);
                o
            }
            // A create tried again after its answer was lost is refused as a duplicate when
            // the first one was made: the user as the server holds it now says.
            Answer::Refused(reason) | Answer::Conflict(reason) if reply.after_lost_answer => {
                let o = self.after_lost_create(edit, &described, reason, attempts);
                match o.status {
                    Status::Created => o,
                    _ => {
                        let attempts = o.attempts;
                        o.http(reply.status, attempts)
                    }
                }
            }
            Answer::Refused(reason) | Answer::Conflict(reason) => {
                Outcome::with_error(Status::Failed, reason).http(reply.status, attempts)
            }
        }
    }

    /// A create whose answer was lost: `created` when the user now exists with the row's
    /// values, else failed with `message`. Never created a second time.
    fn after_lost_create(
        &self,
        edit: &Edit,
        made: &[FieldChange],
        message: String,
        attempts: u32,
    ) -> Outcome {
        let now = self.vendor.find(&edit.key);
        self.made_after_all(now, Status::Created, edit, made, message, attempts)
    }

    /// The user a key names, the requests it took, the status of the last, and when the copy
    /// was read when it comes from the list read up front.
    fn find(&self, key: &UserKey) -> Result<(Found, Option<Instant>), Outcome> {
        match self.cache.get() {
            Some(cache) => match cache.get(key) {
                Ok(Some((user, read_at))) => Ok(((Some(user), 0, 200), Some(read_at))),
                Ok(None) => Ok(((None, 0, 200), None)),
                Err(twins) => Err(Outcome::with_error(Status::Failed, twins)),
            },
            None => self.vendor.find(key).map(|found| (found, None)),
        }
    }

    /// Claims the user `id` for `row`; when another row claimed it first, this row is refused
    /// naming that one, and that one too if it has not been sent yet.
    fn claim(&self, id: &str, row: u64, key: &UserKey) -> Result<(), Outcome> {
        let Some(claims) = self.claims.get() else {
            return Ok(());
        };
        let mut claims = claims.lock().unwrap_or_else(|e| e.into_inner());
        let Some(first) = claims.get_mut(id) else {
            claims.insert(
                id.to_string(),
                Claim {
                    row,
                    key: key.clone(),
                    twin: None,
                    sending: false,
                },
            );
            return Ok(());
        };
        if first.row == row {
            return Ok(());
        }
        let mut message = twin_error(key, first.row, &first.key);
        if first.sending {
            message.push_str(&format!(
                "; row {} was sent before this showed, and its change stands",
                first.row
            ));
        } else if first.twin.is_none() {
            first.twin = Some((row, key.clone()));
        }
        Err(Outcome::with_error(Status::Invalid, message))
    }

    /// Marks `row`'s claim on `id` as being sent, unless a twin row was found meanwhile.
    fn start_sending(&self, id: &str, row: u64) -> Result<(), Outcome> {
        let Some(claims) = self.claims.get() else {
            return Ok(());
        };
        let mut claims = claims.lock().unwrap_or_else(|e| e.into_inner());
        match claims.get_mut(id) {
            Some(claim) if claim.row == row => match &claim.twin {
                Some((twin, twin_key)) => Err(Outcome::with_error(
                    Status::Invalid,
                    twin_error(&claim.key, *twin, twin_key),
                )),
                None => {
                    claim.sending = true;
                    Ok(())
                }
            },
            _ => Ok(()),
        }
    }

    /// Reads the rest of the list after its first page, `workers` pages at once. With the
    /// users, why the list cannot be taken as the server's users when it moved while it was
    /// read: a page counting the list otherwise than the first, or a user on two pages (users
    /// came or went, and pages by offset then skip someone or show them twice).
    fn read_list(
        &self,
        first: ListPage,
        shape: Shape,
        workers: usize,
    ) -> Result<(UserCache, Option<String>), Outcome> {
        let keys = cache_keys(V::FIELDS);
        let counted = first.total;
        let count = |total: Total| match total {
            Total::Pages(n) => format!("{n} pages"),
            Total::Users(n) => format!("{n} users"),
        };
        // Pages are kept in list order as they come, whichever came first: each page that
        // follows the ones kept goes in at once, so little is left to do after the last.
        struct Kept {
            cache: UserCache,
            next: usize,
            waiting: HashMap<usize, Page>,
            /// The first page (in list order) that counted otherwise than the first.
            moved: Option<(usize, Total)>,
        }
        let kept = Mutex::new(Kept {
            cache: UserCache::with_capacity(shape.pages * shape.size, keys.len()),
            next: 0,
            waiting: HashMap::new(),
            moved: None,
        });
        let keep = |number: usize, page: ListPage| {
            let total = page.total;
            let page = Page::new(page.users, &keys);
            let mut guard = kept.lock().unwrap_or_else(|e| e.into_inner());
            let kept = &mut *guard;
            if total != counted && kept.moved.is_none_or(|(n, _)| number < n) {
                kept.moved = Some((number, total));
            }
            kept.waiting.insert(number, page);
            while let Some(page) = kept.waiting.remove(&kept.next) {
                kept.cache.add(page);
                kept.next += 1;
            }
        };
        read_pages(
            shape,
            workers,
            first,
            &|at| self.vendor.list_page(at),
            &keep,
            &|| false,
        )?;
        let kept = kept.into_inner().unwrap_or_else(|e| e.into_inner());
        let twice = kept.cache.listed_twice();
        let recounted = kept.moved.map(|(number, total)| {
            format!(
                "its page {} counted {} where the first counted {}",
                number + 1,
                count(total),
                count(counted)
            )
        });
        let moved = recounted.or_else(|| {
            (twice > 0).then(|| match twice {
                1 => "a user was on two of its pages".to_string(),
                n => format!("{n} users were on two of its pages"),
            })
        });
        Ok((kept.cache, moved))
    }

    /// The user read again by id, after a conflict or because the copy in hand is too old.
    fn read_again(&self, id: &str, attempts: &mut u32) -> Result<Map<String, Value>, Outcome> {
        match self.vendor.read(id) {
            Ok((Some(fresh), n, _)) => {
                *attempts += n;
                Ok(fresh)
            }
            Ok((None, n, status)) => Err(Outcome::with_error(
                Status::NotFound,
                "the user was deleted while being updated",
            )
            .http(status, *attempts + n)),
            Err(mut o) => {
                o.attempts += *attempts;
                Err(o)
            }
        }
    }

    /// A write whose answer was lost: the user as the server holds it now says whether it
    /// was made. `updated` with `made` (what the write changed) when the row's values are all
    /// in place, else failed with `message` (what the transport or the server's last answer
    /// said).
    fn after_lost_answer(
        &self,
        id: &str,
        edit: &Edit,
        made: &[FieldChange],
        message: String,
        attempts: u32,
    ) -> Outcome {
        let now = self.vendor.read(id);
        self.made_after_all(now, Status::Updated, edit, made, message, attempts)
    }

    /// What a write or create whose answer was lost comes to, once the user is read again
    /// (`now`): `done` with `made` when the row's values are all in place, else failed with
    /// `message`.
    fn made_after_all(
        &self,
        now: Result<Found, Outcome>,
        done: Status,
        edit: &Edit,
        made: &[FieldChange],
        message: String,
        mut attempts: u32,
    ) -> Outcome {
        match now {
            Ok((now, n, status)) => {
                attempts += n;
                let in_place = now.is_some_and(|now| {
                    merge(&self.vendor, now, edit).is_ok_and(|c| in_place::<V>(&c))
                });
                if in_place {
                    let mut o = Outcome::new(done).http(status, attempts);
                    o.changes = made.to_vec();
                    return o;
                }
            }
            Err(o) => attempts += o.attempts,
        }
        let mut o = Outcome::with_error(Status::Failed, message);
        o.attempts = attempts;
        o
    }
}

/// Whether a change is already made, as far as the server shows: after a lost answer, the
/// record as the row wants it proves the one write or create was made, since a password is
/// never read back and would otherwise always look unmade.
fn in_place<V: Vendor>(change: &Change) -> bool {
    let masked = |name: &str| V::FIELDS.iter().any(|f| f.name == name && f.is_masked());
    change.before == change.after && change.beside.iter().all(|(name, _)| masked(name))
}

/// The error of a row naming the same user as `other` does through another key.
fn twin_error(key: &UserKey, other: u64, other_key: &UserKey) -> String {
    format!(
        "{}: the same user as row {other} (its {} '{}') (nothing is sent for a user named \
         twice; keep one row)",
        key.field, other_key.field, other_key.value
    )
}

impl<V: Vendor> Session for ReadModifyWrite<V> {
    fn export(&self) -> Option<&dyn Export> {
        Some(self)
    }

    fn prepare(&self, plan: &Plan) -> Result<(), Error> {
        let _ = self.create.set(plan.create);
        // Only rows naming users through different keys can name one user twice unseen.
        if plan.lookups > 0 && plan.lookups < plan.rows {
            let _ = self.claims.set(Mutex::new(HashMap::new()));
        }
        // The roster is compared with every user, so they are all read, whatever it costs.
        let whole = plan.deactivate_missing;
        if !self.vendor.can_list(plan)? {
            if whole {
                return Err(Error::usage(
                    "--deactivate-missing needs the whole user list, which cannot be read here",
                ));
            }
            return Ok(());
        }
        if plan.rows < 2 && !whole {
            return Ok(());
        }
        let fail = |o: Outcome| {
            Error::server(&self.url, format!("cannot read the user list: {}", o.error))
        };
        let (first, size) = first_page(V::PAGE, |at| self.list_page(at)).map_err(fail)?;
        let shape = Shape::of(&first, size);
        let users = match first.total {
            Total::Pages(pages) => pages * shape.size,
            Total::Users(users) => users,
        };
        // The whole list costs `pages` calls; one look-up per row costs `rows`.
        if (shape.pages >= plan.rows || users > MAX_CACHED_USERS) && !whole {
            return Ok(());
        }
        let (cache, moved) = self.read_list(first, shape, plan.workers).map_err(fail)?;
        if let Some(why) = moved {
            let moved = format!("the user list changed while it was read ({why})");
            // Who is missing from the roster cannot be told from a list that skipped someone.
            if whole {
                return Err(Error::server(
                    &self.url,
                    format!(
                        "{moved}: nothing was sent, since --deactivate-missing needs every user; \
                         run again when users are not being added or removed"
                    ),
                ));
            }
            // A user it skipped would be taken for missing, and created under --create: each
            // row's user is looked up on its own instead.
            let _ = self.note.set(format!(
                "{moved}: each row's user is looked up on its own instead"
            ));
            return Ok(());
        }
        let _ = self.cache.set(cache);
        Ok(())
    }

    fn listed(&self) -> bool {
        self.cache.get().is_some()
    }

    fn note(&self) -> Option<&str> {
        self.note.get().map(String::as_str)
    }

    fn missing(&self, roster: &Roster) -> Result<Missing, Error> {
        let Some(cache) = self.cache.get() else {
            return Err(Error::usage(
                "--deactivate-missing needs the whole user list, which was not read",
            ));
        };
        let caller = self.vendor.caller().map(|c| rules::normalize_key(&c));
        let id_field = id_field(V::FIELDS);
        // Why a listed user stays: named by a row, kept by --keep, or the run's own account.
        let stays = |user: &Map<String, Value>| -> Option<&'static str> {
            let named = V::FIELDS.iter().filter(|f| f.names_user()).any(|f| {
                f.record_key()
                    .and_then(|k| user.get(k))
                    .and_then(key_text)
                    .is_some_and(|value| {
                        let key = UserKey {
                            field: f.name,
                            value,
                        };
                        roster.named.contains(&key.normalized())
                    })
            });
            if named {
                return Some("a row of the file names this user now");
            }
            let names = self.vendor.known_as(user);
            if names
                .iter()
                .any(|n| roster.keep.iter().any(|p| super::wildcard_match(p, n)))
            {
                return Some("--keep protects this user");
            }
            if names
                .iter()
                .any(|n| caller.as_deref() == Some(rules::normalize_key(n).as_str()))
            {
                return Some("this is the account the run logs in as");
            }
            None
        };
        let deactivating = |user: &Map<String, Value>| -> Option<Edit> {
            Some(Edit {
                key: UserKey {
                    field: id_field?.name,
                    value: user_id(V::FIELDS, user)?,
                },
                changes: self.vendor.deactivation(),
                plan: None,
            })
        };
        let mut users = Vec::new();
        for user in cache.users() {
            if !self.vendor.is_active(&user) || stays(&user).is_some() {
                continue;
            }
            let Some(edit) = deactivating(&user) else {
                continue;
            };
            let shown = roster.columns.iter().find_map(|&name| {
                let f = V::FIELDS.iter().find(|f| f.name == name)?;
                let value = user.get(f.record_key()?).and_then(key_text)?;
                Some(UserKey {
                    field: f.name,
                    value,
                })
            });
            users.push(Leaver {
                edit,
                shown,
                drifted: None,
            });
        }
        let caller_known = caller.is_some();
        let Some(plan) = &roster.plan else {
            return Ok(Missing {
                users,
                caller_known,
            });
        };
        // A plan: exactly the users it lists go, each only as the dry run saw it; a user
        // missing now whom it does not list was not approved, and stays.
        let moved = |why: &str| format!("moved since the plan, so nothing was sent: {why}");
        let mut leavers = Vec::new();
        let mut planned_ids = std::collections::HashSet::new();
        for p in plan {
            let shown = Some(p.key.clone());
            let gone = |why: String| Leaver {
                edit: Edit {
                    key: p.key.clone(),
                    changes: self.vendor.deactivation(),
                    plan: None,
                },
                shown: shown.clone(),
                drifted: Some(why),
            };
            let user = match cache.get(&p.key) {
                Ok(Some((user, _))) => user,
                Ok(None) => {
                    leavers.push(gone(moved(
                        "the plan would deactivate this user, who is not on the server any more",
                    )));
                    continue;
                }
                Err(twins) => {
                    leavers.push(gone(twins));
                    continue;
                }
            };
            if let Some(id) = user_id(V::FIELDS, &user) {
                planned_ids.insert(id);
            }
            if let Some(why) = stays(&user) {
                leavers.push(gone(moved(&format!(
                    "the plan would deactivate this user, but {why}"
                ))));
                continue;
            }
            let Some(mut edit) = deactivating(&user) else {
                continue;
            };
            // Read and compared as a row of the plan is: sent only if it still changes what
            // the dry run said (an inactive user already changes nothing: drifted).
            edit.plan = Some(Box::new(super::Planned {
                status: Status::WouldUpdate,
                changes: p.changes.clone(),
            }));
            leavers.push(Leaver {
                edit,
                shown,
                drifted: None,
            });
        }
        for mut unplanned in users
            .into_iter()
            .filter(|l| !planned_ids.contains(&l.edit.key.value))
        {
            unplanned.drifted = Some(moved(
                "missing from the roster and active now, but the plan does not list this \
                 user, so it is not deactivated; make a new dry run to include it",
            ));
            leavers.push(unplanned);
        }
        Ok(Missing {
            users: leavers,
            caller_known,
        })
    }

    fn deactivate(&self, edit: &Edit, dry_run: bool, before_write: BeforeWrite) -> Outcome {
        let as_deactivation = |status, changes: &[FieldChange]| match status {
            Status::Updated => before_write(Status::Deactivated, changes),
            other => before_write(other, changes),
        };
        // No input row names this user: it claims under a row number no row has.
        let mut o = self.apply(edit, u64::MAX, dry_run, &as_deactivation);
        o.status = match o.status {
            Status::Updated => Status::Deactivated,
            Status::WouldUpdate => Status::WouldDeactivate,
            other => other,
        };
        o
    }

    fn listed_user(&self, key: &UserKey) -> Option<String> {
        let (user, _) = self.cache.get()?.get(key).ok()??;
        user_id(V::FIELDS, &user)
    }

    fn apply(&self, edit: &Edit, row: u64, dry_run: bool, before_write: BeforeWrite) -> Outcome {
        if let Err(o) = self.vendor.unknown_names(edit) {
            return o;
        }
        let ((found, mut attempts, looked_up), read_at) = match self.find(&edit.key) {
            Ok(found) => found,
            Err(outcome) => return outcome,
        };
        let Some(mut record) = found else {
            if self.create.get() == Some(&true) {
                return self.create_user(edit, dry_run, attempts, before_write);
            }
            return Outcome::with_error(Status::NotFound, self.vendor.not_found(&edit.key))
                .http(looked_up, attempts);
        };
        let Some(id) = user_id(V::FIELDS, &record) else {
            return Outcome::with_error(Status::Failed, "the server's user record has no id");
        };
        if let Err(mut o) = self.claim(&id, row, &edit.key) {
            o.attempts = attempts;
            return o;
        }
        // A copy from the list that is too old is read again before a whole record is
        // written from it; one that shows nothing to change costs nothing.
        let mut stale = !self.vendor.versioned(&record)
            && read_at.is_some_and(|t| t.elapsed() > self.fresh_for);
        let mut wrote = false;
        // What a write whose answer was lost changed: when the user read again shows it made,
        // the row says so, and the undo file puts it back.
        let mut lost: Option<Vec<FieldChange>> = None;
        let mut conflicts = 0;
        loop {
            let change = match merge(&self.vendor, record, edit) {
                Ok(change) => change,
                Err(m) => return Outcome::with_error(Status::Failed, m).http(200, attempts),
            };
            if change.is_empty() {
                if !wrote {
                    if let Some(o) = drifted(edit, Status::Unchanged, &[], attempts) {
                        return o;
                    }
                }
                // After a conflict, the record may already be as this row wants it.
                let status = if wrote {
                    Status::Updated
                } else {
                    Status::Unchanged
                };
                let mut o = Outcome::new(status);
                o.attempts = attempts;
                o.changes = lost.unwrap_or_default();
                return o;
            }
            let described = self.vendor.describe(&change);
            if let Some(o) = drifted(edit, Status::WouldUpdate, &described, attempts) {
                return o;
            }
            if dry_run {
                let mut o = Outcome::new(Status::WouldUpdate);
                o.changes = described;
                o.attempts = attempts;
                return o;
            }
            if stale {
                stale = false;
                record = match self.read_again(&id, &mut attempts) {
                    Ok(fresh) => fresh,
                    Err(o) => return o,
                };
                continue;
            }
            if let Err(mut o) = self.start_sending(&id, row) {
                o.attempts = attempts;
                return o;
            }
            if let Err(m) = before_write(Status::Updated, &described) {
                return Outcome::with_error(Status::Failed, m).http(200, attempts);
            }
            let reply = match self.vendor.write(&id, &change) {
                Ok(reply) => reply,
                Err(CallError::Transport {
                    message,
                    attempts: n,
                    maybe_applied: true,
                }) => return self.after_lost_answer(&id, edit, &described, message, attempts + n),
                Err(e) => return Outcome::from_call_error(e, attempts),
            };
            attempts += reply.attempts;
            wrote = true;
            let reason = match self.vendor.interpret(&id, &reply) {
                Answer::Accepted => {
                    let mut o = Outcome::new(Status::Updated).http(reply.status, attempts);
                    o.changes = described;
                    return o;
                }
                // One write more after reading the user again on a conflict.
                Answer::Conflict(_) if conflicts == 0 => {
                    conflicts += 1;
                    // A write tried again after its answer was lost is refused as stale when
                    // the first try was made (its version moved on).
                    if reply.after_lost_answer {
                        lost = Some(described);
                    }
                    record = match self.read_again(&id, &mut attempts) {
                        Ok(fresh) => fresh,
                        Err(o) => return o,
                    };
                    continue;
                }
                // A refusal of a write tried again after its answer was lost may refuse only
                // to make the change twice: what the server holds now says.
                Answer::Refused(reason) if reply.after_lost_answer => {
                    let o = self.after_lost_answer(&id, edit, &described, reason, attempts);
                    return match o.status {
                        Status::Updated => o,
                        _ => {
                            let attempts = o.attempts;
                            o.http(reply.status, attempts)
                        }
                    };
                }
                Answer::Conflict(reason) | Answer::Refused(reason) => reason,
            };
            return Outcome::with_error(Status::Failed, reason).http(reply.status, attempts);
        }
    }
}

/// A plan's row (see [`super::Planned`]) whose user moved since its dry run: what it would do
/// now (`status`, `now`) is not what the plan said. `drifted`, saying what moved; nothing is
/// sent. A password's value is never shown, so only that it changes is compared.
fn drifted(edit: &Edit, status: Status, now: &[FieldChange], attempts: u32) -> Option<Outcome> {
    let plan = edit.plan.as_deref()?;
    let same = |a: &FieldChange, b: &FieldChange| {
        a.field == b.field
            && a.hidden == b.hidden
            && (a.hidden || (a.before == b.before && a.after == b.after))
    };
    if plan.status == status
        && plan.changes.len() == now.len()
        && plan.changes.iter().zip(now).all(|(a, b)| same(a, b))
    {
        return None;
    }
    let shown = |v: &str| {
        if v.is_empty() {
            "(empty)".to_string()
        } else {
            format!("'{v}'")
        }
    };
    let mut moved: Vec<String> = Vec::new();
    for p in &plan.changes {
        match now.iter().find(|n| n.field == p.field) {
            Some(n) if same(p, n) => {}
            Some(n) if n.before != p.before => moved.push(format!(
                "{}: the plan saw {}, the server now has {}",
                p.field,
                shown(&p.before),
                shown(&n.before)
            )),
            Some(n) => moved.push(format!(
                "{}: the plan sets {}, the row now sets {}",
                p.field,
                shown(&p.after),
                shown(&n.after)
            )),
            None => moved.push(format!(
                "{}: the plan changed it from {}, the server already has {}",
                p.field,
                shown(&p.before),
                shown(&p.after)
            )),
        }
    }
    for n in now
        .iter()
        .filter(|n| !plan.changes.iter().any(|p| p.field == n.field))
    {
        moved.push(format!(
            "{}: now changes too, which the plan did not",
            n.field
        ));
    }
    let what = match (plan.status, status) {
        (Status::WouldCreate, Status::WouldUpdate | Status::Unchanged) => {
            "the plan would create this user, who exists now".to_string()
        }
        (Status::WouldUpdate, Status::WouldCreate) => {
            "the plan would update this user, who no longer exists".to_string()
        }
        (Status::Unchanged, Status::WouldCreate) => {
            "the plan sends nothing for this row, which would now create its user".to_string()
        }
        (Status::Unchanged, _) => format!(
            "the plan sends nothing for this row, which would now change {}",
            now.iter()
                .map(|n| format!("{} ({} → {})", n.field, shown(&n.before), shown(&n.after)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => moved.join("; "),
    };
    let mut o = Outcome::with_error(
        Status::Drifted,
        format!("moved since the plan, so nothing was sent: {what}"),
    );
    o.attempts = attempts;
    Some(o)
}

/// A row's changes merged into a user's record as read: what `apply` compares, describes and
/// writes. Only the table's record fields are merged in; the vendor sends the rest beside.
pub fn merge<V: Vendor>(
    vendor: &V,
    mut record: Map<String, Value>,
    edit: &Edit,
) -> Result<Change, String> {
    vendor.understood(&record)?;
    let read = record.clone();
    let before = compared(vendor, &record);
    let beside = vendor.beside(&record, edit);
    for (name, value) in edit.changes.iter() {
        let place = V::FIELDS.iter().find(|f| f.name == name).map(|f| f.place);
        if let Some(Place::InRecord(key)) = place {
            record.insert(key.to_string(), vendor.resolve(name, value)?);
        }
    }
    vendor.settle(&mut record, edit)?;
    Ok(Change {
        before,
        after: compared(vendor, &record),
        record,
        read,
        beside,
    })
}

/// A new user's record, made of the vendor's defaults, the row's key and its changes: what
/// `--create` describes and sends. Every field is new, so `before` holds only nulls.
pub fn new_user<V: Vendor>(vendor: &V, edit: &Edit) -> Result<Change, String> {
    let mut record = vendor.new_record();
    let key = V::FIELDS
        .iter()
        .find(|f| f.name == edit.key.field)
        .and_then(Field::record_key);
    if let Some(key) = key {
        record.insert(key.to_string(), Value::String(edit.key.value.clone()));
    }
    for (name, value) in edit.changes.iter() {
        let place = V::FIELDS.iter().find(|f| f.name == name).map(|f| f.place);
        if let Some(Place::InRecord(key)) = place {
            record.insert(key.to_string(), vendor.resolve(name, value)?);
        }
    }
    vendor.settle(&mut record, edit)?;
    let before = record_keys(V::FIELDS)
        .into_iter()
        .map(|k| (k.to_string(), Value::Null))
        .collect();
    Ok(Change {
        before,
        after: compared(vendor, &record),
        beside: vendor.beside(&Map::new(), edit),
        read: Map::new(),
        record,
    })
}

/// The table's record fields of `record`, normalised.
fn compared<V: Vendor>(vendor: &V, record: &Map<String, Value>) -> Map<String, Value> {
    record_keys(V::FIELDS)
        .into_iter()
        .map(|k| {
            let v = record.get(k).cloned().unwrap_or(Value::Null);
            (k.to_string(), vendor.normalise(k, v))
        })
        .collect()
}

/// The keys of the table's record fields, in table order: what is compared and described.
pub fn record_keys(fields: &[Field]) -> Vec<&'static str> {
    fields
        .iter()
        .filter_map(|f| match f.place {
            Place::InRecord(key) => Some(key),
            _ => None,
        })
        .collect()
}

/// What writes and re-reads name the user by: the platform's own id, or on a platform that
/// has none (hub writes by e-mail) the first key a user can be found by.
pub fn user_id(fields: &[Field], record: &Map<String, Value>) -> Option<String> {
    let field = id_field(fields)?;
    key_text(record.get(field.record_key()?)?)
}

/// The field writes and re-reads name a user by (see [`user_id`]).
fn id_field(fields: &[Field]) -> Option<&Field> {
    fields
        .iter()
        .find(|f| matches!(f.place, Place::UserId(_)))
        .or_else(|| fields.iter().find(|f| f.names_user()))
}

/// Every field a listed user can be found by, with the record member that holds it: what the
/// cache indexes.
fn cache_keys(fields: &[Field]) -> Vec<(&'static str, &'static str)> {
    fields
        .iter()
        .filter(|f| f.names_user())
        .filter_map(|f| Some((f.name, f.record_key()?)))
        .collect()
}

/// Every record field `change` changes, by the field table's name, with its values as read
/// and as written in the form `apply` reads them back (as `export` writes them).
pub fn field_changes<V: Vendor>(vendor: &V, change: &Change) -> Vec<FieldChange> {
    let names = vendor.names_known();
    let cell = |field: &Field, record: &Map<String, Value>| {
        vendor
            .exported(field, record, &names)
            .unwrap_or_else(|| cell_text(field.record_key().and_then(|k| record.get(k))))
    };
    V::FIELDS
        .iter()
        .filter_map(|field| match field.place {
            Place::InRecord(key) if change.before.get(key) != change.after.get(key) => {
                Some(FieldChange {
                    field: field.name.to_string(),
                    before: cell(field, &change.read),
                    after: cell(field, &change.record),
                    hidden: false,
                })
            }
            _ => None,
        })
        .collect()
}

/// A record's value as a cell: text as it is, yes/no and numbers as JSON writes them; lists
/// are the vendor's (see [`Vendor::exported`]).
fn cell_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Names for ids (id, name), as the platform lists them: its roles or groups.
pub type Names = Vec<(String, String)>;

/// What a row says of a role or group the platform does not have: the closest of `names`
/// (a near miss of spelling or case), and the whole list when it is short enough to read.
pub fn no_such(what: &str, wanted: &str, names: &[&str]) -> String {
    let closest = names
        .iter()
        .map(|n| {
            (
                strsim::osa_distance(&n.to_lowercase(), &wanted.to_lowercase()),
                n,
            )
        })
        .filter(|(d, n)| *d <= (n.chars().count() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| *n);
    let mut text = format!("there is no {what} '{wanted}'");
    if let Some(c) = closest {
        text.push_str(&format!(" (did you mean '{c}'?)"));
    }
    if names.len() <= 12 {
        text.push_str(&format!("; the {what}s are: {}", names.join(", ")));
    }
    text
}

/// What `export` asks of a logged-in session: the whole user list page by page (any page,
/// from any thread, so that pages are read at once), the names of roles and groups, and a user
/// as the cells of a sheet `apply` reads back.
pub trait Export: Send + Sync {
    /// Users per page.
    fn page_size(&self) -> usize;
    /// Whether the list can be read at all; an error stops the export before it starts.
    fn can_list(&self) -> Result<bool, Error>;
    fn list_page(&self, at: &PageAt) -> Result<ListPage, Outcome>;
    fn names(&self) -> Result<Names, Outcome>;
    /// The user's cells under `columns` (field names, as the template has them); none for a
    /// user the platform does not export.
    fn row(
        &self,
        user: &Map<String, Value>,
        columns: &[&str],
        names: &Names,
    ) -> Option<Vec<String>>;
}

impl<V: Vendor> Export for ReadModifyWrite<V> {
    fn page_size(&self) -> usize {
        V::PAGE
    }

    fn can_list(&self) -> Result<bool, Error> {
        // As for rows that name users by e-mail: the list is what they need too.
        self.vendor.can_list(&Plan {
            rows: usize::MAX,
            lookups: 1,
            create: false,
            deactivate_missing: false,
            workers: 1,
        })
    }

    fn list_page(&self, at: &PageAt) -> Result<ListPage, Outcome> {
        ReadModifyWrite::list_page(self, at)
    }

    fn names(&self) -> Result<Names, Outcome> {
        self.vendor.names()
    }

    fn row(
        &self,
        user: &Map<String, Value>,
        columns: &[&str],
        names: &Names,
    ) -> Option<Vec<String>> {
        if !self.vendor.exports(user) {
            return None;
        }
        let cell = |name: &&str| {
            let Some(field) = V::FIELDS.iter().find(|f| f.name == *name) else {
                return String::new();
            };
            if let Some(text) = self.vendor.exported(field, user, names) {
                return text;
            }
            // Passwords and group moves are never read back; lists are the vendor's.
            cell_text(field.record_key().and_then(|k| user.get(k)))
        };
        Some(columns.iter().map(cell).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::platform::dictionary::{Kind, Shown};
    use crate::platform::{Changes, Keep};

    /// A vendor whose server is a list of users and a script of answers to writes.
    struct Fake {
        users: Vec<Value>,
        answers: Mutex<Vec<u16>>,
        writes: AtomicU32,
        lists: AtomicU32,
    }

    #[rustfmt::skip]
    const FIELDS: &[Field] = &[
        Field::new("id", &[], Kind::Key(&Kind::Id), Place::UserId("id"), Shown::Hidden),
        Field::new("name", &[], Kind::Key(&Kind::Text(9)), Place::InRecord("name"), Shown::Hidden),
        Field::new("title", &[], Kind::Text(9), Place::InRecord("title"), Shown::Hidden),
    ];

    impl Vendor for Fake {
        const FIELDS: &'static [Field] = FIELDS;
        const PAGE: usize = 2;

        fn list_page(&self, at: &PageAt) -> Result<ListPage, Outcome> {
            self.lists.fetch_add(1, Ordering::Relaxed);
            let users = self.users.iter().skip(at.offset).take(at.size);
            Ok(ListPage {
                users: crate::platform::page::Users::from_texts(users.map(|u| u.to_string())),
                total: Total::Users(self.users.len()),
            })
        }

        fn find(&self, key: &UserKey) -> Result<Found, Outcome> {
            let user = self.users.iter().find(|u| u["name"] == key.value.as_str());
            Ok((user.and_then(|u| u.as_object().cloned()), 1, 200))
        }

        fn read(&self, id: &str) -> Result<Found, Outcome> {
            let id: i64 = id.parse().unwrap_or(0);
            let user = self.users.iter().find(|u| u["id"] == id);
            Ok((user.and_then(|u| u.as_object().cloned()), 1, 200))
        }

        fn not_found(&self, _key: &UserKey) -> String {
            "no such user".into()
        }

        fn write(&self, _id: &str, _change: &Change) -> Result<Reply, CallError> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            let status = self.answers.lock().unwrap().remove(0);
            Ok(Reply {
                status,
                body: String::new(),
                attempts: 1,
                after_lost_answer: false,
            })
        }

        fn interpret(&self, _id: &str, reply: &Reply) -> Answer {
            match reply.status {
                200 => Answer::Accepted,
                409 => Answer::Conflict("HTTP 409: stale".into()),
                s => Answer::Refused(format!("HTTP {s}")),
            }
        }

        fn cannot_create(&self, edit: &Edit) -> Vec<String> {
            match edit.changes.get("title") {
                Some(_) => Vec::new(),
                None => vec!["title is needed".into()],
            }
        }

        fn create(&self, _edit: &Edit, change: &Change) -> Result<Reply, CallError> {
            self.write("", change)
        }

        fn created(&self, _edit: &Edit, reply: &Reply) -> Answer {
            self.interpret("", reply)
        }

        fn is_active(&self, user: &Map<String, Value>) -> bool {
            user.get("title").and_then(Value::as_str) != Some("gone")
        }

        fn deactivation(&self) -> Changes {
            let mut changes = Changes::new(Keep::Changes);
            changes.insert("title", "gone");
            changes
        }
    }

    fn session(answers: &[u16]) -> ReadModifyWrite<Fake> {
        let fake = Fake {
            users: (1..=3)
                .map(|i| json!({"id": i, "name": format!("u{i}"), "title": "a"}))
                .collect(),
            answers: Mutex::new(answers.to_vec()),
            writes: AtomicU32::new(0),
            lists: AtomicU32::new(0),
        };
        ReadModifyWrite::new(fake, "http://127.0.0.1/".parse().unwrap())
    }

    fn edit(name: &str, title: &str) -> Edit {
        let mut changes = Changes::new(Keep::Changes);
        changes.insert("title", title);
        Edit {
            key: UserKey {
                field: "name",
                value: name.into(),
            },
            changes,
            plan: None,
        }
    }

    #[test]
    fn a_row_that_changes_nothing_is_not_written() {
        let s = session(&[]);
        let o = s.apply(&edit("u1", "a"), 2, false, &|_, _| Ok(()));
        assert_eq!(
            (o.status, o.attempts, o.http_status),
            (Status::Unchanged, 1, None)
        );
        assert_eq!(s.vendor.writes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_dry_run_says_what_would_change_and_writes_nothing() {
        let s = session(&[]);
        let o = s.apply(&edit("u1", "b"), 2, true, &|_, _| Ok(()));
        assert_eq!((o.status, o.error.as_str()), (Status::WouldUpdate, ""));
        let title = FieldChange {
            field: "title".into(),
            before: "a".into(),
            after: "b".into(),
            hidden: false,
        };
        assert_eq!(o.changes, std::slice::from_ref(&title));
        assert_eq!(s.vendor.writes.load(Ordering::Relaxed), 0);
        // A real run's updated row says the same.
        let s = session(&[200]);
        let o = s.apply(&edit("u1", "b"), 2, false, &|_, _| Ok(()));
        assert_eq!((o.status, o.changes), (Status::Updated, vec![title]));
    }

    #[test]
    fn an_unknown_user_is_not_found() {
        let o = session(&[]).apply(&edit("nobody", "b"), 2, false, &|_, _| Ok(()));
        assert_eq!(
            (o.status, o.error.as_str()),
            (Status::NotFound, "no such user")
        );
        assert_eq!(o.http_status, Some(200));
    }

    #[test]
    fn a_conflict_is_read_again_and_written_once_more() {
        let s = session(&[409, 200]);
        let o = s.apply(&edit("u2", "b"), 2, false, &|_, _| Ok(()));
        // A find, a write, a read, a write.
        assert_eq!(
            (o.status, o.attempts, o.http_status),
            (Status::Updated, 4, Some(200))
        );
        let s = session(&[409, 409]);
        let o = s.apply(&edit("u2", "b"), 2, false, &|_, _| Ok(()));
        assert_eq!(
            (o.status, o.error.as_str()),
            (Status::Failed, "HTTP 409: stale")
        );
        assert_eq!(s.vendor.writes.load(Ordering::Relaxed), 2);
        let o = session(&[500]).apply(&edit("u2", "b"), 2, false, &|_, _| Ok(()));
        assert_eq!((o.status, o.error.as_str()), (Status::Failed, "HTTP 500"));
    }

    #[test]
    fn the_list_is_read_up_front_only_when_it_takes_fewer_calls_than_the_rows() {
        let s = session(&[]);
        let plan = |rows| Plan {
            rows,
            lookups: rows,
            ..Plan::default()
        };
        s.prepare(&plan(2)).unwrap();
        assert!(
            s.cache.get().is_none(),
            "two pages for two rows: look each up"
        );
        s.prepare(&plan(3)).unwrap();
        assert_eq!(s.cache.get().map(UserCache::len), Some(3));
        // Every key of the table finds the user, ids written as numbers included.
        let o = s.apply(&edit("U3", "a"), 2, false, &|_, _| Ok(()));
        assert_eq!((o.status, o.attempts), (Status::Unchanged, 0));
        let by_id = UserKey {
            field: "id",
            value: "3".into(),
        };
        assert!(s.cache.get().unwrap().get(&by_id).unwrap().is_some());
        assert_eq!(s.listed_user(&by_id).as_deref(), Some("3"));
    }

    #[test]
    fn a_user_claimed_by_one_row_refuses_a_second_and_the_first_too_until_it_is_sent() {
        let s = session(&[]);
        s.prepare(&Plan {
            rows: 2,
            lookups: 1,
            ..Plan::default()
        })
        .unwrap();
        let by_id = UserKey {
            field: "id",
            value: "1".into(),
        };
        let by_name = UserKey {
            field: "name",
            value: "u1".into(),
        };
        // The twin comes before the first row is sent: neither is.
        assert!(s.claim("1", 2, &by_id).is_ok());
        let later = s.claim("1", 3, &by_name).unwrap_err();
        assert_eq!(later.status, Status::Invalid);
        assert!(
            later.error.contains("the same user as row 2 (its id '1')"),
            "{later:?}"
        );
        let first = s.start_sending("1", 2).unwrap_err();
        assert!(
            first
                .error
                .contains("the same user as row 3 (its name 'u1')"),
            "{first:?}"
        );
        // The twin comes after the first row was sent: that change stands, and says so.
        assert!(s.claim("2", 4, &by_id).is_ok());
        assert!(s.start_sending("2", 4).is_ok());
        let later = s.claim("2", 5, &by_name).unwrap_err();
        assert!(
            later.error.contains("row 4 was sent before this showed"),
            "{later:?}"
        );
        assert!(
            s.start_sending("2", 4).is_ok(),
            "the same row again is no twin"
        );
    }

    #[test]
    fn rows_that_all_name_users_one_way_claim_nothing() {
        let s = session(&[200]);
        s.prepare(&Plan {
            rows: 2,
            lookups: 2,
            ..Plan::default()
        })
        .unwrap();
        assert!(s.claims.get().is_none());
        let o = s.apply(&edit("u1", "b"), 2, false, &|_, _| Ok(()));
        assert_eq!(o.status, Status::Updated);
    }
}
