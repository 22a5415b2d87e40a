//! The shard's side of [`crate::admin`]: it drains its admin queue (kicks) and notices a new
//! ban list, on every control message and every tick; the accept path asks
//! [`AdminState::is_banned`].

use std::{net::IpAddr, sync::Arc};

use arc_swap::{ArcSwap, Cache};

use super::{ShardState, plain_after_callback};
use crate::{
    admin::{AdminCmd, BanList, ShardAdmin, unix_now},
    protocol::{CloseReason, ConnInfo, Protocol},
};

/// A shard's admin queue and its view of the ban list.
pub(super) struct AdminState {
    commands: flume::Receiver<AdminCmd>,
    bans: Cache<Arc<ArcSwap<BanList>>, Arc<BanList>>,
    /// The list the live connections were last checked against.
    seen: Arc<BanList>,
}

impl AdminState {
    /// No commands, no bans (until [`AdminState::new`] replaces it at shard start).
    pub(super) fn idle() -> Self {
        let (_, commands) = flume::bounded(1);
        Self::new(ShardAdmin {
            commands,
            bans: Arc::new(ArcSwap::from_pointee(BanList::default())),
        })
    }

    pub(super) fn new(admin: ShardAdmin) -> Self {
        let mut bans = Cache::new(admin.bans);
        let seen = Arc::clone(bans.load());
        Self {
            commands: admin.commands,
            bans,
            seen,
        }
    }

    /// Whether a peer at `ip` is banned now (the accept path: no lock, no allocation).
    pub(super) fn is_banned(&mut self, ip: IpAddr) -> bool {
        let list = self.bans.load();
        !list.is_empty() && list.is_banned(ip, unix_now())
    }
}

/// Runs the queued commands, then closes the live connections a new ban list bans.
pub(super) fn serve<P: Protocol>(st: &mut ShardState<P>) {
    while let Ok(command) = st.admin.commands.try_recv() {
        match command {
            AdminCmd::Kick(id) => {
                let closed = close_where(
                    st,
                    |p, conn, _| p.connection_id(conn) == Some(id),
                    CloseReason::Kicked,
                );
                if closed == 0 {
                    tracing::debug!(
                        shard = st.shard.index(),
                        connection = id,
                        "kick: the connection had closed already"
                    );
                }
            }
            AdminCmd::KickAll => {
                let closed = close_where(st, |_, _, _| true, CloseReason::Kicked);
                tracing::info!(shard = st.shard.index(), closed, "kicked every connection");
            }
        }
    }
    if Arc::ptr_eq(st.admin.bans.load(), &st.admin.seen) {
        return;
    }
    let list = Arc::clone(st.admin.bans.load());
    st.admin.seen = Arc::clone(&list);
    let now = unix_now();
    let closed = close_where(
        st,
        |_, _, info| list.is_banned(info.peer.ip(), now),
        CloseReason::Banned,
    );
    if closed > 0 {
        tracing::info!(
            shard = st.shard.index(),
            closed,
            "closed the connections of newly banned addresses"
        );
    }
}

/// Closes (gracefully: queued replies are flushed, then FIN) every open connection that
/// `matches`; returns how many.
fn close_where<P: Protocol>(
    st: &mut ShardState<P>,
    mut matches: impl FnMut(&P, &P::Conn, &ConnInfo) -> bool,
    reason: CloseReason,
) -> usize {
    let mut closed = 0;
    let mut remaining = st.live;
    for index in 0..st.slots.len() {
        if remaining == 0 {
            break;
        }
        let ShardState {
            protocol, slots, ..
        } = &mut *st;
        let Some(slot) = slots[index].as_deref_mut() else {
            continue;
        };
        remaining -= 1;
        if slot.closing.is_some() {
            continue;
        }
        let Some(conn) = slot.conn.as_ref() else {
            continue;
        };
        if !matches(protocol, conn, &slot.info) {
            continue;
        }
        slot.close(reason, false);
        closed += 1;
        if slot.is_plain() {
            plain_after_callback(st, index);
        }
    }
    closed
}
