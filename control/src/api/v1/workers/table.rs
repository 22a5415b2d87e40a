//! The workers table: one row per live worker, filtered, sorted on any column, paged with a
//! keyset cursor, projected onto the requested columns.
//!
//! A page is two passes over the live table. The first makes one small [`KeyRow`] per
//! matching worker: the sort column's value as a [`Key`] (text lowercased once, so comparing
//! is a byte compare), the id as its number, the worker's slot. The page is selected from those
//! without sorting the whole table (`select_nth_unstable`, then the page's rows sorted), and
//! the second pass makes only the page's rows whole, from their slots.

use std::cmp::Ordering;

use serde::Serialize;
use utoipa::ToSchema;

use super::super::hashrate::{point_hps, view};
use super::super::{worker_hash, worker_id};
use crate::api::{ApiError, Viewer};
use crate::live::{LiveWorker, device};

/// Every column, in the default order.
pub const COLUMNS: [&str; 21] = [
    "id",
    "name",
    "address_masked",
    "status",
    "model",
    "asic",
    "firmware",
    "user_agent",
    "hashrate_m1",
    "hashrate_m10",
    "hashrate_m10_low",
    "hashrate_m10_high",
    "hashrate_h1",
    "hashrate_d1",
    "difficulty",
    "reject_pct",
    "best_session",
    "best_all",
    "last_share_at",
    "connected_at",
    "reconnects_24h",
];

/// One cell: text, a number, or null.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A number.
    Number(f64),
    /// No value.
    Null,
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn opt_text(s: Option<&str>) -> Cell {
    s.map_or(Cell::Null, text)
}

fn num(v: f64) -> Cell {
    Cell::Number(v)
}

fn opt_num(v: Option<i64>) -> Cell {
    v.map_or(Cell::Null, |v| Cell::Number(v as f64))
}

/// A sort value: a number, text compared case-insensitively (kept lowercased), or null.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    /// A number.
    Number(f64),
    /// Lowercased text.
    Text(Box<str>),
    /// No value: after every value in ascending order.
    Null,
}

impl Key {
    /// The key of a cell.
    #[must_use]
    pub fn of(cell: Cell) -> Self {
        match cell {
            Cell::Number(n) => Self::Number(n),
            Cell::Text(t) => Self::Text(t.to_lowercase().into_boxed_str()),
            Cell::Null => Self::Null,
        }
    }

    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Number(a), Self::Number(b)) => a.total_cmp(b),
            (Self::Text(a), Self::Text(b)) => a.cmp(b),
            (Self::Null, Self::Null) => Ordering::Equal,
            (Self::Null, _) => Ordering::Greater,
            (_, Self::Null) => Ordering::Less,
            (Self::Number(_), Self::Text(_)) => Ordering::Less,
            (Self::Text(_), Self::Number(_)) => Ordering::Greater,
        }
    }
}

/// One matching worker in the first pass: its sort key, id and slot in the live table.
#[derive(Debug, Clone)]
pub struct KeyRow {
    /// The sort column's value.
    pub key: Key,
    /// The worker's id as a number ([`worker_hash`]): the tie-break, ascending.
    pub id: u64,
    /// Its slot in the live table (checked against `id` in the second pass).
    pub slot: usize,
}

/// The key row of `w` (in `slot`) for a sort on column `sort_by`.
#[must_use]
pub(super) fn key_row(
    w: &LiveWorker,
    slot: usize,
    now: i64,
    viewer: Viewer,
    sort_by: usize,
) -> KeyRow {
    KeyRow {
        key: Key::of(cell(w, now, viewer, sort_by)),
        id: worker_hash(&w.name),
        slot,
    }
}

/// The order of a sort on the key (descending when `desc`), then the id ascending.
fn order(a: &Key, a_id: u64, b: &Key, b_id: u64, desc: bool) -> Ordering {
    let o = a.cmp(b);
    let o = if desc { o.reverse() } else { o };
    o.then(a_id.cmp(&b_id))
}

