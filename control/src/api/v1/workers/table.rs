//! The workers table: one row per live worker, filtered, sorted on any column, paged with a
//! keyset cursor, projected onto the requested columns.

use std::cmp::Ordering;

use serde::Serialize;
use utoipa::ToSchema;

use super::super::{hashrate::view, worker_id};
use crate::api::{ApiError, Viewer};
use crate::live::{LiveWorker, WorkerStatus, device};

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

impl Cell {
    fn cmp_key(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Number(a), Self::Number(b)) => a.total_cmp(b),
            (Self::Text(a), Self::Text(b)) => a.to_lowercase().cmp(&b.to_lowercase()),
            // Nulls sort after values in ascending order.
            (Self::Null, Self::Null) => Ordering::Equal,
            (Self::Null, _) => Ordering::Greater,
            (_, Self::Null) => Ordering::Less,
            (Self::Number(_), Self::Text(_)) => Ordering::Less,
            (Self::Text(_), Self::Number(_)) => Ordering::Greater,
        }
    }
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

/// One worker's row with the fields filters need.
#[derive(Debug, Clone)]
pub struct Row {
    /// Cells in [`COLUMNS`] order.
    pub cells: Vec<Cell>,
    /// The worker's status.
    pub status: WorkerStatus,
    /// Its full name (for search; never shown to non-admins).
    pub name: String,
    /// Its payout address.
    pub address: String,
    /// Its model (first user-agent segment).
    pub model: String,
    /// Its firmware.
    pub firmware: String,
    /// Its ten-minute hashrate.
    pub hashrate_m10: f64,
}

/// The row of `w` at `now`.
#[must_use]
pub(super) fn row(w: &LiveWorker, now: i64, viewer: Viewer) -> Row {
    let status = w.status(now);
    let dev = device::parse(w.user_agent.as_deref());
    let m1 = view(&w.window(now, 60), w.difficulty);
    let m10 = view(&w.window(now, 600), w.difficulty);
    let h1 = view(&w.window(now, 3600), w.difficulty);
    let d1 = view(&w.window(now, 86_400), w.difficulty);
    let judged = w.accepted + w.rejected();
    let reject_pct = if judged == 0 {
        Cell::Null
    } else {
        num(100.0 * w.rejected() as f64 / judged as f64)
    };
    let address = w.name.split('.').next().unwrap_or_default().to_owned();
    let cells = vec![
        text(worker_id(&w.name)),
        text(viewer.name(&w.name)),
        text(viewer.address(&address)),
        text(status.as_str()),
        text(dev.model),
        opt_text(dev.asic),
        opt_text(dev.firmware),
        opt_text(w.user_agent.as_deref()),
        num(m1.hps),
        num(m10.hps),
        num(m10.low_hps),
        num(m10.high_hps),
        num(h1.hps),
        num(d1.hps),
        num(w.difficulty),
        reject_pct,
        num(w.best_session),
        num(w.best_all_time()),
        opt_num(w.last_share_at),
        opt_num(w.connected_at),
        num(w.reconnects_24h(now) as f64),
    ];
    debug_assert_eq!(cells.len(), COLUMNS.len());
    Row {
        cells,
        status,
        model: dev.model.to_owned(),
        firmware: dev.firmware.unwrap_or_default().to_owned(),
        name: w.name.to_string(),
        address,
        hashrate_m10: m10.hps,
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

/// Sorts `rows` on column `by` (then by id), descending when `desc`.
pub(super) fn sort(rows: &mut [Row], by: usize, desc: bool) {
    rows.sort_by(|a, b| {
        let mut o = a.cells[by].cmp_key(&b.cells[by]);
        if desc {
            o = o.reverse();
        }
        o.then_with(|| a.cells[0].cmp_key(&b.cells[0]))
    });
}

/// A keyset cursor: the sort it belongs to and the last row's sort cell and id.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// The sort column.
    pub by: usize,
    /// Descending.
    pub desc: bool,
    /// The last row's cell in that column.
    pub key: Cell,
    /// The last row's id.
    pub id: String,
}

impl Cursor {
    /// The opaque text form (hex of a small JSON array).
    #[must_use]
    pub fn encode(&self) -> String {
        let key = match &self.key {
            Cell::Text(s) => serde_json::json!(s),
            Cell::Number(n) => serde_json::json!(n),
            Cell::Null => serde_json::Value::Null,
        };
        let json = serde_json::json!([self.by, self.desc, key, self.id]).to_string();
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
            serde_json::Value::String(s) => Cell::Text(s.clone()),
            serde_json::Value::Number(n) => Cell::Number(n.as_f64().ok_or_else(bad)?),
            serde_json::Value::Null => Cell::Null,
            _ => return Err(bad()),
        };
        Ok(Self {
            by,
            desc: parts[1].as_bool().ok_or_else(bad)?,
            key,
            id: parts[3].as_str().ok_or_else(bad)?.to_owned(),
        })
    }

    /// Whether `row` comes after the cursor in its sort.
    #[must_use]
    pub fn is_before(&self, row: &Row) -> bool {
        let mut o = self.key.cmp_key(&row.cells[self.by]);
        if self.desc {
            o = o.reverse();
        }
        let id = Cell::Text(self.id.clone());
        o.then_with(|| id.cmp_key(&row.cells[0])) == Ordering::Less
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_with(id: &str, value: Cell) -> Row {
        let mut cells = vec![Cell::Null; COLUMNS.len()];
        cells[0] = text(id);
        cells[9] = value;
        Row {
            cells,
            status: WorkerStatus::Online,
            name: id.to_owned(),
            address: String::new(),
            model: String::new(),
            firmware: String::new(),
            hashrate_m10: 0.0,
        }
    }

    #[test]
    fn keyset_pages_cover_every_row_once_in_either_direction() {
        let mut rows: Vec<Row> = (0..25)
            .map(|i| {
                row_with(
                    &format!("{i:02}"),
                    if i % 5 == 0 {
                        Cell::Null
                    } else {
                        num(f64::from(i % 7))
                    },
                )
            })
            .collect();
        for desc in [false, true] {
            sort(&mut rows, 9, desc);
            let mut seen = Vec::new();
            let mut cursor: Option<Cursor> = None;
            loop {
                let page: Vec<&Row> = rows
                    .iter()
                    .filter(|r| cursor.as_ref().is_none_or(|c| c.is_before(r)))
                    .take(4)
                    .collect();
                let Some(last) = page.last() else { break };
                seen.extend(page.iter().map(|r| r.name.clone()));
                let next = Cursor {
                    by: 9,
                    desc,
                    key: last.cells[9].clone(),
                    id: last.name.clone(),
                };
                let next = Cursor::decode(&next.encode()).unwrap();
                cursor = Some(next);
            }
            let expected: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
            assert_eq!(seen, expected, "desc={desc}");
        }
        assert!(Cursor::decode("zz").is_err());
        assert!(Cursor::decode(&warppool_core::hex::encode(b"[99,true,null,\"x\"]")).is_err());
    }
}
