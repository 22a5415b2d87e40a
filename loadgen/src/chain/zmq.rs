//! The ZMQ `hashblock` publisher, as Bitcoin Core sends it: three frames, the topic
//! `hashblock`, the 32-byte hash in display (reversed) byte order, and a 4-byte little-endian
//! sequence number counted per topic from 0.

use bitcoin::BlockHash;
use bitcoin::hashes::Hash;
use bytes::Bytes;
use tokio::task::JoinHandle;
use zeromq::{Socket, SocketSend, ZmqMessage};

/// Notifications waiting for the socket; a PUB socket drops on overflow anyway.
const QUEUE: usize = 1024;

/// The sending side, usable from synchronous code.
#[derive(Debug)]
pub(crate) struct Publisher {
    tx: flume::Sender<(BlockHash, u32)>,
}

impl Publisher {
    /// Binds a PUB socket on 127.0.0.1 and spawns the task that feeds it. Returns the
    /// publisher, the bound endpoint and the task.
    pub(crate) async fn bind(port: u16) -> std::io::Result<(Self, String, JoinHandle<()>)> {
        let mut socket = zeromq::PubSocket::new();
        let endpoint = socket
            .bind(&format!("tcp://127.0.0.1:{port}"))
            .await
            .map_err(std::io::Error::other)?;
        let (tx, rx) = flume::bounded::<(BlockHash, u32)>(QUEUE);
        let task = tokio::spawn(async move {
            while let Ok((hash, seq)) = rx.recv_async().await {
                let mut display = hash.to_byte_array();
                display.reverse();
                let mut msg = ZmqMessage::from(Bytes::from_static(b"hashblock"));
                msg.push_back(Bytes::copy_from_slice(&display));
                msg.push_back(Bytes::copy_from_slice(&seq.to_le_bytes()));
                // No subscriber is not an error for a publisher.
                let _ = socket.send(msg).await;
            }
        });
        Ok((Self { tx }, endpoint.to_string(), task))
    }

    /// Queues one `hashblock`; dropped if the queue is full, like a PUB high-water mark.
    pub(crate) fn hashblock(&self, hash: BlockHash, seq: u32) {
        let _ = self.tx.try_send((hash, seq));
    }
}