/// The first `n` of `rows` in the sort's order (descending when `desc`), sorted: a selection
/// and a sort of `n` rows instead of a sort of all of them.
pub(super) fn first_n(mut rows: Vec<KeyRow>, n: usize, desc: bool) -> Vec<KeyRow> {
    let by = |a: &KeyRow, b: &KeyRow| order(&a.key, a.id, &b.key, b.id, desc);
    if n == 0 {
        return Vec::new();
    }
    if rows.len() > n {
        rows.select_nth_unstable_by(n - 1, by);
        rows.truncate(n);
    }
    rows.sort_unstable_by(by);
    rows
}

/// The cells `fields` (indexes into [`COLUMNS`]) of `w` at `now`.
#[must_use]
pub(super) fn cells(w: &LiveWorker, now: i64, viewer: Viewer, fields: &[usize]) -> Vec<Cell> {
    fields.iter().map(|&i| cell(w, now, viewer, i)).collect()
}

/// The payout address a worker name starts with.
pub(super) fn payout_address(name: &str) -> &str {
    name.split('.').next().unwrap_or_default()
}

/// Cell `index` (of [`COLUMNS`]) of `w` at `now`.
fn cell(w: &LiveWorker, now: i64, viewer: Viewer, index: usize) -> Cell {
    let dev = || device::parse(w.user_agent.as_deref());
    let rate = |secs: i64| view(&w.window(now, secs), w.difficulty);
    let point = |secs: i64| num(point_hps(&w.window(now, secs), w.difficulty));
    match COLUMNS[index] {
        "id" => text(worker_id(&w.name)),
        "name" => text(viewer.name(&w.name)),
        "address_masked" => text(viewer.address(payout_address(&w.name))),
        "status" => text(w.status(now).as_str()),
        "model" => text(dev().model),
        "asic" => opt_text(dev().asic),
        "firmware" => opt_text(dev().firmware),
        "user_agent" => opt_text(w.user_agent.as_deref()),
        "hashrate_m1" => point(60),
        "hashrate_m10" => point(600),
        "hashrate_m10_low" => num(rate(600).low_hps),
        "hashrate_m10_high" => num(rate(600).high_hps),
        "hashrate_h1" => point(3600),
        "hashrate_d1" => point(86_400),
        "difficulty" => num(w.difficulty),
        "reject_pct" => {
            let judged = w.accepted + w.rejected();
            if judged == 0 {
                Cell::Null
            } else {
                num(100.0 * w.rejected() as f64 / judged as f64)
            }
        }
        "best_session" => num(w.best_session),
        "best_all" => num(w.best_all_time()),
        "last_share_at" => opt_num(w.last_share_at),
        "connected_at" => opt_num(w.connected_at),
        "reconnects_24h" => num(w.reconnects_24h(now) as f64),
        other => unreachable!("column {other} has no cell"),
    }
}

/// The index of column `name`.
///
/// # Errors
/// 400 for an unknown column.
pub(super) fn column(name: &str) -> Result<usize, ApiError> {
    COLUMNS
        .iter()
        .position(|c| *c == name)
        .ok_or_else(|| ApiError::bad_request(format!("unknown column {name:?}")))
}

/// A keyset cursor: the sort it belongs to and the last row's sort key and id.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// The sort column.
    pub by: usize,
    /// Descending.
    pub desc: bool,
    /// The last row's key in that column.
    pub key: Key,
    /// The last row's id ([`worker_hash`]).
    pub id: u64,
}

impl Cursor {
    /// The opaque text form (hex of a small JSON array).
    #[must_use]
    pub fn encode(&self) -> String {
        let key = match &self.key {
            Key::Text(s) => serde_json::json!(s),
            Key::Number(n) => serde_json::json!(n),
            Key::Null => serde_json::Value::Null,
        };
        let id = format!("{:016x}", self.id);
        let json = serde_json::json!([self.by, self.desc, key, id]).to_string();
        warppool_core::hex::encode(json.as_bytes())
    }

    /// Parses [`Cursor::encode`]'s text.
    ///
    /// # Errors
    /// 400 when it is not a cursor of this API.
    pub fn decode(text: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::bad_request("cursor is not one this API issued");
        let bytes = warppool_core::hex::decode(text).map_err(|_| bad())?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let parts = value.as_array().filter(|a| a.len() == 4).ok_or_else(bad)?;
        let by = parts[0].as_u64().and_then(|b| usize::try_from(b).ok());
        let by = by.filter(|b| *b < COLUMNS.len()).ok_or_else(bad)?;
        let key = match &parts[2] {
            serde_json::Value::String(s) => Key::of(Cell::Text(s.clone())),
            serde_json::Value::Number(n) => Key::Number(n.as_f64().ok_or_else(bad)?),
            serde_json::Value::Null => Key::Null,
            _ => return Err(bad()),
        };
        let id = parts[3]
            .as_str()
            .filter(|id| id.len() == 16)
            .ok_or_else(bad)?;
        Ok(Self {
            by,
            desc: parts[1].as_bool().ok_or_else(bad)?,
            key,
            id: u64::from_str_radix(id, 16).map_err(|_| bad())?,
        })
    }

    /// Whether `row` comes after the cursor in its sort.
    #[must_use]
    pub fn is_before(&self, row: &KeyRow) -> bool {
        order(&self.key, self.id, &row.key, row.id, self.desc) == Ordering::Less
    }

    /// The cursor after `last` in the sort on `by`.
    #[must_use]
    pub fn after(last: &KeyRow, by: usize, desc: bool) -> Self {
        Self {
            by,
            desc,
            key: last.key.clone(),
            id: last.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_row_with(id: u64, key: Key) -> KeyRow {
        KeyRow { key, id, slot: 0 }
    }

    #[test]
    fn keyset_pages_cover_every_row_once_in_either_direction() {
        let rows: Vec<KeyRow> = (0..25_u32)
            .map(|i| {
                let key = match i % 5 {
                    0 => Key::Null,
                    1 => Key::of(Cell::Text(format!("Rig{}", i % 3))),
                    _ => Key::Number(f64::from(i % 7)),
                };
                key_row_with(u64::from(i * 7919 % 25), key)
            })
            .collect();
        for desc in [false, true] {
            let expected: Vec<u64> = first_n(rows.clone(), rows.len(), desc)
                .iter()
                .map(|r| r.id)
                .collect();
            let mut seen = Vec::new();
            let mut cursor: Option<Cursor> = None;
            loop {
                let after: Vec<KeyRow> = rows
                    .iter()
                    .filter(|r| cursor.as_ref().is_none_or(|c| c.is_before(r)))
                    .cloned()
                    .collect();
                let page = first_n(after, 4, desc);
                let Some(last) = page.last() else { break };
                seen.extend(page.iter().map(|r| r.id));
                let next = Cursor::after(last, 9, desc);
                cursor = Some(Cursor::decode(&next.encode()).unwrap());
            }
            assert_eq!(seen, expected, "desc={desc}");
        }
        assert!(Cursor::decode("zz").is_err());
        assert!(Cursor::decode(&warppool_core::hex::encode(b"[99,true,null,\"x\"]")).is_err());
        let short_id = warppool_core::hex::encode(b"[9,true,null,\"00ff\"]");
        assert!(Cursor::decode(&short_id).is_err());
    }

    #[test]
    fn the_sort_is_nulls_last_ascending_and_text_ignores_case() {
        let rows = vec![
            key_row_with(1, Key::Null),
            key_row_with(2, Key::of(Cell::Text("beta".into()))),
            key_row_with(3, Key::of(Cell::Text("Alpha".into()))),
            key_row_with(4, Key::Number(2.0)),
            key_row_with(5, Key::Number(2.0)),
        ];
        let ids = |desc| -> Vec<u64> {
            first_n(rows.clone(), 5, desc)
                .iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(ids(false), [4, 5, 3, 2, 1]);
        // Descending reverses the key, not the id tie-break.
        assert_eq!(ids(true), [1, 2, 3, 4, 5]);
        assert_eq!(first_n(rows.clone(), 2, false).len(), 2);
        assert!(first_n(rows, 0, false).is_empty());
    }
}
